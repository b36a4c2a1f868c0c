"""``one_statement`` and PostgreSQL's claim lane (``models.db``): claims, heartbeats and, unless
``DURABLE_COMPLETIONS``, completions commit without waiting for the WAL flush and are planned once;
everything else waits. On SQLite a unit is one transaction."""

from __future__ import annotations

import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import psycopg
import pytest
from sqlalchemy import Connection, event, make_url, text
from sqlalchemy.exc import DBAPIError, IntegrityError

from mediarunner.models.base import utcnow
from mediarunner.models.db import (
    claim_lane,
    dispose_engines,
    dispose_pools,
    get_engine,
    one_statement,
    single_statements,
    transaction,
)
from mediarunner.models.enums import JobState, JobType
from mediarunner.models.queries import get_job
from mediarunner.models.transitions import NewJob
from mediarunner.tasks import runtime
from mediarunner.tasks.noop import run_noop
from tests import rows as fixtures
from tests.support import PG_ADMIN, Stack, create_pg_database, drop_pg_database, make_stack


@pytest.fixture
def pg_db() -> Iterator[str]:
    """A migrated, empty PostgreSQL database."""
    url = create_pg_database(migrated=True)
    yield url
    drop_pg_database(url)


def _settings_of(conn: Connection) -> tuple[str, str]:
    return (conn.execute(text("SHOW synchronous_commit")).scalar_one(),
            conn.execute(text("SHOW plan_cache_mode")).scalar_one())


def test_recoverable_writes_skip_the_flush_and_are_planned_once(pg_url: str) -> None:
    assert one_statement(_settings_of, url=pg_url, recoverable=True) == ("off", "force_generic_plan")
    # everything else keeps the database's own settings (production: "on"; the test databases
    # are created with synchronous_commit=off to run faster) and the server's planning
    with psycopg.connect(make_url(pg_url).set(drivername="postgresql").render_as_string(False)) as plain:
        own = plain.execute("SHOW synchronous_commit").fetchone()
    assert own is not None
    assert one_statement(_settings_of, url=pg_url) == (own[0], "auto")
    assert transaction(lambda s: _settings_of(s.connection()), url=pg_url) == (own[0], "auto")


def test_durable_single_statements_have_an_autocommit_pool_of_their_own(pg_db: str) -> None:
    """Not the engine's pool, whose connections would be switched to autocommit and back at each unit."""
    def seen(conn: Connection) -> tuple[Any, bool, int]:
        return conn.engine, bool(conn.connection.dbapi_connection.autocommit), _backend(conn)  # type: ignore[union-attr]

    engine, autocommit, backend = one_statement(seen, url=pg_db)
    assert engine is single_statements(pg_db) and engine is not get_engine(pg_db) and autocommit
    with ThreadPoolExecutor(1) as pool:  # a thread's unit checks one out of the same pool
        assert pool.submit(one_statement, seen, url=pg_db).result()[:2] == (engine, True)
    job_id, = transaction(lambda s: fixtures.create_jobs(s, [NewJob(JobType.NOOP, "cpu", {})], utcnow()), url=pg_db)
    one_statement(lambda c: c.execute(text("UPDATE jobs SET progress = 3 WHERE id = :id"), {"id": job_id}), url=pg_db)
    assert transaction(lambda s: get_job(s, job_id).progress, url=pg_db) == 3 and backend > 0


def test_a_lane_write_is_visible_at_once(pg_db: str) -> None:
    job_id, = transaction(lambda s: fixtures.create_jobs(s, [NewJob(JobType.NOOP, "cpu", {})], utcnow()), url=pg_db)
    one_statement(lambda c: c.execute(text("UPDATE jobs SET progress = 7 WHERE id = :id"), {"id": job_id}),
                  url=pg_db, recoverable=True)
    # another connection, another pool: committed, not waiting in an open transaction
    assert transaction(lambda s: get_job(s, job_id).progress, url=pg_db) == 7


def test_one_statement_on_sqlite_is_one_transaction(sqlite_url: str) -> None:
    def two_writes(conn: Connection) -> None:
        conn.execute(text("INSERT INTO unit_probe VALUES (1)"))
        conn.execute(text("INSERT INTO unit_probe VALUES (1)"))  # violates the key: all of it rolls back

    with get_engine(sqlite_url).begin() as conn:
        conn.execute(text("CREATE TABLE unit_probe (k INTEGER PRIMARY KEY)"))
    with pytest.raises(IntegrityError):
        one_statement(two_writes, url=sqlite_url, recoverable=True)
    assert one_statement(lambda c: c.execute(text("SELECT count(*) FROM unit_probe")).scalar_one(),
                         url=sqlite_url) == 0


