"""Thin Celery tasks: one per job type, each hands (job id, attempt) to the runtime.

The broker message carries the job id and attempt only (the payload lives in the database), and
it is a doorbell for its queue: the task claims the best due job of the queue it was delivered
from, in rank order (``mediarunner.models.ordering``), which is usually but not always the job it
was published for. Every job has a message of its own, so every job is run once its turn comes;
the task's result and the job's ``celery_task_id`` say which job a task ran.
Celery's view of each task tells the truth about the job it ran, so Flower's picture is right:

* completed -> SUCCESS;
* failed or timed out -> FAILURE with the job's error (an expected error: no traceback logged);
* failed and re-queued by the retry policy -> RETRY (beat re-publishes it when it is due);
* cancelled or superseded while running -> REVOKED;
* a message that was not claimable (duplicate, stale attempt, not due) -> REJECTED.

Revoking a job's task (Flower's revoke/terminate, ``celery control revoke``) cancels the job
through its cancel transition, so the database and Flower agree.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from celery import Task
from celery.exceptions import Ignore, Reject, Retry
from celery.signals import task_revoked
from sqlalchemy import select

from mediarunner.config import get_settings
from mediarunner.models import transitions
from mediarunner.models.base import utcnow
from mediarunner.models.db import transaction
from mediarunner.models.enums import JobState, JobType
from mediarunner.models.names import TASK_NAMES
from mediarunner.models.queries import load_job
from mediarunner.models.schemas import Job
from mediarunner.models.tables import JobRow
from mediarunner.scheduler.dispatch import publish
from mediarunner.tasks.handlers import HANDLERS
from mediarunner.tasks.runtime import Doorbell, RunStatus, execute_next
from mediarunner.workers.app import app

log = logging.getLogger(__name__)
_JOB_TASKS = frozenset(TASK_NAMES.values())


class JobFailed(Exception):
    """The job failed (or timed out) for good: the task's FAILURE, with the job's error."""


class JobRetrying(Exception):
    """The job's attempt failed; the retry policy re-queued it."""


def _error(job_id: str) -> str:
    job = transaction(lambda s: load_job(s, job_id))
    return job.error if job is not None and job.error else "no error recorded"


def _report(task: Task, status: str, job_id: str) -> str:
    """Turn the runtime's status into the task's Celery state (see the module docstring)."""
    if status == RunStatus.COMPLETED:
        return status
    if status in (RunStatus.FAILED, RunStatus.TIMEOUT):
        raise JobFailed(f"job {job_id} {status}: {_error(job_id)}")
    if status == RunStatus.RETRYING:
        raise Retry(exc=JobRetrying(f"job {job_id} will be retried: {_error(job_id)}"))
    if status in (RunStatus.CANCELLED, RunStatus.SUPERSEDED):
        task.send_event("task-revoked", terminated=False, signum=None, expired=False)
        raise Ignore()  # acknowledged; the chain's next links (children) are not run from here
    raise Reject(f"job {job_id}: message not claimable here", requeue=False)


def _queue_of(task: Task) -> str | None:
    """The queue the message was delivered from (None: unknown; the job's queue is used)."""
    info = task.request.delivery_info or {}
    queue = info.get("routing_key")
    return str(queue) if queue and queue in get_settings().job_queues else None


def _ring(job: Job) -> None:
    """Publish ``job``'s message (a doorbell for its queue; see ``runtime.execute_next``). If this
    fails, beat's outbox publishes what waits unclaimed after ``redispatch_after_seconds``."""
    publish(app, job)


def _make_task(job_type: JobType) -> Task:

    def run(self: Task, job_id: str, attempt: int, payload: dict[str, Any] | None = None) -> str:
        # `payload` is accepted (and ignored) for messages published by older versions.
        bell = Doorbell(job_id, attempt, queue=_queue_of(self), live=job_type is JobType.LIVE)
        status, job = execute_next(lambda j: HANDLERS[j.type], bell, worker=self.request.hostname or "unknown",
                                   task_id=self.request.id, ring=_ring)
        if status in (RunStatus.DECLINED, RunStatus.DEFERRED):  # another runner's turn: ring the queue again
            # Waited here, not as a countdown: a worker holds an ETA message it received even while its
            # pool is busy (Celery raises its prefetch for them), so a busy worker would sit on the job.
            delay = get_settings().runner_decline_retry_seconds
            time.sleep(delay if status == RunStatus.DECLINED else max(1.0, delay))
            app.signature(self.name, args=(job_id, attempt), queue=bell.queue, immutable=True,
                          argsrepr=repr((job_id, attempt)), kwargsrepr="{}").apply_async()
            raise Ignore()
        return _report(self, status, job.id if job is not None else job_id)

    run.__name__ = f"run_{job_type.value}"
    settings = get_settings()
    # A live job lasts as long as its stream: it has its own (long) limit.
    limit = settings.live_time_limit_seconds if job_type is JobType.LIVE else settings.job_time_limit_seconds
    # Celery's own limits back up the scheduler's timeout scan: the soft limit raises inside the
    # job (-> `timeout`), the hard one kills a process that ignores it.
    return app.task(bind=True, name=TASK_NAMES[job_type], soft_time_limit=limit, time_limit=limit + 30,
                    throws=(JobFailed,))(run)


TASKS: dict[JobType, Task] = {t: _make_task(t) for t in HANDLERS}


@task_revoked.connect
def _cancel_revoked_job(sender: Any = None, request: Any = None, expired: bool = False, **_: Any) -> None:
    """A job task revoked by an operator (Flower, ``celery control revoke``) cancels its job."""
    if expired or request is None or getattr(sender, "name", None) not in _JOB_TASKS or not request.args:
        return
    # The job this task claimed (a message may run another job than its own), else its own.
    running = transaction(lambda s: s.scalar(select(JobRow.id).where(
        JobRow.celery_task_id == request.id, JobRow.state == JobState.RUNNING)))
    job_id = str(running or request.args[0])
    if transaction(lambda s: transitions.cancel(s, job_id, utcnow())):
        log.warning("job %s cancelled: its task %s was revoked", job_id, request.id)
