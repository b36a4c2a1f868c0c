"""A lease in the ``locks`` table: one holder at a time, expiring if the holder dies.

Two beat processes (an HA pair) both send ticks; only the lease holder's tick does work, so
nothing is dispatched or failed over twice.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import or_, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from mediarunner.models.tables import LockRow


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
