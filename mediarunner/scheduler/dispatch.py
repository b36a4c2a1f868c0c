"""Publishing jobs to the broker (the outbox side of submission).

Rows are committed first; publishing comes second and may fail (broker down). A job whose
publish failed keeps ``dispatched_at = NULL`` and beat's outbox tick publishes it again.
A duplicate message is harmless: ``transitions.claim_job`` lets exactly one message win.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from amqp.exceptions import AMQPError
from celery import Celery, chain, group
from celery.canvas import Signature
from kombu.exceptions import KombuError
from redis.exceptions import RedisError
from sqlalchemy.orm import Session

from mediarunner.config import is_amqp
from mediarunner.models import transitions
from mediarunner.models.base import utcnow
from mediarunner.models.db import transaction
from mediarunner.models.enums import JobState
from mediarunner.models.names import TASK_NAMES
from mediarunner.models.queries import get_job
from mediarunner.models.schemas import Job

log = logging.getLogger(__name__)
_WAITING = {JobState.WAITING_FOR_PARENT, JobState.PENDING}


def message_priority(job: Job, *, amqp: bool = False) -> int:
    """Map job priority (higher first) to Redis message priority (0 is served first), or to an
    AMQP one (9 first: classic queues with x-max-priority; RabbitMQ 4 quorum queues serve > 4 first)."""
    redis_priority = max(0, min(9, 4 - job.priority))
    return 9 - redis_priority if amqp else redis_priority


def signature_for(app: Celery, job: Job) -> Signature:
    """The job's task, chained to a group of its not-yet-run children (recursively)."""
    # The message carries the job id and attempt only: the payload (inputs, outputs, live stream
    # keys) stays in the database, where the worker reads it.
    sig = app.signature(
        TASK_NAMES[job.type], args=(job.id, job.attempt), queue=job.queue,
        priority=message_priority(job, amqp=is_amqp(app.conf.broker_url or "")), immutable=True,
        argsrepr=repr((job.id, job.attempt)), kwargsrepr="{}",
    )
    kids = [signature_for(app, c) for c in job.children if c.state in _WAITING]
    if not kids:
        return sig
    return chain(sig, group(kids))


def _ids(job: Job) -> Iterable[str]:
    yield job.id
    for c in job.children:
        if c.state in _WAITING:
            yield from _ids(c)


def publish(app: Celery, job: Job) -> bool:
    """Publish ``job`` (with its waiting descendants) once. False when the broker is unreachable."""
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
    """Publish ``job`` as just read (family included); return it as recorded after publishing,
    or None when it was not pending or the broker was unreachable (the outbox retries)."""
    if job.state is not JobState.PENDING or not publish(app, job):
        return None

    def record(session: Session) -> Job:
        transitions.mark_dispatched(session, _ids(job), utcnow())
        return get_job(session, job.id)

    return transaction(record, url=database_url)


def publish_submitted(job: Job, *, app: Celery, database_url: str | None = None) -> bool:
    """Publish a family just inserted with ``dispatched_at`` stamped (``insert_jobs(publishing=True)``).
    On failure the stamp is cleared so that the outbox's next tick publishes it, not one
    ``redispatch_after_seconds`` later. Returns whether the broker took the message."""
    if publish(app, job):
        return True
    ids = list(_ids(job))
    transaction(lambda s: transitions.clear_dispatched(s, ids), url=database_url)
    return False
