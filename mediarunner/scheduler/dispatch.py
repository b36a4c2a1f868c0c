"""Publishing jobs to the broker (the outbox side of submission).

Rows are committed first; publishing comes second and may fail (broker down). A job whose
publish failed keeps ``dispatched_at = NULL`` and beat's outbox tick publishes it again.

A message is a doorbell for its queue: the worker that takes it claims the best due job of that
queue in rank order (``transitions.claim_next``), so the broker's own order does not matter and
every pending job has one message. Children get theirs when they become pending (the worker that
completed their parent rings them). A duplicate message is harmless: with nothing due it is dropped.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from amqp.exceptions import AMQPError
from celery import Celery
from celery.canvas import Signature
from kombu.exceptions import KombuError
from redis.exceptions import RedisError
from sqlalchemy.orm import Session

from mediarunner.models import transitions
from mediarunner.models.base import utcnow
from mediarunner.models.db import transaction
from mediarunner.models.enums import JobState
from mediarunner.models.names import TASK_NAMES
from mediarunner.models.queries import get_job
from mediarunner.models.schemas import Job

log = logging.getLogger(__name__)


def signature_for(app: Celery, job: Job) -> Signature:
    """The job's message: its task with (job id, attempt) on its queue, nothing else."""
    # The message carries the job id and attempt only: the payload (inputs, outputs, live stream
    # keys) stays in the database, where the worker reads it. No chain: children are rung when
    # their parent completes, and no broker priority: the claim orders the queue.
    return app.signature(TASK_NAMES[job.type], args=(job.id, job.attempt), queue=job.queue, immutable=True,
                         argsrepr=repr((job.id, job.attempt)), kwargsrepr="{}")


def _ids(job: Job) -> Iterable[str]:
    """The job's id only: its waiting children keep ``dispatched_at`` unset until released."""
    yield job.id


def publish(app: Celery, job: Job) -> bool:
    """Publish ``job``'s message once. False when the broker is unreachable."""
    try:
        signature_for(app, job).apply_async(retry=False)
    except (KombuError, RedisError, AMQPError, OSError) as exc:
        log.warning("could not publish job %s (%s); the outbox will retry", job.id, exc)
        return False
    return True


def dispatch(job_id: str, *, app: Celery, database_url: str | None = None) -> bool:
    """Publish a pending job and record it. Safe to call again at any time."""
    job = transaction(lambda s: get_job(s, job_id), url=database_url)
    return dispatch_loaded(job, app=app, database_url=database_url) is not None


def dispatch_loaded(job: Job, *, app: Celery, database_url: str | None = None) -> Job | None:
    """Publish ``job`` as just read (family included); return it as recorded, or None when it
    was not pending or the broker was unreachable (the outbox retries). The publish is recorded
    first, so no transaction holds the job's row while a worker claims it (its claim would skip it)."""
    if job.state is not JobState.PENDING:
        return None

    def record(session: Session) -> Job:
        transitions.mark_dispatched(session, _ids(job), utcnow())
        return get_job(session, job.id)

    recorded = transaction(record, url=database_url)
    if not publish(app, job):
        transaction(lambda s: transitions.clear_dispatched(s, _ids(job)), url=database_url)
        return None
    return recorded


def publish_submitted(job: Job, *, app: Celery, database_url: str | None = None) -> bool:
    """Publish a family just inserted with ``dispatched_at`` stamped (``insert_jobs(publishing=True)``).
    On failure the stamp is cleared so that the outbox's next tick publishes it, not one
    ``redispatch_after_seconds`` later. Returns whether the broker took the message."""
    if publish(app, job):
        return True
    ids = list(_ids(job))
    transaction(lambda s: transitions.clear_dispatched(s, ids), url=database_url)
    return False
