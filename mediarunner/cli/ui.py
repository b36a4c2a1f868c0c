"""What every command module shares: the console, colours, formatting and the two services.

Command modules use ``ui.console`` (not a copy of it), so a test can swap the console in one place.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta

import typer
from celery import Celery
from rich.console import Console

from mediarunner.client import Client
from mediarunner.config import Settings, get_settings
from mediarunner.config.redact import mask_secrets
from mediarunner.errors import ValidationError
from mediarunner.fleet import FleetService
from mediarunner.models.enums import Health, JobState, RunnerStatus

console = Console()
REPLY_TIMEOUT = 2.0  # seconds to wait for a worker's remote-control answer

STATE_STYLE = {
    JobState.PENDING: "yellow", JobState.WAITING_FOR_PARENT: "dim", JobState.RUNNING: "cyan",
    JobState.COMPLETED: "green", JobState.FAILED: "red", JobState.CANCELLED: "magenta",
    JobState.PARENT_FAILED: "red", JobState.PARENT_CANCELLED: "magenta", JobState.TIMEOUT: "red",
}
HEALTH_STYLE = {Health.HEALTHY: "green", Health.WARNING: "yellow", Health.OFFLINE: "red"}
STATUS_STYLE = {RunnerStatus.ENABLED: "green", RunnerStatus.MAINTENANCE: "yellow", RunnerStatus.DISABLED: "dim"}
EVENT_STYLE = {  # activity log colours: green good, red bad, yellow retried, cyan work, magenta operator
    "job_completed": "green", "runner_registered": "green", "heartbeat_restored": "green",
    "job_failed": "red", "job_timeout": "red", "heartbeat_lost": "red", "token_revoked": "red",
    "runner_unregistered": "red", "job_retried": "yellow", "job_failed_over": "yellow",
    "job_assigned": "cyan", "job_submitted": "blue", "status_changed": "magenta",
    "concurrency_changed": "magenta", "token_created": "magenta", "runner_stopped": "dim", "runner_pruned": "dim",
    "job_cancelled": "magenta", "job_restarted": "blue",
}


def settings() -> Settings:
    return get_settings()


DEMO_REFUSAL = "demo mode (MEDIARUNNER_DEMO_MODE) is read-only: this command would change jobs"


def writable() -> None:
    """Refuse (exit 2) a command that changes something when demo mode is on."""
    if settings().demo_mode:
        raise fail(DEMO_REFUSAL)


def client(*, writes: bool = False) -> Client:
    """``writes``: the command submits, cancels or restarts (refused in demo mode)."""
    if writes:
        writable()
    return Client()


def _worker_app(s: Settings) -> Celery:
    # A fresh app from the current settings (the module-level one froze them at import); imported
    # here because loading the workers' app pulls in every task module.
    from mediarunner.workers.app import create_app

    return create_app(s)


def fleet() -> FleetService:
    return FleetService(settings(), app=_worker_app, reply_timeout=REPLY_TIMEOUT)


def job_id(text: str) -> str:
    """The job id that ``text`` starts (the CLI prints 8-character prefixes); ``text`` itself when
    no job matches (the command then says "no job"). An ambiguous prefix is an error."""
    from sqlalchemy import select

    from mediarunner.models.db import transaction
    from mediarunner.models.tables import JobRow

    ids = transaction(lambda s: list(s.scalars(select(JobRow.id).where(JobRow.id.startswith(text, autoescape=True))
                                               .order_by(JobRow.id).limit(4))))
    if text in ids or len(ids) == 0:
        return text
    if len(ids) > 1:
        shown = ", ".join(ids[:3]) + (", ..." if len(ids) > 3 else "")
        raise ValidationError(f"job id prefix {text!r} is ambiguous ({shown}): give more characters")
    return ids[0]


def fail(message: object, code: int = 2) -> typer.Exit:
    """``raise ui.fail(...)``: one line on stderr (secrets masked), then exit with ``code``."""
    typer.echo(f"error: {mask_secrets(' '.join(str(message).split()))}", err=True)
    return typer.Exit(code)


def when(dt: datetime | None) -> str:
    return "" if dt is None else f"{dt:%Y-%m-%d %H:%M:%S}"


def ago(seconds: float | None) -> str:
    if seconds is None:
        return "never"
    if seconds < 120:
        return f"{seconds:.0f}s ago"
    if seconds < 7200:
        return f"{seconds / 60:.0f}m ago"
    return f"{seconds / 3600:.1f}h ago"


def seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}s"


_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def duration(text: str) -> timedelta:
    """``30m``, ``2h``, ``1d``, ``1h30m`` (s, m, h, d, w) as a timedelta; ValueError otherwise."""
    compact = text.strip().lower().replace(" ", "")
    if not compact or not re.fullmatch(r"(\d+(\.\d+)?[smhdw])+", compact):
        raise ValueError(f"--since {text!r}: expected a duration such as 30m, 2h, 1d or 1h30m")
    return timedelta(seconds=sum(float(n) * _UNITS[u] for n, _, u in re.findall(r"(\d+(\.\d+)?)([smhdw])", compact)))
