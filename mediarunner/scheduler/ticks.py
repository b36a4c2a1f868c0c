"""Beat logic as plain functions of (session, now, settings): testable without sleeping.

Each returns what it did; ``mediarunner.workers.beat`` wires them to Celery beat.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, delete, exists, func, or_, select, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session, aliased

from mediarunner.config import Settings
from mediarunner.errors import TransientError
from mediarunner.models import transitions
from mediarunner.models.base import utcnow
from mediarunner.models.enums import ACTIVE_STATES, JobState, JobType, Queue
from mediarunner.models.ordering import RankOrder
from mediarunner.models.queries import get_job
from mediarunner.models.retry import decide_abort
from mediarunner.models.schemas import Job
from mediarunner.models.tables import EventRow, JobRow, RankRow

PARTS_DIR = ".parts"  # where the parts of a split rendition wait to be joined (tasks.transcode)


class WorkerLost(TransientError):
    """The worker running a job stopped heart-beating (killed, machine lost)."""


@dataclass(frozen=True)
class FailoverResult:
    requeued: list[str]
    failed: list[str]
    timed_out: list[str]


#: How many messages wait in each of the given broker queues (None: the broker cannot say).
Backlog = Callable[[Collection[str]], Mapping[str, int] | None]


def due_for_dispatch(session: Session, now: datetime, settings: Settings, limit: int = 500, *,
                     backlog: Backlog | None = None) -> list[str]:
    """Pending jobs with no live message: never published, retry backoff over, or stuck unclaimed.

    A published job unclaimed for ``redispatch_after_seconds`` is presumed lost and published
    again, each time after twice as long (``redispatches``), up to ``redispatch_max_seconds``.
    ``backlog``: the broker's queue lengths; a queue that still holds a message for every
    published pending job lost nothing (it has no consumer, or a slow one), so nothing in it is
    published again and an unconsumed queue does not grow."""
    rows = session.execute(
        select(JobRow.id, JobRow.queue, JobRow.dispatched_at.is_(None)).where(
            JobRow.state == JobState.PENDING,
            or_(JobRow.run_after.is_(None), JobRow.run_after <= now),
            or_(JobRow.dispatched_at.is_(None), _presumed_lost(now, settings)),
            JobRow.queue.not_in(settings.remote_queues),  # remote runners ask the API instead
        ).order_by(JobRow.priority.desc(), JobRow.created_at).limit(limit)).all()
    lost_in = {queue for _, queue, never in rows if not never}
    intact = _intact_queues(session, lost_in, backlog) if lost_in and backlog is not None else set()
    return [job_id for job_id, queue, never in rows if never or queue not in intact]


def _presumed_lost(now: datetime, settings: Settings) -> ColumnElement[bool]:
    """Published long enough ago: ``redispatch_after_seconds * 2**redispatches``, capped."""
    base = settings.redispatch_after_seconds
    cap = max(base, settings.redispatch_max_seconds)
    terms = []
    n = 0
    while n < 30 and base * 2**n < cap:
        terms.append(and_(JobRow.redispatches == n, JobRow.dispatched_at < now - timedelta(seconds=base * 2**n)))
        n += 1
    terms.append(and_(JobRow.redispatches >= n, JobRow.dispatched_at < now - timedelta(seconds=cap)))
    return or_(*terms)


def _intact_queues(session: Session, queues: Collection[str], backlog: Backlog) -> set[str]:
    counts = backlog(sorted(queues))
    if counts is None:
        return set()
    published = dict(session.execute(select(JobRow.queue, func.count()).where(
        JobRow.state == JobState.PENDING, JobRow.dispatched_at.is_not(None), JobRow.queue.in_(list(queues)))
        .group_by(JobRow.queue)).tuples().all())
    return {q for q in queues if q in counts and counts[q] >= published.get(q, 0)}


def take_due(session: Session, now: datetime, settings: Settings, *, backlog: Backlog | None = None,
             limit: int = 500) -> list[str]:
    """:func:`due_for_dispatch`, counting the re-publications (so the next one backs off)."""
    due = due_for_dispatch(session, now, settings, limit, backlog=backlog)
    if due:
        session.execute(update(JobRow).where(JobRow.id.in_(due), JobRow.state == JobState.PENDING,
                                             JobRow.dispatched_at.is_not(None))
                        .values(redispatches=JobRow.redispatches + 1).execution_options(synchronize_session=False))
    return due


def fail_over(session: Session, now: datetime, settings: Settings, *,
              steady_since: datetime | None = None, limit: int | None = None) -> FailoverResult:
    """Running jobs whose heartbeat went silent go back to pending (attempt+1, an abort, not a
    failure), or fail as poison jobs after ``max_aborts``;
    jobs past their time limit become ``timeout``.

    ``steady_since``: since when the scheduler has reached the database without a break. Silence
    counts only once that is ``failover_after_seconds`` ago: during an outage no worker could
    write its heartbeat, and a job that kept working must not be punished for it.

    ``limit``: at most this many jobs of each kind (timed out, silent), so that a caller holding a
    lease can renew it between batches."""
    requeued: list[str] = []
    failed: list[str] = []
    timed_out: list[str] = []
    for types, seconds in ((JobRow.type != JobType.LIVE, settings.job_time_limit_seconds),
                           (JobRow.type == JobType.LIVE, settings.live_time_limit_seconds)):  # streams run long
        limit_start = now - timedelta(seconds=seconds)
        for job_id, attempt in session.execute(
                select(JobRow.id, JobRow.attempt).where(JobRow.state == JobState.RUNNING, types,
                                                        JobRow.started_at < limit_start).limit(limit)).all():
            if transitions.time_out(session, job_id, attempt, now, f"ran longer than {seconds:.0f}s"):
                timed_out.append(job_id)
    silent_since = now - timedelta(seconds=settings.failover_after_seconds)
    if steady_since is not None and steady_since > silent_since:
        return FailoverResult(requeued, failed, timed_out)
    for job_id in session.scalars(select(JobRow.id).where(
            JobRow.state == JobState.RUNNING, JobRow.heartbeat_at < silent_since).limit(limit)).all():
        job = get_job(session, job_id, with_children=False)
        error = WorkerLost(f"worker {job.worker} silent since {job.heartbeat_at:%H:%M:%S}")
        outcome = fail_over_job(session, job, error, now, max_aborts=settings.max_aborts)
        (requeued if outcome == "requeued" else failed if outcome == "failed" else []).append(job.id)
    return FailoverResult(requeued, failed, timed_out)


def fail_over_job(session: Session, job: Job, error: WorkerLost, now: datetime, *,
                  max_aborts: int | None) -> str | None:
    """A running job whose worker is gone goes back to pending (attempt+1) without spending a
    failure: losing a worker is not the job's fault. ``max_aborts``: the worker was lost
    (killed, silent), which counts as an abort, and the ``max_aborts``-th fails it as a poison
    job; None: the worker was let go on purpose (shutdown, revoked, unregistered), counted nowhere.
    Returns "requeued", "failed", or None when the job had already moved on."""
    if max_aborts is None:
        ok = transitions.release(session, job.id, job.attempt, str(error), now, aborted=False)
        return "requeued" if ok else None
    decision = decide_abort(job, max_aborts)
    if decision.retry:
        ok = transitions.release(session, job.id, job.attempt, str(error), now, aborted=True,
                                 event="job_failed_over")
        return "requeued" if ok else None
    ok = transitions.fail(session, job.id, job.attempt, f"{error}; {decision.reason}", decision.kind, now)
    return "failed" if ok else None


def has_stranded_candidates(session: Session, now: datetime, settings: Settings) -> bool:
    """Cheap pre-check so the tick asks the workers (a broadcast) only when it could matter."""
    since = now - timedelta(seconds=settings.reroute_after_seconds)
    return session.execute(select(JobRow.id).where(
        JobRow.state == JobState.PENDING, JobRow.queue == Queue.GPU.value, JobRow.type == JobType.TRANSCRIBE,
        JobRow.updated_at < since).limit(1)).first() is not None


def reroute_stranded(session: Session, now: datetime, settings: Settings, online: set[str]) -> list[str]:
    """Transcriptions that chose the GPU automatically but find no GPU worker fall back to CPU."""
    if Queue.GPU.value in online:
        return []
    since = now - timedelta(seconds=settings.reroute_after_seconds)
    moved = []
    for job_id, attempt, payload in session.execute(select(JobRow.id, JobRow.attempt, JobRow.payload).where(
            JobRow.state == JobState.PENDING, JobRow.queue == Queue.GPU.value, JobRow.type == JobType.TRANSCRIBE,
            JobRow.updated_at < since)).all():
        if (payload or {}).get("device", "auto") == "auto" and transitions.reroute(
                session, job_id, attempt, Queue.CPU.value, "no gpu worker online: cpu fallback", now):
            moved.append(job_id)
    return moved


def update_ranks(session: Session, settings: Settings, now: datetime | None = None) -> int:
    """Recompute every due pending job's position in its queue, in the order workers claim them
    (:class:`~mediarunner.models.ordering.RankOrder`); returns how many ranks were written. A job
    in retry backoff has no rank until it is due (no worker may claim it before).

    Set-based, in two statements: forget the ranks of jobs that left ``pending``, then upsert the
    new positions, writing only rows whose rank changed. Ranks live in ``job_ranks``, so a tick
    that shifts them all never locks or rewrites ``jobs`` rows."""
    now = now or utcnow()
    postgres = session.get_bind().dialect.name == "postgresql"
    if postgres:  # sort 100k+ pending jobs in memory, not in temp files (the default is 4 MB)
        session.execute(text("SET LOCAL work_mem = '64MB'"))
    due = and_(JobRow.state == JobState.PENDING, or_(JobRow.run_after.is_(None), JobRow.run_after <= now))
    session.execute(delete(RankRow).where(~exists().where(JobRow.id == RankRow.job_id, due))
                    .execution_options(synchronize_session=False))
    order = RankOrder.from_settings(settings)
    ranked = _ranked_pending(order, due, postgres).params(**order.aging_params(now))
    insert = pg_insert if postgres else sqlite_insert
    stmt = insert(RankRow).from_select(["job_id", "rank"], ranked)
    stmt = stmt.on_conflict_do_update(index_elements=[RankRow.job_id], set_={"rank": stmt.excluded.rank},
                                      where=RankRow.rank != stmt.excluded.rank)
    return int(session.execute(stmt.execution_options(preserve_rowcount=True)).rowcount)  # type: ignore[attr-defined]


def _ranked_pending(order: RankOrder, pending: ColumnElement[bool], postgres: bool) -> Select[tuple[str, int]]:
    """(job id, rank) of every due pending job: by queue, then :class:`RankOrder` (effective
    class, priority higher first, age, id).

    When every class has a rank of its own and aging is off (the default), each (queue, class)
    block is numbered in the order of ``ix_jobs_pending_order`` (no sort) and shifted by the sizes
    of the blocks of better classes in its queue. Classes that share a rank are interleaved, and
    aged jobs change class, which needs one sort of all pending jobs. Classes no longer configured
    rank last."""
    classes = dict(order.classes)
    class_rank = order.sql_class()
    if len(set(classes.values())) != len(classes) or order.aging_seconds > 0:
        # Byte order for the partition key: locale-aware comparison would only slow the sort down.
        # Ids keep the database's collation: the claim breaks ties in exactly the same order.
        queue = JobRow.queue.collate("C") if postgres else JobRow.queue
        return select(JobRow.id, func.row_number().over(partition_by=queue, order_by=order.sql_order()),
                      ).where(pending)
    block = select(JobRow.id, JobRow.queue, JobRow.priority_class, func.row_number().over(
        partition_by=[JobRow.queue, JobRow.priority_class],
        order_by=[JobRow.priority.desc(), JobRow.created_at, JobRow.id]).label("n")).where(pending).subquery("block")
    sizes = select(JobRow.queue, JobRow.priority_class, func.count().label("size"), class_rank.label("class_rank")) \
        .where(pending).group_by(JobRow.queue, JobRow.priority_class).subquery("sizes")
    ahead = select(sizes.c.queue, sizes.c.priority_class, func.coalesce(func.sum(sizes.c.size).over(
        partition_by=sizes.c.queue, order_by=[sizes.c.class_rank, sizes.c.priority_class], rows=(None, -1)), 0)
        .label("ahead")).subquery("ahead")
    return select(block.c.id, block.c.n + ahead.c.ahead).join(
        ahead, and_(ahead.c.queue == block.c.queue, ahead.c.priority_class == block.c.priority_class))


def _purgeable(root: Any, cutoff: datetime) -> ColumnElement[bool]:
    """``root`` (JobRow or an alias) completed before ``cutoff`` and its family has no active member."""
    member = aliased(JobRow)
    return and_(root.parent_id.is_(None), root.state == JobState.COMPLETED, root.finished_at < cutoff,
                ~exists().where(and_(member.root_id == root.id, member.state.in_(list(ACTIVE_STATES)))))


def purge(session: Session, now: datetime, settings: Settings, *, dry_run: bool = False) -> list[str]:
    """Delete one batch of finished families whose root completed more than purge_after_days ago.

    Returns the purged root ids (or those that would be, with ``dry_run``). Call repeatedly
    until it returns fewer than ``purge_batch_size``.
    """
    if settings.purge_after_days <= 0:
        return []
    cutoff = now - timedelta(days=settings.purge_after_days)
    roots = list(session.scalars(select(JobRow.id).where(_purgeable(JobRow, cutoff))
                                 .order_by(JobRow.finished_at).limit(settings.purge_batch_size)))
    if dry_run or not roots:
        return roots
    return delete_families(session, roots, cutoff, Path(settings.scratch_dir))


def delete_families(session: Session, roots: list[str], cutoff: datetime, scratch: Path) -> list[str]:
    """Delete the families of ``roots`` that are still purgeable: the condition is checked again
    inside the deletes, so a family restarted since it was selected stays. Returns the deleted roots."""
    root = aliased(JobRow)
    still = select(root.id).where(root.id.in_(roots), _purgeable(root, cutoff)).scalar_subquery()
    children = session.scalars(delete(JobRow).where(JobRow.root_id.in_(still), JobRow.parent_id.is_not(None))
                               .returning(JobRow.id).execution_options(synchronize_session=False)).all()
    kid = aliased(JobRow)
    deleted = session.scalars(delete(JobRow).where(
        JobRow.id.in_(roots), JobRow.parent_id.is_(None), JobRow.state == JobState.COMPLETED,
        ~exists().where(and_(kid.root_id == JobRow.id, kid.id != JobRow.id)),
    ).returning(JobRow.id).execution_options(synchronize_session=False)).all()
    family = {*children, *deleted}
    if family:
        session.execute(delete(EventRow).where(EventRow.job_id.in_(family), EventRow.at < cutoff)
                        .execution_options(synchronize_session=False))
    _remove_scratch(scratch, family)
    return [r for r in roots if r in set(deleted)]


def _remove_scratch(scratch: Path, job_ids: set[str]) -> None:
    """Scratch dirs are ``<job id>-<attempt>``; a killed worker can leave one behind."""
    if not scratch.is_dir():
        return
    for d in scratch.iterdir():
        if d.name.rsplit("-", 1)[0] in job_ids:
            shutil.rmtree(d, ignore_errors=True)


PARTS_SWEPT = "parts_swept"


def sweep_parts(session: Session, now: datetime, settings: Settings, remove: Callable[[str, str], None],
                limit: int = 100) -> list[str]:
    """Remove ``.parts/<rung>`` of split renditions whose part jobs all ended more than
    ``parts_grace_seconds`` ago (cancelled, failed, or a joiner that died before its cleanup),
    with ``remove(output, rel)`` (the output store's ``remove``; beat opens the store). Each part
    job gets a ``parts_swept`` event, so a rung is swept once.
    Returns the locations swept (``<output>/.parts/<rung>``)."""
    cutoff = now - timedelta(seconds=settings.parts_grace_seconds)
    swept_already = exists().where(EventRow.job_id == JobRow.id, EventRow.kind == PARTS_SWEPT)
    candidates = session.execute(select(JobRow.parent_id, JobRow.payload).where(
        JobRow.type == JobType.TRANSCODE_RENDITION, JobRow.state.not_in(list(ACTIVE_STATES)),
        JobRow.finished_at < cutoff, JobRow.payload["parts"].as_integer() > 1, ~swept_already)
        .limit(limit)).tuples().all()
    swept = []
    for parent_id, rung in {(parent, str((payload or {}).get("rendition"))) for parent, payload in candidates}:
        group = [(job_id, payload, state, finished) for job_id, payload, state, finished in session.execute(
            select(JobRow.id, JobRow.payload, JobRow.state, JobRow.finished_at).where(
                JobRow.parent_id == parent_id, JobRow.type == JobType.TRANSCODE_RENDITION)).tuples()
            if (payload or {}).get("rendition") == rung]
        if any(state in ACTIVE_STATES or finished is None or finished >= cutoff for _, _, state, finished in group):
            continue  # a part still runs (or was restarted): its siblings' parts are needed
        output = str(group[0][1]["output"])
        remove(output, f"{PARTS_DIR}/{rung}")
        for job_id, *_ in group:
            transitions.record_event(session, PARTS_SWEPT, now, f"{PARTS_DIR}/{rung}", job_id=job_id)
        swept.append(f"{output.rstrip('/')}/{PARTS_DIR}/{rung}")
    return swept
