"""Celery beat wiring: periodic ticks on the ``scheduler`` queue, guarded by a DB lease.

Run with ``mediarunner beat`` (beat embedded in a one-process worker that consumes only the
``scheduler`` queue), so ticks never wait behind a transcode. Running two of them is safe:
only the lease holder works; the other takes over when the lease expires.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Collection
from datetime import datetime
from typing import Any

from amqp.exceptions import ChannelError
from celery import Celery

from mediarunner.config import get_settings
from mediarunner.models.base import utcnow
from mediarunner.models.db import transaction
from mediarunner.models.enums import Queue
from mediarunner.scheduler import fleet as fleet_ticks
from mediarunner.scheduler import lease, placement, ticks, webhooks
from mediarunner.scheduler.dispatch import dispatch
from mediarunner.scheduler.routing import QueueProbe
from mediarunner.storage.store import open_store
from mediarunner.workers.app import app

log = logging.getLogger(__name__)
HOLDER = f"{socket.gethostname()}:{os.getpid()}"
LEASE = "scheduler"
LEASE_RETRY_SECONDS = 2.0  # a tick that cannot reach the database gives up soon (the next one comes)


class _Steadiness:
    """Since when this scheduler process has reached the database at every tick.

    A job's heartbeat cannot be written while the database is down, so silence is evidence of a
    lost worker only once beat itself has been reaching the database for the whole silence
    threshold: after an outage (or a pause of this process) nothing is failed over until the
    workers have had the threshold's time to write again."""

    def __init__(self) -> None:
        self.since: datetime | None = None
        self.last_ok: datetime | None = None

    def failed(self) -> None:
        self.since = None

    def reached(self, started: datetime, now: datetime, interval: float) -> None:
        gap = max(5.0, interval * 5)
        if (self.since is None or self.last_ok is None or (now - self.last_ok).total_seconds() > gap
                or (now - started).total_seconds() > max(1.0, interval)):  # a slow lease: the database stalled
            self.since = now
        self.last_ok = now

    def steady_for(self, seconds: float, now: datetime) -> bool:
        return self.since is not None and (now - self.since).total_seconds() >= seconds


STEADY = _Steadiness()


def _holding(ttl: float) -> bool:
    settings = get_settings()
    started = utcnow()
    try:
        held = transaction(lambda s: lease.acquire(s, LEASE, HOLDER, utcnow(), ttl), retry_for=LEASE_RETRY_SECONDS)
    except Exception:
        STEADY.failed()
        raise
    STEADY.reached(started, utcnow(), settings.beat_interval_seconds)
    return held


def broker_backlog(queues: Collection[str], *, celery: Celery = app) -> dict[str, int] | None:
    """Messages waiting in each queue (None when the broker cannot be asked)."""
    counts: dict[str, int] = {}
    try:
        with celery.connection_for_read() as conn:
            channel = conn.default_channel
            for q in queues:
                try:
                    counts[q] = int(channel.queue_declare(queue=q, passive=True).message_count)
                except ChannelError:  # no such queue (yet): nothing waits in it
                    counts[q] = 0
    except Exception as exc:
        log.warning("cannot read the broker's queue lengths (%s): re-publishing by age only", type(exc).__name__)
        return None
    return counts


@app.task(name="mediarunner.scheduler.tick")
def tick() -> dict[str, Any]:
    """Failover, timeouts and the outbox: re-publish jobs that have no live message."""
    settings = get_settings()
    if not _holding(ttl=max(10.0, settings.beat_interval_seconds * 10)):
        return {"skipped": "not the lease holder"}
    now = utcnow()
    fo = transaction(lambda s: ticks.fail_over(s, now, settings, steady_since=STEADY.since or now))
    if transaction(lambda s: ticks.has_stranded_candidates(s, now, settings)):
        online = QueueProbe(app, timeout=settings.gpu_probe_timeout_seconds).consumed()
        transaction(lambda s: ticks.reroute_stranded(s, now, settings, online))
    transaction(lambda s: placement.explain_waiting(s, now, settings))  # may clear dispatched_at: before the outbox
    due = transaction(lambda s: ticks.take_due(s, now, settings, backlog=broker_backlog))
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
    if not STEADY.steady_for(settings.runner_offline_after_seconds, utcnow()):
        return {"skipped": "the database was unreachable lately: runners could not beat"}
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
    try:
        swept = transaction(lambda s: ticks.sweep_parts(s, utcnow(), settings, remove=_remove_output))
        if swept:
            log.info("swept the parts of %s split rendition(s): %s", len(swept), ", ".join(swept))
    except Exception:  # a store that cannot be reached: the next purge tries again
        log.exception("sweeping split rendition parts failed")
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


def _remove_output(output: str, rel: str) -> None:
    open_store(output, get_settings(), "output").remove(rel)


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
