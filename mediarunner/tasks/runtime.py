"""The one way a job runs on a worker: claim -> handler -> complete / retry / fail.

Celery tasks call :func:`execute`; handlers (``mediarunner.tasks.handlers``) do the work.
Every outcome is written through ``mediarunner.models.transitions`` with attempt fencing.
"""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from celery.exceptions import SoftTimeLimitExceeded

from mediarunner.config import Settings, get_settings
from mediarunner.config.redact import mask_secrets
from mediarunner.errors import JobCancelled, StaleAttemptError
from mediarunner.models import runners, transitions
from mediarunner.models.balancing import Balance
from mediarunner.models.base import utcnow
from mediarunner.models.capabilities import Skills, due_work
from mediarunner.models.db import one_statement, transaction
from mediarunner.models.enums import JobState, JobType
from mediarunner.models.ordering import RankOrder
from mediarunner.models.queries import get_job, load_job
from mediarunner.models.retry import RetryPolicy, decide
from mediarunner.models.schemas import Job
from mediarunner.tasks.context import JobContext

log = logging.getLogger(__name__)

#: Each worker's instance id by its hostname (set by the fleet agent at start, inherited by the
#: pool): stored on the jobs it claims, so failing over a runner never touches a live namesake's jobs.
WORKER_INSTANCES: dict[str, str] = {}
#: What each worker can run (set by the fleet agent at start from its capabilities): it claims
#: only jobs whose needs it meets. A worker not listed (no agent) claims anything.
WORKER_SKILLS: dict[str, Skills] = {}


@dataclass(frozen=True)
class Outcome:
    """What a handler returns. ``finalize`` runs after the job is marked completed, under a lock
    on its family, with the family's jobs as committed so far (e.g. to rewrite an HLS master).
    ``cleanup`` runs once the completion is committed (e.g. removing the parts a split rendition
    was joined from): only the attempt that completed the work removes its sources."""

    result: dict[str, Any]
    finalize: Callable[[Job], None] | None = None
    cleanup: Callable[[], None] | None = None


Handler = Callable[[JobContext], Outcome]


class RunStatus:
    COMPLETED = "completed"
    DROPPED = "dropped"  # message not claimable: duplicate, stale attempt, cancelled, not yet due
    DECLINED = "declined"  # due work left to a preferred runner (balancing): ring again soon
    DEFERRED = "deferred"  # due work only other workers can run (capabilities): ring again later
    CANCELLED = "cancelled"
    SUPERSEDED = "superseded"
    RETRYING = "retrying"
    FAILED = "failed"
    TIMEOUT = "timeout"


def policy_from(settings: Settings) -> RetryPolicy:
    return RetryPolicy(base_seconds=settings.retry_base_seconds, max_seconds=settings.retry_max_seconds)


@dataclass(frozen=True)
class Doorbell:
    """A broker message rang ``queue`` (None: the queue of ``job_id``, the job it was published
    for). ``live``: it is a live job's message (those claim live jobs only). ``attempt``: the
    message's; informative only, the claimed job's own attempt fences the run."""

    job_id: str
    attempt: int
    queue: str | None = None
    live: bool = False


def execute(handler: Handler, job_id: str, attempt: int, *, worker: str, task_id: str | None,
            settings: Settings | None = None) -> str:
    """Claim exactly this attempt of this job (a stale or duplicate message loses) and run it."""
    settings = settings or get_settings()
    claimed = one_statement(lambda s: _claim_one(s, job_id, attempt, worker, task_id), recoverable=True)
    if claimed is None:
        log.info("job %s attempt %s not claimable here (duplicate, superseded, cancelled or not due)",
                 job_id, attempt)
        return RunStatus.DROPPED
    return _run(handler, claimed[0], claimed[1], settings, worker)


