"""The PeerTube connector's records: every write to ``peertube_instances`` and ``peertube_jobs``.

An instance is a PeerTube server this fleet is registered on as a remote runner; a job row maps
one accepted PeerTube runner job (its uuid and job token) to the mediarunner job doing the work.
Secrets (runner token, job tokens) live in the rows only: :class:`Instance` and :class:`TrackedJob`
hide them from ``repr``, and activity-log messages never contain them.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from mediarunner.models.peertube_tables import PeerTubeInstanceRow, PeerTubeJobRow
from mediarunner.models.statements import record_event

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")  # PeerTube's runner names allow more; we keep it simple
ACTIVE_JOB_STATES = ("accepted", "running")


@dataclass(frozen=True)
class Instance:
    name: str
    url: str
    runner_token: str = field(repr=False)
    job_types: tuple[str, ...]
    concurrency: int
    priority_class: str
    state: str
    state_reason: str | None
    created_at: datetime
    runner_id: int | None = None


@dataclass(frozen=True)
class TrackedJob:
    uuid: str
    instance: str
    type: str
    job_token: str = field(repr=False)
    job_id: str | None
    state: str
    message: str | None


def _instance(r: PeerTubeInstanceRow) -> Instance:
    return Instance(r.name, r.url, r.runner_token, tuple(r.job_types or ()), r.concurrency, r.priority_class,
                    r.state, r.state_reason, r.created_at, r.runner_id)


def _job(r: PeerTubeJobRow) -> TrackedJob:
    return TrackedJob(r.uuid, r.instance, r.type, r.job_token, r.job_id, r.state, r.message)


def add_instance(session: Session, *, name: str, url: str, runner_token: str, runner_id: int | None,
                 job_types: Sequence[str], concurrency: int, priority_class: str, now: datetime) -> Instance:
    row = PeerTubeInstanceRow(name=name, url=url, runner_token=runner_token, runner_id=runner_id,
                              job_types=list(job_types), concurrency=concurrency, priority_class=priority_class,
                              state="active", created_at=now)
    session.add(row)
    session.flush()
    record_event(session, "peertube_registered", now, f"registered on PeerTube {url} as runner {name!r}")
    return _instance(row)


def get_instance(session: Session, name: str) -> Instance | None:
    row = session.get(PeerTubeInstanceRow, name)
    return _instance(row) if row is not None else None


def list_instances(session: Session, *, active_only: bool = False) -> list[Instance]:
    q = select(PeerTubeInstanceRow).order_by(PeerTubeInstanceRow.name)
    if active_only:
        q = q.where(PeerTubeInstanceRow.state == "active")
    return [_instance(r) for r in session.scalars(q)]


def remove_instance(session: Session, name: str, now: datetime) -> bool:
    done = session.execute(delete(PeerTubeInstanceRow).where(PeerTubeInstanceRow.name == name)).rowcount > 0  # type: ignore[attr-defined]
    if done:
        record_event(session, "peertube_unregistered", now, f"unregistered from PeerTube as runner {name!r}")
    return bool(done)


def stop_instance(session: Session, name: str, reason: str, now: datetime) -> bool:
    """Mark an instance stopped (a revoked registration, an unknown runner token): the connector
    leaves it alone until it is registered again. One activity-log entry, the first time."""
    res = session.execute(update(PeerTubeInstanceRow)
                          .where(PeerTubeInstanceRow.name == name, PeerTubeInstanceRow.state == "active")
                          .values(state="stopped", state_reason=reason[:2000]))
    if res.rowcount:  # type: ignore[attr-defined]
        record_event(session, "peertube_stopped", now, f"PeerTube runner {name!r} stopped: {reason}")
        return True
    return False


def track_job(session: Session, *, uuid: str, instance: str, type: str, job_token: str, now: datetime) -> None:
    """Record an accepted job; one PeerTube offers again (after an abort, an error, its watchdog)
    starts over in the same row, with its new job token."""
    row = session.get(PeerTubeJobRow, uuid)
    if row is None:
        session.add(PeerTubeJobRow(uuid=uuid, instance=instance, type=type, job_token=job_token, state="accepted",
                                   created_at=now))
        return
    row.instance, row.type, row.job_token, row.state, row.created_at = instance, type, job_token, "accepted", now
    row.job_id = row.message = row.finished_at = None


def set_job(session: Session, uuid: str, *, state: str | None = None, job_id: str | None = None,
            message: str | None = None, now: datetime | None = None) -> None:
    values: dict[str, object] = {}
    if state is not None:
        values["state"] = state
        if state not in ACTIVE_JOB_STATES:
            values["finished_at"] = now
    if job_id is not None:
        values["job_id"] = job_id
    if message is not None:
        values["message"] = message[:2000]
    if values:
        session.execute(update(PeerTubeJobRow).where(PeerTubeJobRow.uuid == uuid).values(**values))


def active_jobs(session: Session, instance: str | None = None) -> list[TrackedJob]:
    q = select(PeerTubeJobRow).where(PeerTubeJobRow.state.in_(ACTIVE_JOB_STATES)).order_by(PeerTubeJobRow.created_at)
    if instance is not None:
        q = q.where(PeerTubeJobRow.instance == instance)
    return [_job(r) for r in session.scalars(q)]


def get_job(session: Session, uuid: str) -> TrackedJob | None:
    row = session.get(PeerTubeJobRow, uuid)
    return _job(row) if row is not None else None


def log(session: Session, kind: str, message: str, now: datetime, job_id: str | None = None) -> None:
    """An activity-log entry of the connector (``message`` never holds a token)."""
    record_event(session, kind, now, message, job_id=job_id)
