"""Celery beat wiring: periodic ticks on the ``scheduler`` queue, guarded by a DB lease.

Run with ``mediarunner beat`` (beat embedded in a one-process worker that consumes only the
``scheduler`` queue), so ticks never wait behind a transcode. Running two of them is safe:
only the lease holder works; the other takes over when the lease expires.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Collection
from datetime import datetime
from typing import Any

from celery import Celery

from mediarunner.config import Settings, get_settings
from mediarunner.models.base import utcnow
from mediarunner.models.db import transaction
from mediarunner.models.enums import Queue
from mediarunner.scheduler import backlog, esup_cleanup, lease, placement, ticks, webhooks
from mediarunner.scheduler import fleet as fleet_ticks
from mediarunner.scheduler.dispatch import dispatch
from mediarunner.scheduler.routing import QueueProbe
from mediarunner.storage.store import open_store
from mediarunner.workers.app import app

log = logging.getLogger(__name__)
HOLDER = f"{socket.gethostname()}:{os.getpid()}"
LEASE = "scheduler"
FAILOVER_BATCH = 50  # silent jobs failed over per transaction (the lease is renewed between batches)
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


def lease_ttl(settings: Settings) -> float:
    """One lease length for every scheduler task: a longer one taken by a rare task (the hourly purge)
    would make a takeover after the holder's death wait that long."""
    return max(10.0, settings.beat_interval_seconds * 10)


def _holding(ttl: float) -> bool:
    settings = get_settings()
    started = utcnow()
    try:
        held = transaction(lambda s: lease.acquire(s, LEASE, HOLDER, lease.database_now(s), ttl),
                           retry_for=LEASE_RETRY_SECONDS)
    except Exception:
        STEADY.failed()
        raise
    STEADY.reached(started, utcnow(), settings.beat_interval_seconds)
    return held


def broker_backlog(queues: Collection[str], *, celery: Celery = app) -> dict[str, int] | None:
    """Messages waiting in each queue (None when the broker cannot be asked)."""
    try:
        with celery.connection_for_read() as conn:
            return backlog.queue_lengths(conn, queues)
    except Exception as exc:  # the tick must go on: without the lengths it re-publishes by age
        log.warning("cannot read the broker's queue lengths (%s): re-publishing by age only", type(exc).__name__)
        return None


@app.task(name="mediarunner.scheduler.tick")
def tick() -> dict[str, Any]:
    """Failover, timeouts and the outbox: re-publish jobs that have no live message."""
    settings = get_settings()
    ttl = lease_ttl(settings)
    if not _holding(ttl=ttl):
        return {"skipped": "not the lease holder"}
    now = utcnow()
    fo = _fail_over_holding(settings, now, ttl)
    if fo is None:  # the lease ran out (a stalled database): another beat works now
        return {"skipped": "lease lost during the tick"}
    if transaction(lambda s: ticks.has_stranded_candidates(s, now, settings)):
        online = QueueProbe(app, timeout=settings.gpu_probe_timeout_seconds).consumed()
        transaction(lambda s: ticks.reroute_stranded(s, now, settings, online))
    transaction(lambda s: placement.explain_waiting(s, now, settings))  # may clear dispatched_at: before the outbox
    due = transaction(lambda s: ticks.take_due(s, now, settings, backlog=broker_backlog))
    published = _publish_holding(due, ttl)
    if fo.requeued or fo.failed or fo.timed_out or published:
        log.info("tick: failed over %s, failed %s, timed out %s, published %s/%s", len(fo.requeued),
                 len(fo.failed), len(fo.timed_out), published, len(due))
    return {"requeued": fo.requeued, "failed": fo.failed, "timed_out": fo.timed_out, "published": published}


