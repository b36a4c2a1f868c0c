"""``transaction()``: retried whole through a dropped connection, never through a refusal."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from mediarunner.models.db import transaction


def _dropped(message: str) -> OperationalError:
    return OperationalError("SELECT 1", {}, Exception(message))


def test_a_dropped_connection_is_retried_whole(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    calls: list[int] = []

    def work(session: Session) -> int:
        calls.append(1)
        if len(calls) < 3:
            raise _dropped("server closed the connection unexpectedly")
        return int(session.execute(text("SELECT 41 + 1")).scalar_one())

    assert transaction(work, url=url, retry_for=10) == 42
    assert len(calls) == 3


def test_retrying_stops_at_its_deadline(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"

    def work(session: Session) -> None:
        raise _dropped("could not connect to server: Connection refused")

    started = time.monotonic()
    with pytest.raises(OperationalError, match="Connection refused"):
        transaction(work, url=url, retry_for=0.5)
    assert time.monotonic() - started < 5


@pytest.mark.parametrize("message", [
    'connection to server at "127.0.0.1", port 5432 failed: FATAL:  password authentication failed for user "x"',
    'connection to server at "127.0.0.1", port 5432 failed: FATAL:  database "nope" does not exist',
    "syntax error at or near SELEKT",
])
def test_refusals_and_errors_fail_at_once(tmp_path: Path, message: str) -> None:
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    calls: list[int] = []

    def work(session: Session) -> None:
        calls.append(1)
        raise _dropped(message)

    with pytest.raises(OperationalError):
        transaction(work, url=url, retry_for=30)
    assert calls == [1]


def test_a_wrong_password_on_a_real_server_fails_fast() -> None:
    from tests.support import PG_ADMIN, pg_available

    if not pg_available():
        pytest.skip("PostgreSQL not reachable")
    host = PG_ADMIN.split("@", 1)[1]
    url = f"postgresql+psycopg://no_such_role_mr:wrong@{host}"
    started = time.monotonic()
    with pytest.raises(OperationalError):
        transaction(lambda s: s.execute(text("SELECT 1")), url=url)
    assert time.monotonic() - started < 10
