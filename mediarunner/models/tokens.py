"""Runner registration tokens (PeerTube-style): create, verify, revoke.

A token is ``mrt_`` + 43 URL-safe characters (256 random bits). Only its SHA-256 is stored; the
secret is shown once, at creation. Revoking a token unregisters every runner that registered
with it (``runners.unregister``); stopping their consumers and failing over their jobs is the
caller's part (``mediarunner.scheduler.steering``, composed by ``mediarunner.fleet.FleetService``).
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from mediarunner.models import runners
from mediarunner.models.tables import RunnerRow, WorkerTokenRow
from mediarunner.models.transitions import record_event

PREFIX = "mrt_"


@dataclass(frozen=True)
class TokenInfo:
    id: str
    name: str
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None
    runners: int  # registered (not unregistered) runners using it


def hash_token(secret: str) -> str:
    return hashlib.sha256(secret.strip().encode()).hexdigest()


def create_token(session: Session, name: str, now: datetime) -> tuple[str, str]:
    """Returns (id, secret). The secret is not recoverable afterwards."""
    token_id, secret = secrets.token_hex(4), PREFIX + secrets.token_urlsafe(32)
    session.add(WorkerTokenRow(id=token_id, name=name[:100], token_hash=hash_token(secret), created_at=now))
    record_event(session, "token_created", now, f"token {token_id} ({name[:100]})")
    return token_id, secret


def verify_token(session: Session, secret: str, now: datetime) -> str | None:
    """The id of the valid (unrevoked) token ``secret``, or None."""
    token_id = session.scalar(select(WorkerTokenRow.id).where(
        WorkerTokenRow.token_hash == hash_token(secret), WorkerTokenRow.revoked_at.is_(None)))
    if token_id is not None:
        session.execute(update(WorkerTokenRow).where(WorkerTokenRow.id == token_id)
                        .values(last_used_at=now).execution_options(synchronize_session=False))
    return token_id


def is_valid(session: Session, token_id: str) -> bool:
    return session.scalar(select(func.count()).select_from(WorkerTokenRow).where(
        WorkerTokenRow.id == token_id, WorkerTokenRow.revoked_at.is_(None))) == 1


def revoke_token(session: Session, token_id: str, now: datetime) -> list[str] | None:
    """Revoke and unregister its runners (returned). None: no such token, or already revoked."""
    res = session.execute(update(WorkerTokenRow).where(
        WorkerTokenRow.id == token_id, WorkerTokenRow.revoked_at.is_(None))
        .values(revoked_at=now).execution_options(synchronize_session=False))
    if res.rowcount != 1:  # type: ignore[attr-defined]
        return None
    from mediarunner.models import remote  # (imports this module) remote runners: cut off, jobs back to pending

    # Remote runners first: their rows are locked before their fleet rows, in the order a runner's
    # own request takes them (authenticate), so a revoke never deadlocks with a runner's call.
    remote.unregister_by_token(session, token_id, now)
    hosts = runners.unregister_by_token(session, token_id, now, f"token {token_id} revoked")
    record_event(session, "token_revoked", now, f"token {token_id}: {len(hosts)} runner(s) unregistered")
    return hosts


def list_tokens(session: Session) -> list[TokenInfo]:
    used = (select(RunnerRow.token_id, func.count().label("n")).where(RunnerRow.unregistered_at.is_(None))
            .group_by(RunnerRow.token_id).subquery())
    rows = session.execute(
        select(WorkerTokenRow, func.coalesce(used.c.n, 0)).outerjoin(used, used.c.token_id == WorkerTokenRow.id)
        .order_by(WorkerTokenRow.created_at)).all()
    return [TokenInfo(t.id, t.name, t.created_at, t.last_used_at, t.revoked_at, int(n)) for t, n in rows]
