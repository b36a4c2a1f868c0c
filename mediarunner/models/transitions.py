"""Every job state change, and nothing else, lives here.

Each transition is one guarded compare-and-set: ``UPDATE jobs SET ... WHERE id = :id AND
state IN (...) [AND attempt = :attempt]``; the rowcount says whether it happened. Work done by
a worker is fenced by its attempt number: after a failover or restart the attempt grows, so a
late ("zombie") worker's heartbeat, result or failure matches no row and is discarded.

Functions take a Session (the caller owns the transaction) and ``now`` (no hidden clock).
"""

from __future__ import annotations

import uuid
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, delete, exists, func, insert, select, update
from sqlalchemy.orm import Session

from mediarunner.models import direct
from mediarunner.models.balancing import STAMP_CLAIMER, Balance
from mediarunner.models.capabilities import Skills
from mediarunner.models.claims import CLAIM_LOGGED, CLAIM_ONE, claim_next_statement
from mediarunner.models.direct import Direct
from mediarunner.models.enums import ACTIVE_STATES, RESTARTABLE_STATES, ErrorKind, JobState, JobType, Stage
from mediarunner.models.ordering import RankOrder
from mediarunner.models.queries import family_of, get_job, job_from_mapping, tree
from mediarunner.models.schemas import Job
from mediarunner.models.statements import (  # noqa: F401  (BUMP_FAILED, record_event: re-exported)
    BUMP_COMPLETED,
    BUMP_FAILED,
    JOBS,
    Executor,
    core,
    insert_one_job,
    is_postgres,
    logged,
    record_event,
    rowcount,
)
from mediarunner.models.tables import JobRow

S = JobState
J = JOBS.c
_INSERT_JOB = insert(JOBS)
_logged, _postgres, _rowcount = logged, is_postgres, rowcount


@dataclass(frozen=True)
class NewJob:
    """A job to insert. ``parent`` is an index into the list given to :func:`insert_jobs`."""

    type: JobType
    queue: str
    payload: dict[str, Any]
    parent: int | None = None
    priority: int = 0
    priority_class: str = "default"
    max_attempts: int = 3
    private_payload: dict[str, Any] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)
    routing_reason: str | None = None
    need_gpu: bool = False  # what a worker must have to claim it (models.capabilities)
    need_model: str | None = None
    need_encoder: str | None = None
    id: str = field(default_factory=lambda: str(uuid.uuid4()))


def _cas(session: Executor, job_id: str, states: Collection[JobState], values: dict[str, Any],
         *, attempt: int | None = None, extra: Sequence[Any] = ()) -> bool:
    # Core statements on the table (not ORM-enabled ones): the hot path of every job runs
    # through here, and the ORM's bulk-update machinery would add nothing but CPU.
    stmt = update(JOBS).where(J.id == job_id, J.state.in_(list(states)), *extra)
    if attempt is not None:
        stmt = stmt.where(J.attempt == attempt)
    stmt = stmt.values(**values).execution_options(synchronize_session=False)
    return _rowcount(session.execute(stmt)) == 1


def _worker_of(session: Executor, job_id: str) -> str | None:
    return session.scalar(select(JobRow.worker).where(JobRow.id == job_id))


# --------------------------------------------------------------------------- creation

_UNSET: dict[str, Any] = dict.fromkeys((
    "stage", "result", "error", "error_kind", "log_tail", "worker", "celery_task_id", "started_at",
    "heartbeat_at", "finished_at", "run_after"))


