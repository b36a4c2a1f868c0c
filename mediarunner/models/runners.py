"""Every runner (worker node) state change, and nothing else, lives here — like ``transitions``
for jobs. Each change is a guarded compare-and-set on the ``runners`` row and writes its event.

* registration (start-up, after the token check) upserts the row and clears offline marks;
* heartbeats refresh diagnostics and answer with the operator's wishes (status, concurrency),
  so a worker that missed a remote-control broadcast still converges within one heartbeat;
* ``mark_offline`` (beat) is fenced by the heartbeat age: a heartbeat that lands first wins;
* ``unregister`` (token revoked) is final until the worker registers again with a valid token.

Functions take a Session (the caller owns the transaction) and ``now``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import CursorResult, delete, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from mediarunner.models.capabilities import Skills
from mediarunner.models.enums import RunnerStatus
from mediarunner.models.tables import LockRow, RunnerRow
from mediarunner.models.transitions import BUMP_COMPLETED, BUMP_FAILED, record_event

R = RunnerStatus


@dataclass(frozen=True)
class RunnerInfo:
    """What a worker tells about itself when it registers."""

    hostname: str
    queues: tuple[str, ...]
    concurrency: int
    version: str = ""
    capabilities: dict[str, Any] = field(default_factory=dict)
    instance: str | None = None  # the worker process (a uuid made at its start)


@dataclass(frozen=True)
class Directive:
    """The answer to a heartbeat: what the operator wants this runner to be doing."""

    status: RunnerStatus
    desired_concurrency: int | None
    unregistered: bool = False
    generation: int = 0  # of the status: a worker acts on a status only once, so a heartbeat that
    # read the row just before an operator's change cannot undo the change remote control made

    @property
    def consume(self) -> bool:
        return self.status is R.ENABLED and not self.unregistered


def _update(session: Session, hostname: str, values: dict[str, Any], *where: Any) -> bool:
    stmt = (update(RunnerRow).where(RunnerRow.hostname == hostname, *where).values(**values)
            .execution_options(synchronize_session=False))
    return cast(CursorResult[Any], session.execute(stmt)).rowcount == 1


def register(session: Session, info: RunnerInfo, token_id: str | None, now: datetime) -> Directive:
    """Insert or refresh the runner. The operator's status and concurrency survive restarts."""
    values: dict[str, Any] = dict(
        queues=list(info.queues), concurrency=info.concurrency, version=info.version[:64],
        token_id=token_id, registered_at=now, last_heartbeat_at=now, offline_at=None, unregistered_at=None,
        instance_id=info.instance,
    )
    if info.capabilities:  # else keep the last known ones until the first heartbeat brings fresh ones
        values["capabilities"] = info.capabilities
        values["skills"] = Skills.from_capabilities(info.capabilities).tokens()
    if not _update(session, info.hostname, values):
        try:
            with session.begin_nested():  # two workers racing on one name: the loser updates
                session.add(RunnerRow(hostname=info.hostname, status=R.ENABLED, status_generation=0, diagnostics={},
                                      jobs_completed=0, jobs_failed=0, **{"capabilities": {}, **values}))
        except IntegrityError:
            _update(session, info.hostname, values)
    row = session.execute(select(RunnerRow.status, RunnerRow.desired_concurrency, RunnerRow.status_generation)
                          .where(RunnerRow.hostname == info.hostname)).one()
    token = f"token {token_id}" if token_id else "no token"
    record_event(session, "runner_registered", now,
                 f"queues {','.join(info.queues)}, concurrency {info.concurrency}, {token}, {row[0]}",
                 runner=info.hostname)
    return Directive(row[0], row[1], generation=row[2])


