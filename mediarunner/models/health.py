"""Runner health, derived (never stored) from the last heartbeat and its diagnostics.

A pure function of its inputs, so the CLI, the metrics exporter and the tests agree. Thresholds
(``MEDIARUNNER_RUNNER_*`` settings, defaults in brackets):

* **offline**: the runner stopped cleanly or beat marked it silent (``offline_at``), it was
  unregistered, it never sent a heartbeat, or its last heartbeat is older than
  ``runner_offline_after_seconds`` [30 s];
* **warning**: the heartbeat is older than ``runner_warning_after_seconds`` [15 s], the 1-minute
  load average per CPU exceeds ``runner_warning_load_per_cpu`` [2.0], free scratch space is below
  ``runner_warning_free_disk_mb`` [2048 MB], or ffmpeg could not be run;
* **healthy** otherwise.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from mediarunner.config import Settings
from mediarunner.models.enums import Health


@dataclass(frozen=True)
class HealthThresholds:
    warning_after_seconds: float = 15.0
    offline_after_seconds: float = 30.0
    warning_load_per_cpu: float = 2.0
    warning_free_disk_mb: float = 2048.0

    @classmethod
    def from_settings(cls, s: Settings) -> HealthThresholds:
        return cls(s.runner_warning_after_seconds, s.runner_offline_after_seconds,
                   s.runner_warning_load_per_cpu, float(s.runner_warning_free_disk_mb))


@dataclass(frozen=True)
class HealthReport:
    health: Health
    reasons: tuple[str, ...]  # empty when healthy


def derive_health(now: datetime, last_heartbeat_at: datetime | None, diagnostics: Mapping[str, Any],
                  thresholds: HealthThresholds, *, offline_at: datetime | None = None,
                  unregistered_at: datetime | None = None) -> HealthReport:
    if unregistered_at is not None:
        return HealthReport(Health.OFFLINE, ("unregistered (token revoked)",))
    if last_heartbeat_at is None:
        return HealthReport(Health.OFFLINE, ("no heartbeat yet",))
    if offline_at is not None:  # cleared by the next heartbeat
        return HealthReport(Health.OFFLINE, (f"offline since {offline_at:%Y-%m-%d %H:%M:%S}",))
    age = (now - last_heartbeat_at).total_seconds()
    if age > thresholds.offline_after_seconds:
        return HealthReport(Health.OFFLINE, (f"no heartbeat for {age:.0f}s",))
    reasons: list[str] = []
    if age > thresholds.warning_after_seconds:
        reasons.append(f"heartbeat {age:.0f}s old")
    load, cpus = diagnostics.get("load_1m"), diagnostics.get("cpu_count") or 1
    if isinstance(load, int | float) and load / cpus > thresholds.warning_load_per_cpu:
        reasons.append(f"load {load:.2f} on {cpus} CPU(s)")
    free = diagnostics.get("disk_free_mb")
    if isinstance(free, int | float) and free < thresholds.warning_free_disk_mb:
        reasons.append(f"only {free:.0f} MB free scratch")
    if diagnostics and not diagnostics.get("ffmpeg_ok", True):
        reasons.append("ffmpeg not runnable")
    return HealthReport(Health.WARNING if reasons else Health.HEALTHY, tuple(reasons))