def insert_jobs(session: Executor, jobs: Sequence[NewJob], now: datetime, *, publishing: bool = False) -> Job:
    """Insert a family of jobs (roots ``pending``, children ``waiting_for_parent``) in one statement,
    returning the root job as written (no read back).

    ``publishing``: the caller publishes the family's message right after commit, so the rows
    carry ``dispatched_at`` already (saving a second transaction per submit). Should the caller
    die between commit and publish, the outbox re-publishes the job once ``dispatched_at`` is
    ``redispatch_after_seconds`` old; a failed publish clears it (:func:`clear_dispatched`)."""
    ids = [j.id for j in jobs]
    rows = []
    for j in jobs:
        root = j
        while root.parent is not None:
            root = jobs[root.parent]
        rows.append(dict(
            _UNSET, id=j.id, type=j.type, state=S.PENDING if j.parent is None else S.WAITING_FOR_PARENT,
            progress=0.0, queue=j.queue, routing_reason=j.routing_reason, priority=j.priority,
            priority_class=j.priority_class, parent_id=ids[j.parent] if j.parent is not None else None,
            root_id=root.id, attempt=1, failures=0, aborts=0, max_attempts=j.max_attempts, payload=j.payload,
            private_payload=j.private_payload, meta=j.meta, created_at=now, updated_at=now,
            dispatched_at=now if publishing else None, need_gpu=j.need_gpu, need_model=j.need_model,
            need_encoder=j.need_encoder, waiting_reason=None,
        ))
    message = f"{jobs[0].type.value} with {len(jobs) - 1} child job(s)"
    if len(rows) == 1 and _postgres(session):  # the job and its event: one statement, one round trip
        direct.first(core(session), insert_one_job(rows[0], with_event=True),
                     {**rows[0], "now": now, "runner": None, "message": message})
    else:
        if len(rows) == 1:
            direct.run(core(session), insert_one_job(rows[0], with_event=False), rows[0])
        else:
            session.execute(_INSERT_JOB, rows)
        record_event(session, "job_submitted", now, message, job_id=ids[0])
    # In submission order: a ladder's heaviest children first, so they are published (and run) first.
    return tree([job_from_mapping(r) for r in rows], ids[0], ordered=True)


# --------------------------------------------------------------------------- dispatch and claim

def mark_dispatched(session: Session, job_ids: Iterable[str], now: datetime) -> None:
    """Remember that a message was published (the outbox re-publishes jobs that lack one)."""
    _set_dispatched(session, job_ids, now)


def clear_dispatched(session: Session, job_ids: Iterable[str]) -> None:
    """Publishing failed: the outbox should publish these jobs at its next tick."""
    _set_dispatched(session, job_ids, None)


def _set_dispatched(session: Session, job_ids: Iterable[str], when: datetime | None) -> None:
    ids = list(job_ids)
    if ids:
        session.execute(
            update(JOBS).where(J.id.in_(ids), J.state.in_([S.PENDING, S.WAITING_FOR_PARENT]))
            .values(dispatched_at=when).execution_options(synchronize_session=False)
        )


def claim_job(session: Executor, job_id: str, attempt: int, worker: str, task_id: str | None,
              now: datetime, *, family: bool = True, instance: str | None = None) -> Job | None:
    """pending -> running, for exactly this attempt (a duplicate or stale message loses here),
    returning the claimed job as written (with its descendants when ``family``),
    or None when this message lost. One ``UPDATE ... RETURNING``: claiming and loading a job is
    one round trip. ``instance``: the worker process (failover of a runner is by instance)."""
    params = {"job_id": job_id, "attempt_": attempt, "worker_": worker, "instance_": instance, "task_id": task_id,
              "now": now}
    message = f"attempt {attempt}"
    if _postgres(session):
        row = direct.first(core(session), CLAIM_LOGGED, {**params, "runner": worker, "message": message})
    else:
        row = direct.first(core(session), CLAIM_ONE, params)
        if row is not None:
            record_event(session, "job_assigned", now, message, job_id=job_id, runner=worker)
    if row is None:
        return None
    job = job_from_mapping(row)
    return family_of(session, job) if family and row.get("has_children", True) else Job.from_row(job)


def claim_next(session: Executor, queue: str | None, worker: str, task_id: str | None, now: datetime, *,
               order: RankOrder, live: bool = False, job_id: str | None = None, instance: str | None = None,
               skills: Skills = Skills(unlimited=True), balance: Balance | None = None,
               family: bool = True) -> tuple[Job, bool] | None:
    """The doorbell claim: pending -> running for the best due job of ``queue`` (None: the queue
    of ``job_id``, whose message rang) that ``skills`` can run, in :class:`RankOrder`, or None
    (also when ``balance`` prefers another runner for it). One statement (PostgreSQL: ``FOR
    UPDATE SKIP LOCKED``; SQLite serialises writers). ``live``: live jobs are claimed by live
    messages only. Also returns whether the job's own message was never published
    (``dispatched_at`` unset): the caller then owes its queue a message."""
    pg = _postgres(session)
    params = {
        "queue_": queue, "job_id": job_id, "worker_": worker, "instance_": instance, "task_id": task_id, "now": now,
        "runner": worker, **order.aging_params(now), **skills.params(), **(balance.params(now) if balance else {}),
    }
    row = direct.first(core(session), claim_next_statement(order, pg, live, balance), params)
    if row is None:
        return None
    if not pg:
        task = f", task {task_id}" if task_id else ""
        record_event(session, "job_assigned", now, f"attempt {row['attempt']}{task}", job_id=row["id"], runner=worker)
        if balance is not None and balance.method == "round_robin":
            direct.run(core(session), _STAMP_ONE, {"runner": worker, "now": now})
    job = job_from_mapping(row)
    claimed = family_of(session, job) if family and row.get("has_children", True) else Job.from_row(job)
    return claimed, row["dispatched_at"] is None