def heartbeat(session: Session, hostname: str, diagnostics: dict[str, Any], concurrency: int,
              now: datetime, *, capabilities: dict[str, Any] | None = None) -> Directive | None:
    """Refresh a registered runner (and its capabilities, when given). None: unknown runner (it
    must register again)."""
    row = session.execute(select(RunnerRow.status, RunnerRow.desired_concurrency, RunnerRow.offline_at,
                                 RunnerRow.unregistered_at, RunnerRow.status_generation)
                          .where(RunnerRow.hostname == hostname)).first()
    if row is None:
        return None
    status, desired, offline_at, unregistered_at, generation = row
    if unregistered_at is not None:
        return Directive(status, desired, unregistered=True, generation=generation)
    values: dict[str, Any] = dict(last_heartbeat_at=now, diagnostics=diagnostics, concurrency=concurrency,
                                  offline_at=None)
    if capabilities is not None:
        values["capabilities"] = capabilities
        values["skills"] = Skills.from_capabilities(capabilities).tokens()
    if _update(session, hostname, values, RunnerRow.unregistered_at.is_(None)) and offline_at is not None:
        record_event(session, "heartbeat_restored", now, f"back after going offline at {offline_at:%H:%M:%S}",
                     runner=hostname)
    return Directive(status, desired, generation=generation)


def set_status(session: Session, hostname: str, status: RunnerStatus, now: datetime) -> bool:
    """enabled <-> maintenance <-> disabled. False: unknown, unregistered, or already there."""
    old = session.scalar(select(RunnerRow.status).where(RunnerRow.hostname == hostname,
                                                        RunnerRow.unregistered_at.is_(None)))
    if old is None or old == status:
        return False
    ok = _update(session, hostname, dict(status=status, status_generation=RunnerRow.status_generation + 1),
                 RunnerRow.status == old,
                 RunnerRow.unregistered_at.is_(None))
    if ok:
        record_event(session, "status_changed", now, f"{old} -> {status}", runner=hostname)
    return ok


def set_desired_concurrency(session: Session, hostname: str, concurrency: int, now: datetime) -> bool:
    if concurrency < 1:
        raise ValueError("concurrency must be >= 1")
    ok = _update(session, hostname, dict(desired_concurrency=concurrency), RunnerRow.unregistered_at.is_(None))
    if ok:
        record_event(session, "concurrency_changed", now, f"max concurrent jobs {concurrency}", runner=hostname)
    return ok


def set_priority(session: Session, hostname: str, priority: int, now: datetime, *,
                 weight: int | None = None) -> bool:
    """The runner's scheduling priority (lower is preferred) and, when given, its weight for
    ``weighted`` balancing (``mediarunner.models.balancing``). Survives restarts."""
    if weight is not None and weight < 1:
        raise ValueError("weight must be >= 1")
    values: dict[str, Any] = {"priority": priority, **({"weight": weight} if weight is not None else {})}
    ok = _update(session, hostname, values, RunnerRow.unregistered_at.is_(None))
    if ok:
        what = f"priority {priority}" + (f", weight {weight}" if weight is not None else "")
        record_event(session, "priority_changed", now, what, runner=hostname)
    return ok


def mark_offline(session: Session, hostname: str, silent_since: datetime, now: datetime) -> bool:
    """Beat: the runner's last heartbeat is older than ``silent_since``. Fenced by that age, so a
    heartbeat that arrives first keeps the runner online."""
    ok = _update(session, hostname, dict(offline_at=now), RunnerRow.offline_at.is_(None),
                 RunnerRow.unregistered_at.is_(None), RunnerRow.last_heartbeat_at < silent_since)
    if ok:
        record_event(session, "heartbeat_lost", now, f"silent since before {silent_since:%H:%M:%S}",
                     runner=hostname)
    return ok


def mark_stopped(session: Session, hostname: str, now: datetime) -> bool:
    """A clean (warm) shutdown: offline at once, nothing to fail over (running jobs finished)."""
    ok = _update(session, hostname, dict(offline_at=now), RunnerRow.offline_at.is_(None),
                 RunnerRow.unregistered_at.is_(None))
    if ok:
        record_event(session, "runner_stopped", now, "worker shut down", runner=hostname)
    return ok


def unregister(session: Session, hostname: str, now: datetime, reason: str) -> bool:
    ok = _update(session, hostname, dict(unregistered_at=now), RunnerRow.unregistered_at.is_(None))
    if ok:
        record_event(session, "runner_unregistered", now, reason, runner=hostname)
    return ok