@pytest.fixture
def pg_stack(tmp_path: Path, pg_url: str) -> Iterator[Stack]:
    with make_stack(tmp_path, pg_url, "redis://127.0.0.1:9/0", MEDIARUNNER_HEARTBEAT_SECONDS="30",
                    MEDIARUNNER_CANCEL_POLL_SECONDS="30") as st:
        yield st


@pytest.mark.parametrize("durable", [False, True])
def test_a_completion_takes_the_lane_unless_durable(pg_stack: Stack, pg_url: str, durable: bool) -> None:
    settings = pg_stack.settings().model_copy(update={"durable_completions": durable})
    job_id, = transaction(lambda s: fixtures.create_jobs(s, [NewJob(JobType.NOOP, "cpu", {})], utcnow()))
    on_lane: list[str] = []

    def seen(conn: Any, cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        on_lane.append(f"{statement} {parameters}")  # the event's kind is bound

    lane = claim_lane(pg_url)
    event.listen(lane, "before_cursor_execute", seen)
    try:
        status = runtime.execute(run_noop, job_id, 1, worker="w1", task_id=None, settings=settings)
    finally:
        event.remove(lane, "before_cursor_execute", seen)
    assert status == runtime.RunStatus.COMPLETED
    assert transaction(lambda s: get_job(s, job_id).state) is JobState.COMPLETED
    assert any("job_assigned" in s for s in on_lane), "the claim runs on the lane"
    assert any("job_completed" in s for s in on_lane) is not durable


def _backend(conn: Connection) -> int:
    return int(conn.execute(text("SELECT pg_backend_pid()")).scalar_one())


@pytest.mark.parametrize("recoverable", [False, True])
def test_the_main_thread_keeps_its_connection_between_units(pg_db: str, recoverable: bool) -> None:
    first = one_statement(_backend, url=pg_db, recoverable=recoverable)
    assert one_statement(_backend, url=pg_db, recoverable=recoverable) == first

    def fails(conn: Connection) -> None:
        assert _backend(conn) == first
        conn.execute(text("SELECT 1/0"))

    with pytest.raises(DBAPIError):
        one_statement(fails, url=pg_db, recoverable=recoverable)
    # a connection whose unit failed is given back, not kept: the next unit starts on another checkout
    assert one_statement(_backend, url=pg_db, recoverable=recoverable) > 0


def test_a_nested_unit_takes_its_own_connection(pg_db: str) -> None:
    outer = one_statement(_backend, url=pg_db)
    inner = one_statement(lambda c: (_backend(c), one_statement(_backend, url=pg_db)), url=pg_db)
    assert inner[0] == outer and inner[1] != outer
    assert one_statement(_backend, url=pg_db) in inner  # one of the two is kept, the other back in the pool


def test_other_threads_take_a_pooled_connection_each_time(pg_db: str) -> None:
    kept = one_statement(_backend, url=pg_db)
    with ThreadPoolExecutor(1) as pool:
        seen = {pool.submit(one_statement, _backend, url=pg_db).result() for _ in range(3)}
    assert kept not in seen  # the main thread's connection is not in the pool while it keeps it
    assert one_statement(_backend, url=pg_db) == kept


def test_dispose_pools_closes_the_kept_connections(pg_db: str) -> None:
    one_statement(_backend, url=pg_db)
    one_statement(_backend, url=pg_db, recoverable=True)
    dispose_pools(pg_db)
    name = make_url(pg_db).database
    with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
        row = admin.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = %s", [name]).fetchone()
    assert row is not None and row[0] == 0


def test_a_forked_child_never_uses_its_parents_kept_connection(pg_db: str) -> None:
    parent = one_statement(_backend, url=pg_db)
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child, as a prefork pool process starts (worker_process_init)
        try:
            dispose_engines()
            os.write(write, str(one_statement(_backend, url=pg_db)).encode())
        finally:
            os._exit(0)
    os.close(write)
    child = int(os.read(read, 64) or b"0")
    os.waitpid(pid, 0)
    assert child not in (0, parent)
    assert one_statement(_backend, url=pg_db) == parent  # untouched by the child