def touch(session: Executor, job_id: str, attempt: int, now: datetime, *, progress: float | None = None,
          stage: Stage | None = None, log_tail: str | None = None, result: dict[str, Any] | None = None) -> bool:
    """Heartbeat (and progress) of a running attempt. False: cancelled or superseded, stop now.

    ``result``: interim facts a percentage cannot express (seconds of a live stream); the final
    result written by :func:`complete` replaces them."""
    values: dict[str, Any] = {"heartbeat_at": now, "updated_at": now}
    if result is not None:
        values["result"] = result
    if progress is not None:
        values["progress"] = max(0.0, min(100.0, progress))
    if stage is not None:
        values["stage"] = stage
    if log_tail is not None:
        values["log_tail"] = log_tail[-8000:]
    return _cas(session, job_id, [S.RUNNING], values, attempt=attempt)


def record_part_encoded(session: Session, job_id: str, attempt: int, root_id: str, now: datetime,
                        result: dict[str, Any] | None = None) -> Job | None:
    """A running part of a split rendition says its part is encoded (``result.part_encoded``, or the
    ``result`` given), under the family lock, and gets the family as committed so far: the lock
    serialises these calls, so one part sees every sibling encoded and joins them. None: lost."""
    lock_family(session, root_id, now)
    if not touch(session, job_id, attempt, now, result=result or {"part_encoded": True}):
        return None
    return get_job(session, root_id)


def prune_children(session: Session, parent_id: str, attempt: int, keep: Collection[str]) -> list[str]:
    """A running parent drops waiting children it decided not to run (e.g. rungs that would upscale)."""
    if session.execute(select(JobRow.id).where(
            JobRow.id == parent_id, JobRow.state == S.RUNNING, JobRow.attempt == attempt)).first() is None:
        return []
    doomed = list(session.scalars(select(JobRow.id).where(
        JobRow.parent_id == parent_id, JobRow.state == S.WAITING_FOR_PARENT, JobRow.id.not_in(list(keep)))))
    if doomed:
        session.execute(delete(JobRow).where(JobRow.id.in_(doomed), JobRow.state == S.WAITING_FOR_PARENT)
                        .execution_options(synchronize_session=False))
    return doomed


# --------------------------------------------------------------------------- outcomes of an attempt

_COMPLETE = (
    update(JOBS)
    .where(J.id == bindparam("job_id"), J.state == S.RUNNING, J.attempt == bindparam("attempt_"))
    .values(state=S.COMPLETED, result=bindparam("result_", type_=J.result.type), progress=100.0,
            finished_at=bindparam("now", type_=J.finished_at.type), updated_at=bindparam("now"),
            heartbeat_at=bindparam("now"), error=None, error_kind=None,
            stage=func.coalesce(bindparam("stage_", type_=J.stage.type), J.stage))
)
_RELEASE_CHILDREN = (
    update(JOBS).where(J.parent_id == bindparam("job_id"), J.state == S.WAITING_FOR_PARENT)
    .values(state=S.PENDING, updated_at=bindparam("now", type_=J.updated_at.type), dispatched_at=bindparam("now"))
)


def _count_if_done(done: Any) -> Any:
    return BUMP_COMPLETED.where(exists(select(done.c.id)))


def _release_if_done(done: Any) -> Any:
    return _RELEASE_CHILDREN.where(exists(select(done.c.id)))


_COMPLETE_ONE, _RELEASE_ONE, _BUMP_ONE = Direct(_COMPLETE), Direct(_RELEASE_CHILDREN), Direct(BUMP_COMPLETED)
_STAMP_ONE = Direct(STAMP_CLAIMER)
# PostgreSQL: completion, its event, the children's release and the runner's counter in one statement.
_COMPLETE_LOGGED = {
    (count, children): Direct(_logged(_COMPLETE.returning(J.id), "job_completed",
                                      *([_count_if_done] if count else []), *([_release_if_done] if children else [])))
    for count in (False, True) for children in (False, True)
}