def remove(session: Session, hostname: str, now: datetime) -> bool:
    """Forget a runner (``runners rm``): its row goes; its events stay, as history."""
    ok = cast(CursorResult[Any], session.execute(delete(RunnerRow).where(RunnerRow.hostname == hostname)
                                                 .execution_options(synchronize_session=False))).rowcount == 1
    if ok:
        record_event(session, "runner_removed", now, "removed by the operator", runner=hostname)
    return ok


def unregister_by_token(session: Session, token_id: str, now: datetime, reason: str) -> list[str]:
    hosts: Sequence[str] = session.scalars(select(RunnerRow.hostname).where(
        RunnerRow.token_id == token_id, RunnerRow.unregistered_at.is_(None))).all()
    return [h for h in hosts if unregister(session, h, now, reason)]


def count_outcome(session: Session, hostname: str, *, completed: bool) -> None:
    """Lifetime counters (not a state change): one more attempt completed or failed on this runner."""
    session.execute(BUMP_COMPLETED if completed else BUMP_FAILED, {"runner": hostname})


def prune(session: Session, offline_before: datetime, now: datetime) -> list[str]:
    """Runners offline (or unregistered) since before ``offline_before`` leave the registry; their
    history stays in the activity log, which gets a ``runner_pruned`` event for each."""
    gone = or_(RunnerRow.offline_at < offline_before, RunnerRow.unregistered_at < offline_before)
    hosts: Sequence[str] = session.scalars(select(RunnerRow.hostname).where(gone)).all()
    pruned = []
    for host in hosts:
        res = session.execute(delete(RunnerRow).where(RunnerRow.hostname == host, gone)
                              .execution_options(synchronize_session=False))
        if cast(CursorResult[Any], res).rowcount == 1:
            record_event(session, "runner_pruned", now, f"offline since before {offline_before:%Y-%m-%d %H:%M}",
                         runner=host)
            pruned.append(host)
    return pruned


def _live(row: RunnerRow | None, live_since: datetime) -> bool:
    return (row is not None and row.offline_at is None and row.unregistered_at is None
            and row.last_heartbeat_at is not None and row.last_heartbeat_at >= live_since)


def _claim(session: Session, name: str, holder: str, now: datetime, ttl: float) -> bool:
    """Compare-and-set the name's claim: free when unclaimed, expired, or used by a registration since."""
    key = "runner-name:" + hashlib.sha1(name.encode()).hexdigest()[:40]
    lock = session.get(LockRow, key, populate_existing=True)
    row = session.get(RunnerRow, name, populate_existing=True)
    values = dict(holder=holder, expires_at=now + timedelta(seconds=ttl))
    if lock is None:
        try:
            with session.begin_nested():
                session.add(LockRow(name=key, **values))
            return True
        except IntegrityError:
            return False
    claimed_at = lock.expires_at - timedelta(seconds=ttl)
    if lock.expires_at >= now and lock.holder != holder and (row is None or row.registered_at < claimed_at):
        return False  # claimed by another starting worker that has not registered yet
    res = session.execute(update(LockRow).where(LockRow.name == key, LockRow.expires_at == lock.expires_at)
                          .values(**values).execution_options(synchronize_session=False))
    return cast(CursorResult[Any], res).rowcount == 1


def claim_name(session: Session, template: str, holder: str, now: datetime, *, live_since: datetime,
               ttl: float, limit: int = 1000) -> str:
    """The runner name for a starting worker: ``template`` with ``{n}`` replaced by the lowest ordinal
    whose runner is not live (heartbeat since ``live_since``) and not being claimed by another starting
    worker (for ``ttl`` seconds or until it registers). A recreated container takes its old name back."""
    for n in range(1, limit + 1):
        name = template.replace("{n}", str(n))
        if not _live(session.get(RunnerRow, name, populate_existing=True), live_since) and \
                _claim(session, name, holder, now, ttl):
            return name
    raise RuntimeError(f"no free runner name for {template!r} among {limit}")
