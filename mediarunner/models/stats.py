"""Dashboard statistics and metric aggregates, computed in SQL (one statement each).

Definitions ("today" is the current UTC day):

* runners online: registered, not marked offline, heartbeat within ``runner_offline_after_seconds``;
* completed / failed today: jobs that finished today as ``completed`` / ``failed`` or ``timeout``;
* average wait: ``started_at - dispatched_at`` (the last time the job was made available to workers;
  submission time if it was claimed before the dispatch was recorded) over jobs started today;
* average processing: ``finished_at - started_at`` over jobs completed today;
* throughput: jobs completed in the last hour.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Float, and_, case, cast, func, select
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from mediarunner.models.enums import JobState, JobType
from mediarunner.models.tables import JobRow, RunnerRow

S = JobState
FAILED_STATES = (S.FAILED, S.TIMEOUT)
DURATION_BUCKETS = (1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0, 10800.0, 21600.0)


@dataclass(frozen=True)
class FleetStats:
    runners_online: int
    runners_total: int
    jobs_pending: int
    jobs_running: int
    completed_today: int
    failed_today: int
    avg_wait_seconds: float | None
    avg_processing_seconds: float | None
    throughput_last_hour: int


def seconds_between(session: Session, start: Any, end: Any) -> ColumnElement[float]:
    """``end - start`` in seconds, on SQLite (naive text timestamps) and PostgreSQL."""
    if session.get_bind().dialect.name == "sqlite":
        return (func.julianday(end) - func.julianday(start)) * 86400.0
    return cast(func.extract("epoch", end - start), Float)


def _count(cond: ColumnElement[bool]) -> ColumnElement[int]:
    return func.coalesce(func.sum(case((cond, 1), else_=0)), 0)


def fleet_stats(session: Session, now: datetime, offline_after_seconds: float) -> FleetStats:
    today = now.replace(hour=0, minute=0, second=0, microsecond=0)
    hour_ago = now - timedelta(hours=1)
    online_since = now - timedelta(seconds=offline_after_seconds)
    registered = RunnerRow.unregistered_at.is_(None)
    runners_total = select(func.count()).select_from(RunnerRow).where(registered).scalar_subquery()
    runners_online = select(func.count()).select_from(RunnerRow).where(
        registered, RunnerRow.offline_at.is_(None), RunnerRow.last_heartbeat_at >= online_since).scalar_subquery()
    finished_today = JobRow.finished_at >= today
    started_today = JobRow.started_at >= today
    completed = JobRow.state == S.COMPLETED
    wait = seconds_between(session, func.coalesce(JobRow.dispatched_at, JobRow.created_at), JobRow.started_at)
    processing = seconds_between(session, JobRow.started_at, JobRow.finished_at)
    row = session.execute(
        select(
            runners_online, runners_total,
            _count(JobRow.state == S.PENDING), _count(JobRow.state == S.RUNNING),
            _count(and_(completed, finished_today)), _count(and_(JobRow.state.in_(FAILED_STATES), finished_today)),
            func.avg(case((started_today, wait), else_=None)),
            func.avg(case((and_(completed, finished_today), processing), else_=None)),
            _count(and_(completed, JobRow.finished_at >= hour_ago)),
        ).select_from(JobRow).where(  # only rows that can count: the statement stays cheap as jobs pile up
            (JobRow.state.in_([S.PENDING, S.RUNNING])) | finished_today | started_today)
    ).one()
    # With no matching job row the aggregate row still comes back, with the runner subqueries filled in.
    return FleetStats(
        runners_online=int(row[0] or 0), runners_total=int(row[1] or 0), jobs_pending=int(row[2]),
        jobs_running=int(row[3]), completed_today=int(row[4]), failed_today=int(row[5]),
        avg_wait_seconds=None if row[6] is None else max(0.0, float(row[6])),
        avg_processing_seconds=None if row[7] is None else max(0.0, float(row[7])),
        throughput_last_hour=int(row[8]),
    )


# ------------------------------------------------------------------------------ metric aggregates

def jobs_by_state(session: Session) -> list[tuple[str, JobType, JobState, int]]:
    """(queue, type, state, count) for every combination present."""
    rows = session.execute(select(JobRow.queue, JobRow.type, JobRow.state, func.count())
                           .group_by(JobRow.queue, JobRow.type, JobRow.state)).all()
    return [(q, t, s, int(n)) for q, t, s, n in rows]


@dataclass(frozen=True)
class DurationHistogram:
    type: JobType
    buckets: tuple[tuple[float, int], ...]  # cumulative (upper bound, count), without +Inf
    count: int
    sum: float


def completed_durations(session: Session) -> list[DurationHistogram]:
    """Processing time of completed jobs (still in the table) as cumulative histogram buckets."""
    dur = seconds_between(session, JobRow.started_at, JobRow.finished_at)
    cols = [_count(dur <= b) for b in DURATION_BUCKETS]
    rows = session.execute(
        select(JobRow.type, func.count(), func.coalesce(func.sum(dur), 0.0), *cols)
        .where(JobRow.state == S.COMPLETED, JobRow.started_at.is_not(None), JobRow.finished_at.is_not(None))
        .group_by(JobRow.type)).all()
    return [DurationHistogram(r[0], tuple(zip(DURATION_BUCKETS, (int(c) for c in r[3:]), strict=True)),
                              int(r[1]), float(r[2])) for r in rows]


# ------------------------------------------------------------------------------ dashboard series

@dataclass(frozen=True)
class HourSeries:
    """The last hour in equal buckets, oldest first: ``ends[i]`` closes bucket ``i``."""

    ends: tuple[datetime, ...]
    queue_depth: tuple[int, ...]  # jobs pending at each bucket's end
    completed: tuple[int, ...]  # jobs completed within each bucket


def hour_series(session: Session, now: datetime, buckets: int = 12) -> HourSeries:
    """Queue depth and throughput over the last hour, in one statement. A job was pending at ``t``
    when it was created by ``t`` and neither started nor finished (cancelled) by then."""
    step = timedelta(hours=1) / buckets
    ends = [now - step * (buckets - 1 - i) for i in range(buckets)]
    left = func.coalesce(JobRow.started_at, JobRow.finished_at)
    waits = JobRow.state == S.WAITING_FOR_PARENT  # not in a queue yet
    depth = [_count(and_(~waits, JobRow.created_at <= t, left.is_(None) | (left > t))) for t in ends]
    done = [_count(and_(JobRow.state == S.COMPLETED, JobRow.finished_at > t - step, JobRow.finished_at <= t))
            for t in ends]
    hour_ago = now - timedelta(hours=1)
    row = session.execute(select(*depth, *done).select_from(JobRow).where(  # each branch has an index
        (JobRow.state == S.PENDING) | (JobRow.started_at > hour_ago) | (JobRow.finished_at > hour_ago))).one()
    return HourSeries(tuple(ends), tuple(int(v) for v in row[:buckets]), tuple(int(v) for v in row[buckets:]))


def pending_by_queue(session: Session) -> dict[str, int]:
    """Pending jobs per queue (queues with none are absent)."""
    rows = session.execute(select(JobRow.queue, func.count()).where(JobRow.state == S.PENDING)
                           .group_by(JobRow.queue)).all()
    return {q: int(n) for q, n in rows}