def execute_next(handlers: Callable[[Job], Handler], bell: Doorbell, *, worker: str, task_id: str | None,
                 settings: Settings | None = None,
                 ring: Callable[[Job], None] | None = None) -> tuple[str, Job | None]:
    """What a job's message does: claim the best due job of the queue it rang (its rank order,
    :mod:`mediarunner.models.ordering`) and run it with ``handlers(job)``. Returns the status and
    the job run (None when nothing was due). ``ring(job)`` publishes ``job``'s message: for the
    claimed job when its own message was never published (this message was another job's, which
    now needs one), and for its children once its completion made them pending."""
    settings = settings or get_settings()
    # Two transactions on the happy path: claim (+ load) and complete (+ the runner's counter).
    # On PostgreSQL the claim (and its event) is one statement; what it reads after is not written.
    claimed = _claim_retrying(bell, RankOrder.from_settings(settings), Balance.from_settings(settings), worker,
                              task_id)
    if isinstance(claimed, str):
        log.info("message for job %s attempt %s: %s", bell.job_id, bell.attempt, {
            RunStatus.DECLINED: "left to a preferred runner", RunStatus.DEFERRED: "left to a capable runner",
        }.get(claimed, "nothing due in its queue here"))
        return claimed, None
    job, parent, owed = claimed
    if owed and ring is not None:
        ring(job)
    status = _run(handlers(job), job, parent, settings, worker)
    if status == RunStatus.COMPLETED and ring is not None:
        for child in job.children:
            if child.state is JobState.WAITING_FOR_PARENT:  # pending now (pruned ones: a spare message)
                ring(child)
    return status, job


def _run(handler: Handler, job: Job, parent: Job | None, settings: Settings, worker: str) -> str:
    scratch = Path(settings.scratch_dir) / f"{job.id}-{job.attempt}"
    ctx = JobContext(job=job, parent=parent, settings=settings, worker=worker, scratch_path=scratch)
    try:
        with ctx.heartbeating():
            outcome = handler(ctx)
        # `complete` is fenced by the attempt: a cancelled or superseded attempt matches no row.
        # Without a finalize step, completing is one statement on PostgreSQL (transitions.complete).
        # The outputs are published: a database outage is waited out (completion_retry_seconds),
        # and beat does not fail the job over meanwhile (see ticks.fail_over's steady_since).
        if not _completed(ctx, outcome, retry_for=max(60.0, settings.completion_retry_seconds)):
            return _lost(ctx)
        ctx.log("completed")
        _clean_up(ctx, outcome)
        return RunStatus.COMPLETED
    except (JobCancelled, StaleAttemptError):
        return _lost(ctx)
    except SoftTimeLimitExceeded:
        msg = "job exceeded its time limit"
        transaction(lambda s: _counted(s, ctx, transitions.time_out(s, job.id, job.attempt, utcnow(), msg)))
        return RunStatus.TIMEOUT
    except Exception as exc:  # every other error is classified by the retry policy
        return _failed(ctx, exc, settings)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _claim_one(session: Any, job_id: str, attempt: int, worker: str,
               task_id: str | None) -> tuple[Job, Job | None] | None:
    job = transitions.claim_job(session, job_id, attempt, worker, task_id, utcnow(),
                                 instance=WORKER_INSTANCES.get(worker))
    if job is None:
        return None
    return job, load_job(session, job.parent_id) if job.parent_id else None


def _claim_retrying(bell: Doorbell, order: RankOrder, balance: Balance, worker: str,
                    task_id: str | None) -> tuple[Job, Job | None, bool] | str:
    """The claim, or why nothing was claimed: DROPPED (nothing due that a worker online can run),
    DECLINED (due work this worker could run is left to a preferred runner, or a row was locked
    for a moment: ring again soon) or DEFERRED (the due work needs what only other online
    workers have: ring again later). A claim that finds nothing although this worker could run
    a due job is tried once more first (PostgreSQL's SKIP LOCKED passes over a row another
    transaction holds for a moment)."""
    skills = WORKER_SKILLS.get(worker, Skills(unlimited=True))
    for pause in (0.02, None):
        claimed = one_statement(lambda s: _claim(s, bell, order, balance, worker, task_id, skills),
                                recoverable=True)
        if claimed is not None:
            return claimed
        mine, others = transaction(lambda s: due_work(s, bell.queue, bell.job_id, bell.live, skills, utcnow()))
        if not mine:
            return RunStatus.DEFERRED if others else RunStatus.DROPPED
        if pause is not None:
            time.sleep(pause)
    return RunStatus.DECLINED


