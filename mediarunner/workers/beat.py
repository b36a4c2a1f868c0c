"""Celery beat wiring: periodic ticks on the ``scheduler`` queue, guarded by a DB lease.

Run with ``mediarunner beat`` (beat embedded in a one-process worker that consumes only the
``scheduler`` queue), so ticks never wait behind a transcode. Running two of them is safe:
only the lease holder works; the other takes over when the lease expires.
"""

from __future__ import annotations

import logging
import os
import socket
from typing import Any

from mediarunner.config import get_settings
from mediarunner.models.base import utcnow
from mediarunner.models.db import transaction
from mediarunner.models.enums import Queue
from mediarunner.scheduler import fleet as fleet_ticks
from mediarunner.scheduler import lease, ticks, webhooks
from mediarunner.scheduler.dispatch import dispatch
from mediarunner.scheduler.routing import QueueProbe
from mediarunner.workers.app import app

log = logging.getLogger(__name__)
HOLDER = f"{socket.gethostname()}:{os.getpid()}"
LEASE = "scheduler"


def _holding(ttl: float) -> bool:
    return transaction(lambda s: lease.acquire(s, LEASE, HOLDER, utcnow(), ttl))


@app.task(name="mediarunner.scheduler.tick")
def tick() -> dict[str, Any]:
    """Failover, timeouts and the outbox: re-publish jobs that have no live message."""
    settings = get_settings()
    if not _holding(ttl=max(10.0, settings.beat_interval_seconds * 10)):
        return {"skipped": "not the lease holder"}
    now = utcnow()
    fo = transaction(lambda s: ticks.fail_over(s, now, settings))
    if transaction(lambda s: ticks.has_stranded_candidates(s, now, settings)):
        online = QueueProbe(app, timeout=settings.gpu_probe_timeout_seconds).consumed()
        transaction(lambda s: ticks.reroute_stranded(s, now, settings, online))
    due = transaction(lambda s: ticks.due_for_dispatch(s, now, settings))
    published = sum(dispatch(job_id, app=app) for job_id in due)
    if fo.requeued or fo.failed or fo.timed_out or published:
        log.info("tick: failed over %s, failed %s, timed out %s, published %s/%s", len(fo.requeued),
                 len(fo.failed), len(fo.timed_out), published, len(due))
    return {"requeued": fo.requeued, "failed": fo.failed, "timed_out": fo.timed_out, "published": published}


@app.task(name="mediarunner.scheduler.fleet")
def fleet() -> dict[str, Any]:
    """Runners silent too long go offline; their running jobs fail over at once."""
    settings = get_settings()
    if not _holding(ttl=max(10.0, settings.beat_interval_seconds * 10)):
        return {"skipped": "not the lease holder"}
    result = transaction(lambda s: fleet_ticks.check_runners(s, utcnow(), settings))
    if result.offline:
        log.warning("runners offline: %s; failed over %s, failed %s", ", ".join(result.offline),
                    len(result.requeued), len(result.failed))
    return {"offline": result.offline, "requeued": result.requeued, "failed": result.failed}


@app.task(name="mediarunner.scheduler.ranks")
def ranks() -> int:
    settings = get_settings()
    if not _holding(ttl=60):
        return 0
    return transaction(lambda s: ticks.update_ranks(s, settings))


@app.task(name="mediarunner.scheduler.purge")
def purge() -> int:
    settings = get_settings()
    if not _holding(ttl=600):
        return 0
    total = 0
    transaction(lambda s: fleet_ticks.purge_runner_events(s, utcnow(), settings))
    while True:
        batch = transaction(lambda s: ticks.purge(s, utcnow(), settings))
        total += len(batch)
        if len(batch) < settings.purge_batch_size:
            return total


@app.task(name="mediarunner.scheduler.webhooks")
def deliver_webhooks() -> dict[str, Any]:
    """Finished families' webhooks: fix their bodies, then send the due ones (signed, with backoff)."""
    settings = get_settings()
    if not _holding(ttl=max(10.0, settings.beat_interval_seconds * 10)):
        return {"skipped": "not the lease holder"}
    enqueued = webhooks.enqueue_finished(settings, utcnow())
    states = webhooks.deliver_due(settings, utcnow())
    if states:
        log.info("webhooks: %s enqueued, %s sent: %s", enqueued, len(states), states)
    return {"enqueued": enqueued, "sent": states}


def beat_schedule() -> dict[str, dict[str, Any]]:
    s = get_settings()
    q = {"queue": Queue.SCHEDULER.value}
    fleet_every = max(s.beat_interval_seconds, s.runner_heartbeat_seconds)
    # `expires` drops ticks nobody ran in time instead of letting them pile up.
    return {
        "tick": {"task": "mediarunner.scheduler.tick", "schedule": s.beat_interval_seconds,
                 "options": {**q, "expires": max(1.0, s.beat_interval_seconds * 2)}},
        # Offline detection needs no finer grain than heartbeats: keep the scheduler queue free for ticks.
        "fleet": {"task": "mediarunner.scheduler.fleet", "schedule": fleet_every,
                  "options": {**q, "expires": max(1.0, fleet_every * 2)}},
        "ranks": {"task": "mediarunner.scheduler.ranks", "schedule": 5.0, "options": {**q, "expires": 10}},
        "webhooks": {"task": "mediarunner.scheduler.webhooks", "schedule": max(1.0, s.beat_interval_seconds),
                     "options": {**q, "expires": max(2.0, s.beat_interval_seconds * 2)}},
        "purge": {"task": "mediarunner.scheduler.purge", "schedule": 3600.0, "options": {**q, "expires": 1800}},
    }


app.conf.beat_schedule = beat_schedule()
