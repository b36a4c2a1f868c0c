"""Thin Celery tasks: one per job type, each hands (job id, attempt) to the runtime.

The broker message carries the job id and attempt only (the payload lives in the database).
Celery's view of each task tells the truth about the job, so Flower's picture is right:

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
from typing import Any

from celery import Task
from celery.exceptions import Ignore, Reject, Retry
from celery.signals import task_revoked

from mediarunner.config import get_settings
from mediarunner.models import transitions
from mediarunner.models.base import utcnow
from mediarunner.models.db import transaction
from mediarunner.models.enums import JobType
from mediarunner.models.names import TASK_NAMES
from mediarunner.models.queries import load_job
from mediarunner.tasks.handlers import HANDLERS
from mediarunner.tasks.runtime import RunStatus, execute
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


def _make_task(job_type: JobType) -> Task:
    handler = HANDLERS[job_type]

    def run(self: Task, job_id: str, attempt: int, payload: dict[str, Any] | None = None) -> str:
        # `payload` is accepted (and ignored) for messages published by older versions.
        status = execute(handler, job_id, attempt, worker=self.request.hostname or "unknown",
                         task_id=self.request.id)
        return _report(self, status, job_id)

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
    job_id = str(request.args[0])
    if transaction(lambda s: transitions.cancel(s, job_id, utcnow())):
        log.warning("job %s cancelled: its task %s was revoked", job_id, request.id)