def _fail_over_holding(settings: Settings, now: datetime, ttl: float) -> ticks.FailoverResult | None:
    """Failover in batches (each its own transaction), renewing the lease after each: hundreds of
    silent jobs never keep one tick past the lease. None when the lease was lost on the way."""
    total = ticks.FailoverResult([], [], [])
    while True:
        fo = transaction(lambda s: ticks.fail_over(s, now, settings, steady_since=STEADY.since or now,
                                                   limit=FAILOVER_BATCH))
        for mine, got in ((total.requeued, fo.requeued), (total.failed, fo.failed), (total.timed_out, fo.timed_out)):
            mine.extend(got)
        if not _holding(ttl=ttl):
            log.warning("lost the scheduler lease mid-tick after failing over %s job(s)", len(total.requeued))
            return None
        if max(len(fo.requeued) + len(fo.failed), len(fo.timed_out)) < FAILOVER_BATCH:
            return total


def _publish_holding(due: list[str], ttl: float) -> int:
    """Publish ``due``, renewing the lease every third of its TTL: a long batch (hundreds of jobs on a
    slow database) never outlives the lease, and stops when another beat took it, which would publish
    the rest too (this one's unpublished jobs are still due there: nothing is lost or sent twice)."""
    published = 0
    renewed = time.monotonic()
    for i, job_id in enumerate(due):
        if time.monotonic() - renewed > ttl / 3:
            if not _holding(ttl=ttl):
                log.warning("lost the scheduler lease mid-tick: %s job(s) left to the new holder", len(due) - i)
                break
            renewed = time.monotonic()
        published += dispatch(job_id, app=app)
    return published


@app.task(name="mediarunner.scheduler.fleet")
def fleet() -> dict[str, Any]:
    """Runners silent too long go offline; their running jobs fail over at once."""
    settings = get_settings()
    if not _holding(ttl=lease_ttl(settings)):
        return {"skipped": "not the lease holder"}
    if not STEADY.steady_for(settings.runner_offline_after_seconds, utcnow()):
        return {"skipped": "the database was unreachable lately: runners could not beat"}
    result = transaction(lambda s: fleet_ticks.check_runners(s, utcnow(), settings))
    if result.offline:
        log.warning("runners offline: %s; failed over %s, failed %s", ", ".join(result.offline),
                    len(result.requeued), len(result.failed))
    if result.pruned:
        log.info("runners pruned from the registry (offline too long): %s", ", ".join(result.pruned))
    return {"offline": result.offline, "requeued": result.requeued, "failed": result.failed,
            "pruned": result.pruned}


@app.task(name="mediarunner.scheduler.ranks")
def ranks() -> int:
    settings = get_settings()
    if not _holding(ttl=lease_ttl(settings)):
        return 0
    return transaction(lambda s: ticks.update_ranks(s, settings))


@app.task(name="mediarunner.scheduler.purge")
def purge() -> int:
    settings = get_settings()
    ttl = lease_ttl(settings)
    if not _holding(ttl=ttl):
        return 0
    total = 0
    transaction(lambda s: fleet_ticks.purge_runner_events(s, utcnow(), settings))
    try:
        swept = transaction(lambda s: ticks.sweep_parts(s, utcnow(), settings, remove=_remove_output))
        if swept:
            log.info("swept the parts of %s split rendition(s): %s", len(swept), ", ".join(swept))
    except Exception:  # a store that cannot be reached: the next purge tries again
        log.exception("sweeping split rendition parts failed")
    try:
        expired = transaction(lambda s: esup_cleanup.expire_tasks(s, utcnow(), settings, remove=_remove_output))
        if expired:
            log.info("removed the results of %s expired Esup-Pod task(s)", len(expired))
    except Exception:
        log.exception("removing expired Esup-Pod task results failed")
    while _holding(ttl=ttl):  # renewed per batch: a long purge never outlives the lease
        batch = transaction(lambda s: ticks.purge(s, utcnow(), settings))
        total += len(batch)
        if len(batch) < settings.purge_batch_size:
            return total
    return total


@app.task(name="mediarunner.scheduler.webhooks")
def deliver_webhooks() -> dict[str, Any]:
    """Finished families' webhooks: fix their bodies, then send the due ones (signed, with backoff)."""
    settings = get_settings()
    if not _holding(ttl=lease_ttl(settings)):
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
