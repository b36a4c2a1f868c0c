"""HTTP API keys: create, verify, revoke, list.

A key is ``mrk_<id>_<secret>``: ``id`` (8 hex digits) finds the row, the secret (256 random bits,
URL-safe) is checked against its stored SHA-256 with a constant-time comparison. The secret is
shown once, at creation, and never stored, logged or returned again.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import bindparam, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from mediarunner.errors import ValidationError
from mediarunner.models.api_tables import ApiKeyRow
from mediarunner.models.transitions import record_event

PREFIX = "mrk_"
SCOPES = ("read", "submit", "admin")
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,99}$")
_KEY = re.compile(r"^mrk_([0-9a-f]{8})_([A-Za-z0-9_-]{20,100})$")
TOUCH_EVERY = timedelta(seconds=60)  # last_used_at is written at most this often per key
_T = ApiKeyRow.__table__
_VERIFY = select(_T.c.id, _T.c.name, _T.c.key_hash, _T.c.scopes, _T.c.created_at, _T.c.last_used_at,
                 _T.c.revoked_at).where(_T.c.id == bindparam("id"))


@dataclass(frozen=True)
class ApiKeyInfo:
    id: str
    name: str
    scopes: tuple[str, ...]
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _info(row: ApiKeyRow) -> ApiKeyInfo:
    return ApiKeyInfo(row.id, row.name, tuple(row.scopes), row.created_at, row.last_used_at, row.revoked_at)


def check_scopes(scopes: list[str] | tuple[str, ...]) -> list[str]:
    unknown = sorted(set(scopes) - set(SCOPES))
    if unknown or not scopes:
        raise ValidationError(f"scopes must be some of {', '.join(SCOPES)}; got {', '.join(scopes) or 'none'}")
    return [s for s in SCOPES if s in scopes]


def create_key(session: Session, name: str, scopes: list[str], now: datetime) -> tuple[ApiKeyInfo, str]:
    """Returns (the key's info, the key). The key is not recoverable afterwards."""
    if not NAME.match(name):
        raise ValidationError("a key name is 1-100 letters, digits or _.@- (starting with a letter or digit)")
    wanted = check_scopes(scopes)
    if session.scalar(select(ApiKeyRow.id).where(ApiKeyRow.name == name)) is not None:
        raise ValidationError(f"an API key named {name!r} exists (revoked keys keep their name)")
    key_id, secret = secrets.token_hex(4), secrets.token_urlsafe(32)
    row = ApiKeyRow(id=key_id, name=name, key_hash=hash_secret(secret), scopes=wanted, created_at=now)
    session.add(row)
    try:
        session.flush()
    except IntegrityError:
        raise ValidationError(f"an API key named {name!r} exists") from None
    record_event(session, "api_key_created", now, f"API key {name} ({', '.join(wanted)})")
    return _info(row), f"{PREFIX}{key_id}_{secret}"


def verify_key(session: Session, key: str, now: datetime) -> ApiKeyInfo | None:
    """The valid (unrevoked) key ``key``, or None. Touches ``last_used_at`` at most once a minute."""
    m = _KEY.match(key)
    if m is None:
        return None
    # Once per API request: a Core read of the columns (no ORM identity map, a fraction of its cost).
    row = session.connection().execute(_VERIFY, {"id": m.group(1)}).first()
    expected = row.key_hash if row is not None else hash_secret("")
    ok = hmac.compare_digest(expected, hash_secret(m.group(2)))
    if row is None or not ok or row.revoked_at is not None:
        return None
    if row.last_used_at is None or now - row.last_used_at >= TOUCH_EVERY:
        session.execute(update(ApiKeyRow).where(ApiKeyRow.id == row.id).values(last_used_at=now)
                        .execution_options(synchronize_session=False))
    return ApiKeyInfo(row.id, row.name, tuple(row.scopes), row.created_at, row.last_used_at, row.revoked_at)


def revoke_key(session: Session, name: str, now: datetime) -> bool:
    """False: no such key, or already revoked."""
    res = session.execute(update(ApiKeyRow).where(ApiKeyRow.name == name, ApiKeyRow.revoked_at.is_(None))
                          .values(revoked_at=now).execution_options(synchronize_session=False))
    if res.rowcount != 1:  # type: ignore[attr-defined]
        return False
    record_event(session, "api_key_revoked", now, f"API key {name}")
    return True


def list_keys(session: Session) -> list[ApiKeyInfo]:
    return [_info(r) for r in session.scalars(select(ApiKeyRow).order_by(ApiKeyRow.created_at))]