def complete(session: Executor, job_id: str, attempt: int, result: dict[str, Any], now: datetime, *,
             worker: str | None = None, stage: Stage | None = None, children: bool = True,
             count: bool = False) -> bool:
    """running -> completed for exactly this attempt; waiting children become pending.
    ``worker``: who ran it, for the event (looked up when not given); ``stage``: the last one;
    ``children=False``: the caller knows the job has none (saves a statement); ``count``: add
    one to ``worker``'s lifetime ``jobs_completed`` in the same transaction. On PostgreSQL all of
    it is one statement (safe for ``transaction(single_statement=True)`` when ``worker`` is given)."""
    params = {"job_id": job_id, "attempt_": attempt, "result_": result, "now": now, "stage_": stage}
    runner = worker or _worker_of(session, job_id)
    count = count and runner is not None
    if _postgres(session):
        return direct.first(core(session), _COMPLETE_LOGGED[count, children],
                            {**params, "runner": runner, "message": f"attempt {attempt}"}) is not None
    conn = core(session)
    ok = direct.run(conn, _COMPLETE_ONE, params) == 1
    if ok:
        if children:  # they become runnable; the Celery chain (or the outbox) delivers their messages
            direct.run(conn, _RELEASE_ONE, {"job_id": job_id, "now": now})
        record_event(conn, "job_completed", now, f"attempt {attempt}", job_id=job_id, runner=runner)
        if count:
            direct.run(conn, _BUMP_ONE, {"runner": runner})
    return ok


def fail(session: Session, job_id: str, attempt: int, error: str, kind: ErrorKind, now: datetime, *,
         log_tail: str | None = None) -> bool:
    """running -> failed for good; waiting descendants become parent_failed."""
    values: dict[str, Any] = dict(state=S.FAILED, error=error[:4000], error_kind=kind, finished_at=now,
                                  updated_at=now)
    if log_tail is not None:
        values["log_tail"] = log_tail[-8000:]
    ok = _cas(session, job_id, [S.RUNNING], values, attempt=attempt)
    if ok:
        _cascade(session, job_id, S.PARENT_FAILED, now)
        record_event(session, "job_failed", now, f"attempt {attempt} ({kind}): {error}", job_id=job_id,
                     runner=_worker_of(session, job_id))
    return ok


def requeue(session: Session, job_id: str, attempt: int, error: str, run_after: datetime | None,
            now: datetime, *, event: str = "job_retried") -> bool:
    """running -> pending as attempt+1 (retry after a transient error, or failover of a lost worker)."""
    worker = _worker_of(session, job_id)  # cleared below; the event keeps it for the runner's log
    ok = _cas(session, job_id, [S.RUNNING], dict(
        state=S.PENDING, attempt=J.attempt + 1, failures=J.failures + 1, error=error[:4000],
        error_kind=ErrorKind.TRANSIENT, run_after=run_after, dispatched_at=None, redispatches=0, stage=None,
        updated_at=now, worker=None, worker_instance=None,
    ), attempt=attempt)
    if ok:
        record_event(session, event, now, f"attempt {attempt} -> {attempt + 1}: {error}", job_id=job_id,
                     runner=worker)
    return ok


def release(session: Session, job_id: str, attempt: int, reason: str, now: datetime, *, aborted: bool,
            event: str = "job_released") -> bool:
    """running -> pending without spending a failure: the worker, not the job, went away.

    ``aborted``: the worker was lost (killed, silent) while running it, which counts towards
    MAX_ABORTS (a job that keeps killing workers); a graceful release (warm shutdown, token
    revocation, unregistering) counts nothing. The attempt grows all the same: it is the fence
    generation, so the lost worker's late writes and its message match no row. ``failures``
    (what MAX_ATTEMPTS caps) is left alone. The job keeps its ``created_at``: its rank."""
    worker = _worker_of(session, job_id)  # cleared below; the event keeps it for the runner's log
    values: dict[str, Any] = dict(
        state=S.PENDING, attempt=J.attempt + 1, error=reason[:4000], error_kind=None, run_after=None,
        dispatched_at=None, redispatches=0, stage=None, updated_at=now, worker=None, worker_instance=None)
    if aborted:
        values["aborts"] = J.aborts + 1
    ok = _cas(session, job_id, [S.RUNNING], values, attempt=attempt)
    if ok:
        record_event(session, event, now, f"attempt {attempt} -> {attempt + 1} (no failure counted): {reason}",
                     job_id=job_id, runner=worker)
    return ok


def reroute(session: Session, job_id: str, attempt: int, queue: str, reason: str, now: datetime) -> bool:
    """Move a pending job to another queue. The attempt grows, so the message still waiting in
    the old queue is stale and will be dropped if a worker ever takes it."""
    ok = _cas(session, job_id, [S.PENDING], dict(
        queue=queue, routing_reason=reason[:200], attempt=J.attempt + 1, dispatched_at=None, redispatches=0,
        updated_at=now,
    ), attempt=attempt)
    if ok:
        record_event(session, "job_rerouted", now, f"-> {queue}: {reason}", job_id=job_id)
    return ok


