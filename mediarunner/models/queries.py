"""Read-side queries returning frozen ``Job`` objects."""

from __future__ import annotations

from collections import defaultdict

from sqlalchemy import select
from sqlalchemy.orm import Session

from mediarunner.errors import JobNotFoundError
from mediarunner.models.enums import JobState, JobType
from mediarunner.models.schemas import Job
from mediarunner.models.tables import EventRow, JobRow


def get_job(session: Session, job_id: str, *, with_children: bool = True) -> Job:
    row = session.get(JobRow, job_id, populate_existing=True)
    if row is None:
        raise JobNotFoundError(f"no job with id {job_id!r}")
    if not with_children:
        return Job.from_row(row)
    family = session.scalars(select(JobRow).where(JobRow.root_id == row.root_id)
                             .execution_options(populate_existing=True)).all()
    by_parent: dict[str | None, list[JobRow]] = defaultdict(list)
    for r in family:
        by_parent[r.parent_id].append(r)

    def build(r: JobRow) -> Job:
        kids = sorted(by_parent.get(r.id, []), key=lambda c: (c.created_at, c.id))
        return Job.from_row(r, tuple(build(c) for c in kids))

    return build(row)


def list_jobs(session: Session, *, state: JobState | None = None, type: JobType | None = None,
              roots_only: bool = False, limit: int = 100) -> list[Job]:
    stmt = select(JobRow).order_by(JobRow.created_at.desc(), JobRow.id).limit(limit)
    if state is not None:
        stmt = stmt.where(JobRow.state == state)
    if type is not None:
        stmt = stmt.where(JobRow.type == type)
    if roots_only:
        stmt = stmt.where(JobRow.parent_id.is_(None))
    return [Job.from_row(r) for r in session.scalars(stmt)]


def recent_events(session: Session, *, limit: int = 50, job_id: str | None = None,
                  runner: str | None = None, kind: str | None = None) -> list[EventRow]:
    stmt = select(EventRow).order_by(EventRow.id.desc()).limit(limit)
    if job_id:
        stmt = stmt.where(EventRow.job_id == job_id)
    if runner:
        stmt = stmt.where(EventRow.runner == runner)
    if kind:
        stmt = stmt.where(EventRow.kind == kind)
    return list(reversed(session.scalars(stmt).all()))
