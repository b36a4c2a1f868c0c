"""Read-side queries returning frozen ``Job`` objects."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Mapping, Sequence
from datetime import datetime
from types import SimpleNamespace
from typing import Any, cast

from sqlalchemy import RowMapping, Select, Table, and_, bindparam, or_, select
from sqlalchemy.orm import Session

from mediarunner.errors import JobNotFoundError
from mediarunner.models.enums import JobState, JobType
from mediarunner.models.schemas import Job
from mediarunner.models.statements import Executor
from mediarunner.models.tables import EventRow, JobRow, RankRow

_JOBS = cast(Table, JobRow.__table__)
# The columns a ``Job`` is built from (what the hot path reads with Core, not the ORM).
JOB_COLUMNS = tuple(_JOBS.c[name] for name in Job.model_fields if name not in ("children", "rank"))
_FAMILY = select(*JOB_COLUMNS).where(_JOBS.c.root_id == bindparam("root_id"))
_ONE = select(*JOB_COLUMNS).where(_JOBS.c.id == bindparam("job_id"))


def job_from_mapping(values: Mapping[str, Any] | RowMapping) -> Any:
    """A row-like object (attribute access) from column values, for :func:`tree`/``Job.from_row``."""
    return SimpleNamespace(**values)


def load_job(session: Executor, job_id: str) -> Job:
    """One job without children or rank (a cheap Core read for the worker's hot path)."""
    row = session.execute(_ONE, {"job_id": job_id}).mappings().first()
    if row is None:
        raise JobNotFoundError(f"no job with id {job_id!r}")
    return Job.from_row(job_from_mapping(row))


def family_of(session: Executor, job: Any) -> Job:
    """``job`` (a row-like object) with its descendants, read with one Core SELECT of its family."""
    rows = [job_from_mapping(m) for m in session.execute(_FAMILY, {"root_id": job.root_id}).mappings()]
    return tree(rows, job.id)


def _ranked(stmt: Select[JobRow]) -> Select[JobRow, int | None]:
    """``stmt`` with each job's queue rank (NULL when the rank tick has not ranked it)."""
    return stmt.add_columns(RankRow.rank).outerjoin(RankRow, RankRow.job_id == JobRow.id) \
        .execution_options(populate_existing=True)


def get_job(session: Session, job_id: str, *, with_children: bool = True) -> Job:
    if not with_children:
        found = session.execute(_ranked(select(JobRow).where(JobRow.id == job_id))).first()
        if found is None:
            raise JobNotFoundError(f"no job with id {job_id!r}")
        return Job.from_row(found[0], rank=found[1])
    # One round trip: the whole family, found through the job's root (the job itself included).
    root = select(JobRow.root_id).where(JobRow.id == job_id).scalar_subquery()
    family = session.execute(_ranked(select(JobRow).where(JobRow.root_id == root))).all()
    return tree([r for r, _ in family], job_id, {r.id: rank for r, rank in family if rank is not None})


def tree(family: Sequence[Any], job_id: str, ranks: Mapping[str, int] | None = None, *,
         ordered: bool = False) -> Job:
    """The job ``job_id`` with its descendants, built from rows of its family (ORM rows or
    :func:`job_from_mapping` objects). Children come by age, then id; ``ordered``: in the order
    of ``family`` (as submitted, which is the order their messages are published in)."""
    by_id = {r.id: r for r in family}
    if job_id not in by_id:
        raise JobNotFoundError(f"no job with id {job_id!r}")
    by_parent: dict[str | None, list[Any]] = defaultdict(list)
    for r in family:
        by_parent[r.parent_id].append(r)

    def build(r: Any) -> Job:
        kids = by_parent.get(r.id, [])
        if not ordered:
            kids = sorted(kids, key=lambda c: (c.created_at, c.id))
        return Job.from_row(r, tuple(build(c) for c in kids), rank=(ranks or {}).get(r.id))

    return build(by_id[job_id])


def list_jobs(session: Session, *, state: JobState | None = None, type: JobType | None = None,
              roots_only: bool = False, limit: int = 100) -> list[Job]:
    stmt = select(JobRow).order_by(JobRow.created_at.desc(), JobRow.id).limit(limit)
    if state is not None:
        stmt = stmt.where(JobRow.state == state)
    if type is not None:
        stmt = stmt.where(JobRow.type == type)
    if roots_only:
        stmt = stmt.where(JobRow.parent_id.is_(None))
    return [Job.from_row(r, rank=rank) for r, rank in session.execute(_ranked(stmt))]


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


def list_jobs_page(session: Session, *, state: JobState | None = None, type: JobType | None = None,
                   priority_class: str | None = None, roots_only: bool = False, limit: int = 50,
                   after: tuple[datetime, str] | None = None, queue: str | None = None,
                   created_after: datetime | None = None) -> list[Job]:
    """Jobs newest first, by keyset pagination on (created_at, id): the page after ``after`` (the
    last job of the previous page). Stable while jobs are added: new ones come before page one."""
    stmt = select(JobRow).order_by(JobRow.created_at.desc(), JobRow.id.desc()).limit(limit)
    if after is not None:
        created, job_id = after
        stmt = stmt.where(or_(JobRow.created_at < created, and_(JobRow.created_at == created, JobRow.id < job_id)))
    if state is not None:
        stmt = stmt.where(JobRow.state == state)
    if type is not None:
        stmt = stmt.where(JobRow.type == type)
    if priority_class is not None:
        stmt = stmt.where(JobRow.priority_class == priority_class)
    if roots_only:
        stmt = stmt.where(JobRow.parent_id.is_(None))
    if queue is not None:
        stmt = stmt.where(JobRow.queue == queue)
    if created_after is not None:
        stmt = stmt.where(JobRow.created_at >= created_after)
    return [Job.from_row(r, rank=rank) for r, rank in session.execute(_ranked(stmt))]


def select_job_ids(session: Session, *, states: Collection[JobState], types: Collection[JobType] = (),
                   changed_since: datetime | None = None, limit: int = 10_000) -> list[str]:
    """Ids of the jobs in ``states`` (and of ``types``, when given) whose state last changed at or
    after ``changed_since``, oldest first: what a bulk operator action (restart, cancel) acts on."""
    stmt = select(JobRow.id).where(JobRow.state.in_(list(states))).order_by(JobRow.created_at, JobRow.id).limit(limit)
    if types:
        stmt = stmt.where(JobRow.type.in_(list(types)))
    if changed_since is not None:
        stmt = stmt.where(JobRow.updated_at >= changed_since)
    return list(session.scalars(stmt))