def time_out(session: Session, job_id: str, attempt: int, now: datetime, error: str) -> bool:
    ok = _cas(session, job_id, [S.RUNNING], dict(
        state=S.TIMEOUT, error=error, error_kind=ErrorKind.TRANSIENT, finished_at=now, updated_at=now,
    ), attempt=attempt)
    if ok:
        _cascade(session, job_id, S.PARENT_FAILED, now)
        record_event(session, "job_timeout", now, error, job_id=job_id, runner=_worker_of(session, job_id))
    return ok


# --------------------------------------------------------------------------- operator actions

def cancel(session: Session, job_id: str, now: datetime) -> bool:
    """Cancel an active job and every active descendant (running workers notice within ~1 s)."""
    ok = _cas(session, job_id, ACTIVE_STATES, dict(state=S.CANCELLED, finished_at=now, updated_at=now))
    n = _cascade(session, job_id, S.PARENT_CANCELLED, now, from_states=ACTIVE_STATES)
    if ok or n:
        record_event(session, "job_cancelled", now, f"{n} descendant(s) cancelled", job_id=job_id)
    return ok or n > 0


def restart(session: Session, job_id: str, now: datetime) -> bool:
    """Give a failed/timed-out/cancelled job (and its unfinished descendants) a fresh attempt."""
    row = session.get(JobRow, job_id)
    if row is None:
        return False
    parent_done = row.parent_id is None or session.scalar(
        select(JobRow.state).where(JobRow.id == row.parent_id)) == S.COMPLETED
    ok = _cas(session, job_id, RESTARTABLE_STATES, _fresh_attempt(
        S.PENDING if parent_done else S.WAITING_FOR_PARENT, now))
    if ok:
        _cascade(session, job_id, S.WAITING_FOR_PARENT, now, from_states=RESTARTABLE_STATES,
                 values=_fresh_attempt(S.WAITING_FOR_PARENT, now))
        record_event(session, "job_restarted", now, "", job_id=job_id)
    return ok


def _fresh_attempt(state: JobState, now: datetime) -> dict[str, Any]:
    return dict(state=state, attempt=J.attempt + 1, failures=0, aborts=0, error=None, error_kind=None,
                result=None, run_after=None, dispatched_at=None, redispatches=0, started_at=None, finished_at=None,
                heartbeat_at=None, worker=None, worker_instance=None, stage=None, progress=0.0, updated_at=now)


def _cascade(session: Session, job_id: str, state: JobState, now: datetime, *,
             from_states: Collection[JobState] = (S.WAITING_FOR_PARENT, S.PENDING),
             values: dict[str, Any] | None = None) -> int:
    """Move descendants in ``from_states`` to ``state``, level by level. Returns how many moved."""
    moved = 0
    frontier = [job_id]
    vals = values or dict(state=state, finished_at=now, updated_at=now)
    while frontier:
        children = list(session.scalars(select(JobRow.id).where(JobRow.parent_id.in_(frontier))))
        if children:
            moved += _rowcount(session.execute(
                update(JobRow).where(JobRow.id.in_(children), JobRow.state.in_(list(from_states)))
                .values(**vals).execution_options(synchronize_session=False)))
        frontier = children
    return moved


def lock_family(session: Session, root_id: str, now: datetime) -> None:
    """Serialise work on one family until commit (a row lock on PostgreSQL, the write lock on SQLite)."""
    session.execute(update(JobRow).where(JobRow.id == root_id).values(updated_at=now)
                    .execution_options(synchronize_session=False))


# --------------------------------------------------------------------------- remote (HTTP) runners

def runner_accept(session: Session, job_id: str, attempt: int, runner: str, runner_id: str,
                  now: datetime) -> Job | None:
    """A remote runner accepts a pending job: the same fenced claim as a Celery worker's (the
    runner's id as the instance), so a job offered to several runners runs on exactly one."""
    return claim_job(session, job_id, attempt, runner, None, now, instance=runner_id)


def runner_abort(session: Session, job_id: str, attempt: int, reason: str, now: datetime) -> bool:
    """A remote runner gives its job back (shutting down, or cut off): :func:`release`, nothing
    counted; the old attempt's job token goes stale and the job runs again at once elsewhere."""
    return release(session, job_id, attempt, reason, now, aborted=False, event="job_aborted")