def _claim(session: Any, bell: Doorbell, order: RankOrder, balance: Balance, worker: str, task_id: str | None,
           skills: Skills) -> tuple[Job, Job | None, bool] | None:
    claimed = transitions.claim_next(session, bell.queue, worker, task_id, utcnow(), order=order, live=bell.live,
                                     job_id=bell.job_id, instance=WORKER_INSTANCES.get(worker), skills=skills,
                                     balance=balance)
    if claimed is None:
        return None
    job, owed = claimed
    return job, load_job(session, job.parent_id) if job.parent_id else None, owed


def _counted(session: Any, ctx: JobContext, ok: bool, *, completed: bool = False) -> bool:
    """Bump the runner's lifetime counter in the transaction that ended the attempt."""
    if ok:
        runners.count_outcome(session, ctx.worker, completed=completed)
    return ok


def _completed(ctx: JobContext, outcome: Outcome, *, retry_for: float) -> bool:
    """Record the completion: one statement on PostgreSQL unless a finalize step reads the family
    under its lock (then a transaction). Recoverable unless ``durable_completions`` (or a live
    job: running a finished stream again would wait for a stream that never comes)."""
    if outcome.finalize is None:
        lane = not ctx.settings.durable_completions and ctx.job.type is not JobType.LIVE
        return one_statement(lambda s: _complete(s, ctx, outcome), retry_for=retry_for, recoverable=lane)
    return transaction(lambda s: _complete(s, ctx, outcome), retry_for=retry_for)


def _complete(session: Any, ctx: JobContext, outcome: Outcome) -> bool:
    now = utcnow()
    if outcome.finalize is not None:
        transitions.lock_family(session, ctx.job.root_id, now)
    if not transitions.complete(session, ctx.job.id, ctx.job.attempt, outcome.result, now, worker=ctx.worker,
                                stage=ctx.stage, children=bool(ctx.job.children), count=True):
        return False
    if outcome.finalize is not None:
        outcome.finalize(get_job(session, ctx.job.root_id))
    return True


def _clean_up(ctx: JobContext, outcome: Outcome) -> None:
    if outcome.cleanup is None:
        return
    try:
        outcome.cleanup()
    except Exception as exc:  # the work is done and recorded; beat sweeps what is left
        log.warning("job %s: cleanup after completion failed (%s: %s)", ctx.job.id, type(exc).__name__, exc)


def _lost(ctx: JobContext) -> str:
    state = transaction(lambda s: get_job(s, ctx.job.id, with_children=False).state)
    if state in (JobState.CANCELLED, JobState.PARENT_CANCELLED):
        ctx.log("cancelled; stopped and cleaned up")
        return RunStatus.CANCELLED
    log.warning("job %s attempt %s was superseded (now %s); results discarded", ctx.job.id,
                ctx.job.attempt, state)
    return RunStatus.SUPERSEDED


def _failed(ctx: JobContext, exc: BaseException, settings: Settings) -> str:
    current = transaction(lambda s: get_job(s, ctx.job.id, with_children=False))
    decision = decide(exc, current, policy_from(settings))
    message = mask_secrets(f"{type(exc).__name__}: {exc}", ctx.job.payload)
    ctx.log(f"error: {message} -> {decision.reason}")
    now = utcnow()
    if decision.retry:
        run_after = now + timedelta(seconds=decision.delay)
        if transaction(lambda s: _counted(s, ctx, transitions.requeue(
                s, ctx.job.id, ctx.job.attempt, message, run_after, now))):
            return RunStatus.RETRYING
    elif transaction(lambda s: _counted(s, ctx, transitions.fail(
            s, ctx.job.id, ctx.job.attempt, message, decision.kind, now, log_tail=ctx.log_tail))):
        log.error("job %s failed: %s", ctx.job.id, message, exc_info=decision.kind != "permanent")
        return RunStatus.FAILED
    return _lost(ctx)
