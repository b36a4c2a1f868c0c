"""Read side of the fleet: frozen ``Runner`` objects with derived health and live job counts."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from mediarunner.models.enums import Health, JobState, RunnerStatus
from mediarunner.models.health import HealthThresholds, derive_health
from mediarunner.models.tables import JobRow, RunnerRow


class Runner(BaseModel):
    model_config = ConfigDict(frozen=True)

    hostname: str
    status: RunnerStatus
    health: Health
    health_reasons: tuple[str, ...]
    queues: tuple[str, ...]
    concurrency: int
    desired_concurrency: int | None
    version: str
    token_id: str | None
    capabilities: dict[str, Any]
    diagnostics: dict[str, Any]
    jobs_running: int  # live, from the jobs table
    priority: int = 0  # scheduling: lower first (models.balancing)
    weight: int | None = None  # for `weighted` balancing (None: its concurrency)
    jobs_completed: int
    jobs_failed: int
    registered_at: datetime
    last_heartbeat_at: datetime | None
    offline_at: datetime | None
    unregistered_at: datetime | None

    @property
    def registered(self) -> bool:
        return self.unregistered_at is None

    def heartbeat_age(self, now: datetime) -> float | None:
        return None if self.last_heartbeat_at is None else (now - self.last_heartbeat_at).total_seconds()


def _running_counts() -> Any:
    return (select(JobRow.worker.label("worker"), func.count().label("n"))
            .where(JobRow.state == JobState.RUNNING).group_by(JobRow.worker).subquery())


def list_runners(session: Session, now: datetime, thresholds: HealthThresholds, *,
                 include_unregistered: bool = False, hostname: str | None = None) -> list[Runner]:
    running = _running_counts()
    stmt = (select(RunnerRow, func.coalesce(running.c.n, 0))
            .outerjoin(running, running.c.worker == RunnerRow.hostname).order_by(RunnerRow.hostname))
    if not include_unregistered:
        stmt = stmt.where(RunnerRow.unregistered_at.is_(None))
    if hostname is not None:
        stmt = stmt.where(RunnerRow.hostname == hostname)
    out: list[Runner] = []
    for row, n in session.execute(stmt.execution_options(populate_existing=True)).all():
        report = derive_health(now, row.last_heartbeat_at, row.diagnostics or {}, thresholds,
                               offline_at=row.offline_at, unregistered_at=row.unregistered_at)
        out.append(Runner(
            hostname=row.hostname, status=row.status, health=report.health, health_reasons=report.reasons,
            queues=tuple(row.queues or ()), concurrency=row.concurrency, desired_concurrency=row.desired_concurrency,
            version=row.version, token_id=row.token_id, capabilities=row.capabilities or {},
            diagnostics=row.diagnostics or {}, jobs_running=int(n), jobs_completed=row.jobs_completed,
            jobs_failed=row.jobs_failed, registered_at=row.registered_at, last_heartbeat_at=row.last_heartbeat_at,
            offline_at=row.offline_at, unregistered_at=row.unregistered_at, priority=row.priority, weight=row.weight,
        ))
    return out


def get_runner(session: Session, hostname: str, now: datetime, thresholds: HealthThresholds) -> Runner | None:
    found = list_runners(session, now, thresholds, include_unregistered=True, hostname=hostname)
    return found[0] if found else None


def queue_idle_slots(session: Session, queue: str, now: datetime, thresholds: HealthThresholds) -> int:
    """Job slots of ``queue`` that would start a job now: the free slots (concurrency - running jobs)
    of the enabled, online runners consuming it, less the jobs already pending there. The caller's
    own slot is busy (it runs the asking job), so it is not counted."""
    free = sum(max(0, r.concurrency - r.jobs_running) for r in list_runners(session, now, thresholds)
               if queue in r.queues and r.status is RunnerStatus.ENABLED and r.health is not Health.OFFLINE)
    if free == 0:
        return 0
    pending = (select(JobRow.id).where(JobRow.state == JobState.PENDING, JobRow.queue == queue)
               .limit(free).subquery())  # counting past `free` would change nothing
    waiting = session.scalar(select(func.count()).select_from(pending)) or 0
    return max(0, free - int(waiting))
