"""Esup-Pod Runner Manager tasks (``/esup``): Pod's task id <-> the root of the job family it
became, Pod's ``notify_url`` and the Bearer key to send back to it. Written in the submission's
transaction (:func:`add`), read by the API and by the webhook tick; nothing here changes a job."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import and_, delete, exists, select
from sqlalchemy.orm import Session, aliased

from mediarunner.models.api_tables import EsupTaskRow
from mediarunner.models.enums import ACTIVE_STATES, JobState
from mediarunner.models.schemas import Job
from mediarunner.models.tables import JobRow


@dataclass(frozen=True)
class EsupTask:
    task_id: str
    job_id: str
    task_type: str
    output: str
    notify_url: str
    etab_name: str
    app_name: str
    app_version: str | None
    created_at: datetime

    def __repr__(self) -> str:  # no token here at all; the repr says so for whoever looks
        return f"EsupTask(task_id={self.task_id!r}, job_id={self.job_id!r}, task_type={self.task_type!r})"


def _task(r: EsupTaskRow) -> EsupTask:
    return EsupTask(r.task_id, r.job_id, r.task_type, r.output, r.notify_url, r.etab_name, r.app_name,
                    r.app_version, r.created_at)


def add(session: Session, task: EsupTask, client_token: str) -> None:
    session.add(EsupTaskRow(task_id=task.task_id, job_id=task.job_id, task_type=task.task_type, output=task.output,
                            notify_url=task.notify_url, client_token=client_token, etab_name=task.etab_name,
                            app_name=task.app_name, app_version=task.app_version, created_at=task.created_at))


def get(session: Session, task_id: str) -> EsupTask | None:
    row = session.get(EsupTaskRow, task_id)
    return None if row is None else _task(row)


def of_root(session: Session, root_id: str) -> EsupTask | None:
    row = session.scalar(select(EsupTaskRow).where(EsupTaskRow.job_id == root_id))
    return None if row is None else _task(row)


def token_of_root(session: Session, root_id: str) -> str | None:
    """The Bearer key Pod sent with the task of this family (for its notify webhook only)."""
    return session.scalar(select(EsupTaskRow.client_token).where(EsupTaskRow.job_id == root_id))


def count(session: Session) -> int:
    from sqlalchemy import func

    return int(session.scalar(select(func.count()).select_from(EsupTaskRow)) or 0)


def cutoff(now: datetime, days: float) -> datetime | None:
    """Tasks created before this are expired (esup-runner: by creation age, any status); None: never."""
    return None if days <= 0 else now - timedelta(days=days)


def expired(session: Session, now: datetime, days: float, limit: int = 100) -> list[EsupTask]:
    """Tasks created more than ``days`` before ``now`` whose family has no active member (oldest first)."""
    before = cutoff(now, days)
    if before is None:
        return []
    member = aliased(JobRow)
    active = exists().where(and_(member.root_id == EsupTaskRow.job_id, member.state.in_(list(ACTIVE_STATES))))
    rows = session.scalars(select(EsupTaskRow).where(EsupTaskRow.created_at < before, ~active)
                           .order_by(EsupTaskRow.created_at).limit(limit))
    return [_task(r) for r in rows]


def forget(session: Session, task_id: str) -> None:
    """Drop a task's row (its jobs stay until the purge): Pod's id is then unknown here."""
    session.execute(delete(EsupTaskRow).where(EsupTaskRow.task_id == task_id))


def status(job: Job) -> str:
    """esup-runner's task status of a family: pending, running, completed, failed or timeout."""
    states = {j.state for j in job.family}
    if not job.done:
        return "pending" if job.state is JobState.PENDING else "running"
    if states == {JobState.COMPLETED}:
        return "completed"
    return "timeout" if JobState.TIMEOUT in states else "failed"


def error_message(job: Job) -> str | None:
    """The first failure's message (no paths of this machine beyond what the job recorded)."""
    for j in job.family:
        if j.error and j.state is not JobState.COMPLETED:
            return f"{j.type.value}: {j.error}"[:2000]
    if status(job) == "failed":
        return "cancelled"
    return None
