"""A lease in the ``locks`` table: one holder at a time, expiring if the holder dies.

Two beat processes (an HA pair) both send ticks; only the lease holder's tick does work, so
nothing is dispatched or failed over twice. Callers pass ``database_now``: one clock (the
database's) for every holder, so clock skew between beat machines neither shortens a live lease
nor delays a takeover.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import DateTime, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from mediarunner.models.tables import LockRow


def database_now(session: Session) -> datetime:
    """The database server's current time, timezone-aware UTC (SQLite's ``CURRENT_TIMESTAMP`` is naive UTC)."""
    raw = session.scalar(select(func.current_timestamp(type_=DateTime(timezone=True))))
    if isinstance(raw, str):
        raw = datetime.fromisoformat(raw)
    assert isinstance(raw, datetime), raw
    return raw.astimezone(UTC) if raw.tzinfo is not None else raw.replace(tzinfo=UTC)


def acquire(session: Session, name: str, holder: str, now: datetime, ttl: float) -> bool:
    expires = now + timedelta(seconds=ttl)
    res = session.execute(
        update(LockRow).where(LockRow.name == name, or_(LockRow.holder == holder, LockRow.expires_at < now))
        .values(holder=holder, expires_at=expires).execution_options(synchronize_session=False)
    )
    if res.rowcount == 1:  # type: ignore[attr-defined]
        return True
    try:
        with session.begin_nested():
            session.add(LockRow(name=name, holder=holder, expires_at=expires))
        return True
    except IntegrityError:
        return False
