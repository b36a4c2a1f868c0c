"""Read models and errors of the fleet service: plain frozen values, no rich, typer or SQL, so the
CLI, the metrics exporter, an HTTP API and a web admin all show the same thing.

``Runner`` (``models.fleet_queries``), ``TokenInfo`` (``models.tokens``), ``FleetStats``
(``models.stats``), ``SteerResult`` and ``PingResult`` (``scheduler.steering``) are re-exported
from :mod:`mediarunner.fleet`; the values built here add what those lack.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from mediarunner.errors import MediarunnerError
from mediarunner.models.enums import Health, JobState, JobType, RunnerStatus
from mediarunner.models.fleet_queries import Runner
from mediarunner.models.stats import DurationHistogram, FleetStats, HourSeries

# Encoders worth showing for a runner (its capabilities keep the full list).
NOTABLE_ENCODERS = re.compile(r"^(libx264|libx265|libsvtav1|libaom-av1|librav1e|libvpx(-vp9)?|aac|libfdk_aac|"
                              r"libopus|libmp3lame|.*_(nvenc|qsv|vaapi|videotoolbox|amf|v4l2m2m))$")


# ------------------------------------------------------------------------------ errors

class FleetError(MediarunnerError):
    """An operator request the fleet refuses; the message says why."""


class ReadOnlyFleet(FleetError):
    def __init__(self) -> None:
        super().__init__("demo mode (MEDIARUNNER_DEMO_MODE) is read-only: this command would change the fleet")


class RunnerNotFound(FleetError, LookupError):
    def __init__(self, name: str) -> None:
        super().__init__(f"no runner {name!r}")
        self.name = name


class AmbiguousRunner(FleetError, LookupError):
    def __init__(self, name: str, matches: list[str]) -> None:
        super().__init__(f"{name!r} is ambiguous: {', '.join(matches)}")
        self.name, self.matches = name, matches


class TokenNotFound(FleetError, LookupError):
    def __init__(self, token_id: str) -> None:
        super().__init__(f"no active token {token_id!r}")
        self.token_id = token_id


# ------------------------------------------------------------------------------ values

@dataclass(frozen=True)
class NewToken:
    id: str
    name: str
    secret: str  # shown once; only its hash is stored


@dataclass(frozen=True)
class ActivityEvent:
    at: datetime
    kind: str
    runner: str | None
    job_id: str | None
    message: str  # URLs in it are masked


@dataclass(frozen=True)
class Gpu:
    index: int | None
    name: str | None
    memory_total_mb: int | None
    memory_used_mb: int | None = None  # usage: from diagnostics only
    utilization_percent: int | None = None


@dataclass(frozen=True)
class RunnerDetail:
    """One runner with its capabilities and diagnostics unpacked (``runners show``)."""

    runner: Runner
    ffmpeg_version: str | None
    ffmpeg_error: str | None
    notable_encoders: tuple[str, ...]
    hwaccels: tuple[str, ...]
    gpus: tuple[Gpu, ...]  # installed (capabilities)
    gpu_usage: tuple[Gpu, ...]  # at the last heartbeat (diagnostics)
    whisper_engines: tuple[str, ...]
    whisper_models: tuple[str, ...]
    celery_version: str | None
    python_version: str | None
    events: tuple[ActivityEvent, ...]  # recent activity, newest last


@dataclass(frozen=True)
class Dashboard:
    """The eight cards of the operator's dashboard (web admin, ``mediarunner stats``), the queues
    with pending jobs but no online runner, and the last hour's series."""

    total_servers: int  # registered runners
    enabled: int  # status enabled
    healthy: int  # health healthy
    offline: int  # health offline
    slots_used: int  # jobs running on online runners
    slots_total: int  # concurrency of online runners
    pending_tasks: int
    completed_today: int
    failed_today: int
    unserved_queues: tuple[tuple[str, int], ...]  # (queue, pending jobs) with no online runner
    series: HourSeries
    stats: FleetStats  # read in the same transaction

    @property
    def current_load(self) -> str:
        return f"{self.slots_used}/{self.slots_total}"

    def cards(self) -> dict[str, int | str]:
        """The eight numbers by their ``data-stat`` names (``mediarunner stats --json`` adds them)."""
        return {"total_servers": self.total_servers, "enabled": self.enabled, "healthy": self.healthy,
                "offline": self.offline, "current_load": self.current_load, "pending_tasks": self.pending_tasks,
                "completed_today": self.completed_today, "failed_today": self.failed_today}


def dashboard(stats: FleetStats, runners: list[Runner], pending: dict[str, int], series: HourSeries) -> Dashboard:
    online = [r for r in runners if r.health is not Health.OFFLINE]
    served = {q for r in online if r.status is RunnerStatus.ENABLED for q in r.queues}
    return Dashboard(
        total_servers=len(runners), enabled=sum(r.status is RunnerStatus.ENABLED for r in runners),
        healthy=sum(r.health is Health.HEALTHY for r in runners), offline=len(runners) - len(online),
        slots_used=sum(r.jobs_running for r in online), slots_total=sum(r.concurrency for r in online),
        pending_tasks=stats.jobs_pending, completed_today=stats.completed_today, failed_today=stats.failed_today,
        unserved_queues=tuple(sorted((q, n) for q, n in pending.items() if q not in served)), series=series,
        stats=stats)


@dataclass(frozen=True)
class MetricsSnapshot:
    """What the Prometheus exporter reads, in one transaction."""

    now: datetime
    jobs_by_state: list[tuple[str, JobType, JobState, int]]
    durations: list[DurationHistogram]
    runners: list[Runner]


def _gpu(g: Mapping[str, Any]) -> Gpu:
    return Gpu(g.get("index"), g.get("name"), g.get("memory_total_mb"), g.get("memory_used_mb"),
               g.get("utilization_percent"))


def runner_detail(runner: Runner, events: list[ActivityEvent]) -> RunnerDetail:
    caps = runner.capabilities
    ff: Mapping[str, Any] = caps.get("ffmpeg", {})
    whisper: Mapping[str, Any] = caps.get("whisper", {})
    return RunnerDetail(
        runner=runner, ffmpeg_version=ff.get("version"), ffmpeg_error=ff.get("error"),
        notable_encoders=tuple(e for e in ff.get("encoders", []) if NOTABLE_ENCODERS.match(e)),
        hwaccels=tuple(ff.get("hwaccels", [])),
        gpus=tuple(_gpu(g) for g in caps.get("gpus", [])),
        gpu_usage=tuple(_gpu(g) for g in runner.diagnostics.get("gpus", [])),
        whisper_engines=tuple(whisper.get("engines", [])), whisper_models=tuple(whisper.get("models", [])),
        celery_version=caps.get("celery"), python_version=caps.get("python"), events=tuple(events),
    )


def match_names(name: str, names: list[str]) -> list[str]:
    """Full name (``cpu1@host``), else the name part (``cpu1``), else a prefix."""
    if name in names:
        return [name]
    exact_part = [n for n in names if n.split("@", 1)[0] == name]
    return exact_part or [n for n in names if n.startswith(name)]
