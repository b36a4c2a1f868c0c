"""Operator actions on runners: the database first (the lasting intent, via ``runners``), then
Celery remote control (the immediate effect). A worker that misses the broadcast converges on
its next heartbeat, which answers with the stored status.

* maintenance / disable: ``cancel_consumer`` for each queue: running jobs finish, no new ones;
* enable: ``add_consumer``;
* max concurrent jobs: ``pool_grow`` / ``pool_shrink`` by the difference to the live pool size;
* test connection: ``ping`` with the round-trip latency of each reply;
* revoking a token: unregister its runners, fail over their running jobs, ``cancel_consumer``.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from celery import Celery
from sqlalchemy import select

from mediarunner.models import runners, tokens
from mediarunner.models.base import utcnow
from mediarunner.models.db import transaction
from mediarunner.models.enums import RunnerStatus
from mediarunner.models.tables import RunnerRow
from mediarunner.scheduler.fleet import fail_over_runner


class UnknownRunner(LookupError):
    pass


@dataclass(frozen=True)
class SteerResult:
    hostname: str
    changed: bool  # the stored state changed (False: it already was so)
    replies: dict[str, Any] = field(default_factory=dict)  # remote-control answers; empty: no answer yet

    @property
    def acknowledged(self) -> bool:
        return bool(self.replies)


def _queues(hostname: str) -> list[str]:
    queues = transaction(lambda s: s.scalar(select(RunnerRow.queues).where(RunnerRow.hostname == hostname)))
    if queues is None:
        raise UnknownRunner(f"no runner named {hostname!r} (see `mediarunner runners ls`)")
    return list(queues)


def _broadcast(app: Celery, command: str, hostname: str, timeout: float, **arguments: Any) -> dict[str, Any]:
    replies = app.control.broadcast(command, arguments=arguments, destination=[hostname], reply=True,
                                    timeout=timeout, limit=1) or []
    merged: dict[str, Any] = {}
    for reply in replies:
        merged.update(reply.get(hostname, {}) if isinstance(reply, dict) else {})
    return merged


def set_status(app: Celery, hostname: str, status: RunnerStatus, *, timeout: float = 2.0) -> SteerResult:
    queues = _queues(hostname)
    changed = transaction(lambda s: runners.set_status(s, hostname, status, utcnow()))
    command = "add_consumer" if status is RunnerStatus.ENABLED else "cancel_consumer"
    replies = {q: r for q in queues if (r := _broadcast(app, command, hostname, timeout, queue=q))}
    return SteerResult(hostname, changed, replies)


def current_pool_size(app: Celery, hostname: str, timeout: float = 2.0) -> int | None:
    """The pool's target size now. `inspect stats` lags behind pool_grow/pool_shrink (it reports the
    start-up size and the processes spawned so far), so ask the worker (``mediarunner_pool``)."""
    reply = _broadcast(app, "mediarunner_pool", hostname, timeout)
    size = reply.get("size")
    return int(size) if isinstance(size, int) else None


def set_concurrency(app: Celery, hostname: str, concurrency: int, *, timeout: float = 2.0) -> SteerResult:
    """Store the operator's max concurrent jobs and resize the live pool to it."""
    _queues(hostname)
    changed = transaction(lambda s: runners.set_desired_concurrency(s, hostname, concurrency, utcnow()))
    current = current_pool_size(app, hostname, timeout)
    if current is None or current == concurrency:
        return SteerResult(hostname, changed, {"pool": current} if current else {})
    grow = concurrency > current
    command, n = ("pool_grow", concurrency - current) if grow else ("pool_shrink", current - concurrency)
    reply = _broadcast(app, command, hostname, timeout, n=n)
    return SteerResult(hostname, changed, {command: reply, "from": current, "to": concurrency})


@dataclass(frozen=True)
class PingResult:
    hostname: str
    ok: bool
    latency_ms: float | None


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


def revoke_token(app: Celery, token_id: str, *, timeout: float = 2.0) -> list[str] | None:
    """Revoke; its runners are unregistered, their running jobs fail over, their consumers stop.
    None: no such token or already revoked."""

    def tx(session: Any) -> tuple[list[str], dict[str, list[str]]] | None:
        now = utcnow()
        hosts = tokens.revoke_token(session, token_id, now)
        if hosts is None:
            return None
        for h in hosts:
            fail_over_runner(session, h, now, f"unregistered (token {token_id} revoked)")
        queues = dict(session.execute(select(RunnerRow.hostname, RunnerRow.queues)
                                      .where(RunnerRow.hostname.in_(hosts))).tuples().all())
        return hosts, {h: list(q or []) for h, q in queues.items()}

    done = transaction(tx)
    if done is None:
        return None
    hosts, queues = done
    for h in hosts:
        for q in queues.get(h, []):
            app.control.broadcast("cancel_consumer", arguments={"queue": q}, destination=[h], reply=False)
    return hosts
