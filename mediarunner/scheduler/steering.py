"""Operator actions on runners, in two halves that :class:`mediarunner.fleet.FleetService` composes:
the database first (the lasting intent: session functions, state changes through ``runners`` and
``tokens``), then Celery remote control (the immediate effect: functions of a Celery app). A worker
that misses the broadcast converges on its next heartbeat, which answers with the stored status.

* maintenance / disable: ``cancel_consumer`` for each queue: running jobs finish, no new ones;
* enable: ``add_consumer``;
* max concurrent jobs: ``pool_grow`` / ``pool_shrink`` by the difference to the live pool size;
* test connection: ``ping`` with the round-trip latency of each reply;
* revoking a token: unregister its runners, release their running jobs, ``cancel_consumer``;
* unregistering one runner: the same for that runner (it is back when it starts again);
* removing a runner: forget a stopped or unregistered one.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from celery import Celery
from sqlalchemy import select
from sqlalchemy.orm import Session

from mediarunner.models import runners, tokens
from mediarunner.models.enums import RunnerStatus
from mediarunner.models.tables import RunnerRow
from mediarunner.scheduler.fleet import fail_over_runner


@dataclass(frozen=True)
class SteerResult:
    hostname: str
    changed: bool  # the stored state changed (False: it already was so)
    replies: dict[str, Any] = field(default_factory=dict)  # remote-control answers; empty: no answer yet

    @property
    def acknowledged(self) -> bool:
        return bool(self.replies)


@dataclass(frozen=True)
class PingResult:
    hostname: str
    ok: bool
    latency_ms: float | None


# ------------------------------------------------------------------------------ database half

def queues_of(session: Session, hostname: str) -> list[str] | None:
    """The runner's queues; None: no runner of that name."""
    queues = session.scalar(select(RunnerRow.queues).where(RunnerRow.hostname == hostname))
    return None if queues is None else list(queues)


def revoke_token(session: Session, token_id: str, now: datetime) -> dict[str, list[str]] | None:
    """Revoke; its runners are unregistered and their running jobs go back to pending (no failure,
    no abort counted: the operator let them go). Returns each
    unregistered runner's queues (to stop their consumers). None: no such token or already revoked."""
    hosts = tokens.revoke_token(session, token_id, now)
    if hosts is None:
        return None
    for h in hosts:
        fail_over_runner(session, h, now, f"unregistered (token {token_id} revoked)", max_aborts=None)
    queues = dict(session.execute(select(RunnerRow.hostname, RunnerRow.queues)
                                  .where(RunnerRow.hostname.in_(hosts))).tuples().all())
    return {h: list(queues.get(h) or []) for h in hosts}


def unregister_runner(session: Session, hostname: str, now: datetime) -> tuple[list[str], list[str]] | None:
    """One runner leaves the fleet (PeerTube's per-runner unregister): unregistered until it starts
    again, its running jobs released (no failure or abort counted). Returns its queues (to stop
    their consumers) and the released jobs; None: no such runner."""
    queues = queues_of(session, hostname)
    if queues is None:
        return None
    runners.unregister(session, hostname, now, "unregistered by the operator")
    released = fail_over_runner(session, hostname, now, "runner unregistered by the operator", max_aborts=None)
    return queues, released.requeued


def remove_runner(session: Session, hostname: str, now: datetime) -> list[str]:
    """Forget a stopped or unregistered runner; jobs it still held are released first."""
    released = fail_over_runner(session, hostname, now, "runner removed by the operator", max_aborts=None)
    runners.remove(session, hostname, now)
    return released.requeued


# ------------------------------------------------------------------------------ remote-control half

def broadcast(app: Celery, command: str, hostname: str, timeout: float, **arguments: Any) -> dict[str, Any]:
    """One command to one worker; its merged replies (empty: no answer within ``timeout``)."""
    replies = app.control.broadcast(command, arguments=arguments, destination=[hostname], reply=True,
                                    timeout=timeout, limit=1) or []
    merged: dict[str, Any] = {}
    for reply in replies:
        merged.update(reply.get(hostname, {}) if isinstance(reply, dict) else {})
    return merged


def apply_status(app: Celery, hostname: str, queues: Sequence[str], status: RunnerStatus,
                 timeout: float) -> dict[str, Any]:
    """Start (enabled) or stop (maintenance, disabled) consuming each queue; the replies per queue."""
    command = "add_consumer" if status is RunnerStatus.ENABLED else "cancel_consumer"
    return {q: r for q in queues if (r := broadcast(app, command, hostname, timeout, queue=q))}


def current_pool_size(app: Celery, hostname: str, timeout: float = 2.0) -> int | None:
    """The pool's target size now. `inspect stats` lags behind pool_grow/pool_shrink (it reports the
    start-up size and the processes spawned so far), so ask the worker (``mediarunner_pool``)."""
    reply = broadcast(app, "mediarunner_pool", hostname, timeout)
    size = reply.get("size")
    return int(size) if isinstance(size, int) else None


def resize_pool(app: Celery, hostname: str, concurrency: int, timeout: float) -> dict[str, Any]:
    """Grow or shrink the live pool to ``concurrency``. Replies: ``{}`` no answer, ``{"pool": n}``
    already that size, else the command's reply with ``from`` and ``to``."""
    current = current_pool_size(app, hostname, timeout)
    if current is None or current == concurrency:
        return {"pool": current} if current else {}
    grow = concurrency > current
    command, n = ("pool_grow", concurrency - current) if grow else ("pool_shrink", current - concurrency)
    reply = broadcast(app, command, hostname, timeout, n=n)
    return {command: reply, "from": current, "to": concurrency}


def stop_consumers(app: Celery, queues_by_host: Mapping[str, Sequence[str]]) -> None:
    """Fire and forget: a worker that misses it learns on its next heartbeat that it is unregistered."""
    for host, queues in queues_by_host.items():
        for q in queues:
            app.control.broadcast("cancel_consumer", arguments={"queue": q}, destination=[host], reply=False)


def ping(app: Celery, hostnames: Sequence[str], *, timeout: float = 2.0) -> list[PingResult]:
    """Round trip through the broker to each worker's control loop ("Test connection")."""
    if not hostnames:
        return []
    arrived: dict[str, float] = {}
    start = time.monotonic()

    def on_reply(reply: dict[str, Any]) -> None:
        for host in reply:
            arrived.setdefault(host, (time.monotonic() - start) * 1000.0)

    app.control.broadcast("ping", destination=list(hostnames), reply=True, timeout=timeout,
                          limit=len(hostnames), callback=on_reply)
    return [PingResult(h, h in arrived, round(arrived[h], 1) if h in arrived else None) for h in hostnames]
