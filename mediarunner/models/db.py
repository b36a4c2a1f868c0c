"""Engines and transactions.

One engine per (URL, process): Celery's prefork pool forks after import, and a pooled
connection must never cross a fork. ``transaction()`` retries work when the database
connection drops (PostgreSQL restart), so workers ride out a short outage.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.orm import Session, sessionmaker
from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_delay, wait_exponential_jitter

log = logging.getLogger(__name__)
T = TypeVar("T")

_engines: dict[tuple[str, int], Engine] = {}


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    # WAL lets readers run beside the single writer; busy_timeout makes writers queue, not fail.
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.close()


def _psycopg_parse_cache() -> None:
    """psycopg caches its rewrite of a query's placeholders only for queries up to 4 KiB and 50
    parameters; the doorbell claim is longer (one pick per priority class, the balancing guard,
    the job's columns twice), so every claim would be parsed again (~0.5 ms of CPU per job).
    The bounds are psycopg's module constants; the cache itself stays an LRU of 128 queries.
    Left alone if a psycopg version no longer has them."""
    try:
        from psycopg import _queries
    except ImportError:  # pragma: no cover - psycopg is a dependency
        return
    for name, floor in (("MAX_CACHED_STATEMENT_LENGTH", 16384), ("MAX_CACHED_STATEMENT_PARAMS", 200)):
        if isinstance(getattr(_queries, name, None), int):
            setattr(_queries, name, max(getattr(_queries, name), floor))


def _resolve(url: str | None) -> str:
    if url is None:
        from mediarunner.config import get_settings

        url = get_settings().database_url
    return url


def get_engine(url: str | None = None) -> Engine:
    url = _resolve(url)
    key = (url, os.getpid())
    engine = _engines.get(key)
    if engine is None:
        if url.startswith("sqlite"):
            path = url.split("///", 1)[-1]
            if path and path != ":memory:":
                Path(path).parent.mkdir(parents=True, exist_ok=True)
            engine = create_engine(url, connect_args={"timeout": 30})
            event.listen(engine, "connect", _sqlite_pragmas)
        else:
            # No pre-ping (a round trip per transaction): transaction() retries on a dropped connection.
            engine = create_engine(url, pool_size=5, max_overflow=5)
            if engine.dialect.driver == "psycopg":
                _psycopg_parse_cache()
        _engines[key] = engine
    return engine


#: The claim lane's session settings (PostgreSQL; see :func:`one_statement`).
LANE_OPTIONS = "-c synchronous_commit=off -c plan_cache_mode=force_generic_plan"


def claim_lane(url: str | None = None) -> Engine:
    """The claim lane of a PostgreSQL database: its own small pool of autocommit connections
    (no isolation level to switch at each checkout, nothing to roll back at each return) with
    :data:`LANE_OPTIONS`."""
    return _lane(url, "lane", {"options": LANE_OPTIONS})


def single_statements(url: str | None = None) -> Engine:
    """A PostgreSQL database's pool of autocommit connections for :func:`one_statement`'s durable
    units (a submit): the claim lane's kind of pool with the server's own settings. A checkout
    from the engine's own pool would switch it to autocommit and back at every unit, which costs
    a thread more CPU than the statement's own round trip."""
    return _lane(url, "single", {})


_LANES = ("lane", "single")  # the kinds of :func:`_lane` pools, by their key suffix


def _lane(url: str | None, kind: str, connect_args: dict[str, Any]) -> Engine:
    url = _resolve(url)
    key = _lane_key(url, kind)
    engine = _engines.get(key)
    if engine is None:
        engine = _engines[key] = create_engine(
            url, isolation_level="AUTOCOMMIT", pool_size=2, max_overflow=8, pool_reset_on_return=None,
            connect_args=connect_args)
    return engine


def _lane_key(url: str, kind: str) -> tuple[str, int]:
    return f"{url}#{kind}", os.getpid()  # beside the engine's own (url, pid) key in ``_engines``


def dispose_pools(url: str | None = None) -> None:
    """Close this process's pooled connections to ``url``, its engine's, its claim lane's and its
    single statements' (a retry starts on fresh ones; a test drops the database), kept ones
    included. Creates no engine."""
    url = _resolve(url)
    for key in ((url, os.getpid()), *(_lane_key(url, kind) for kind in _LANES)):
        engine = _engines.get(key)
        if engine is not None:
            for kept_key in [k for k, (e, _) in list(_kept.items()) if e.pool is engine.pool]:
                kept = _kept.pop(kept_key, None)
                if kept is not None:
                    kept[1].close()
            engine.dispose()


def dispose_engines() -> None:
    """Forget engines inherited from a parent process (call in a forked child)."""
    for (key, pid), engine in list(_engines.items()):
        if pid != os.getpid():
            engine.dispose(close=False)
            del _engines[(key, pid)]
    for kept_key in [k for k in _kept if k[1] != os.getpid()]:
        # The parent's socket: never closed or reset from here, and never collected (a collected
        # checked-out connection is returned to its pool, which would talk on the parent's socket).
        _inherited.append(_kept.pop(kept_key))


#: The main thread's kept connections, by (engine, process): see :func:`_connect`.
_kept: dict[tuple[int, int], tuple[Engine, Connection]] = {}
_inherited: list[tuple[Engine, Connection]] = []


@contextmanager
def _connect(engine: Engine) -> Iterator[Connection]:
    """A connection of ``engine`` for one unit of :func:`one_statement`. In a process's main
    thread (a prefork pool process runs its jobs there) the same connection stays checked out
    from one unit to the next: a pool checkout, a Connection object and its reset cost about as
    much CPU as the short statement itself. Other threads take one from the pool each time. A
    connection whose unit failed is closed (a dropped one is discarded by the pool), never kept."""
    if threading.current_thread() is not threading.main_thread():
        with engine.connect() as conn:
            yield conn
        return
    key = (id(engine), os.getpid())
    kept = _kept.pop(key, None)  # taken while in use: a nested unit or dispose_pools gets its own
    if kept is not None and kept[0] is engine and not (kept[1].closed or kept[1].invalidated):
        conn = kept[1]
    else:
        if kept is not None:  # another engine under a reused id, or a dead connection: given back
            kept[1].close()
        conn = engine.connect()
    try:
        yield conn
    except BaseException:
        conn.close()
        raise
    replaced = _kept.pop(key, None)
    _kept[key] = (engine, conn)
    if replaced is not None:
        replaced[1].close()


_AUTOCOMMIT: dict[int, tuple[Engine, Engine]] = {}


def _autocommit(engine: Engine) -> Engine:
    """``engine`` in autocommit mode, sharing its pool (built once per engine)."""
    cached = _AUTOCOMMIT.get(id(engine))
    if cached is None or cached[0] is not engine:
        cached = _AUTOCOMMIT[id(engine)] = (engine, engine.execution_options(isolation_level="AUTOCOMMIT"))
    return cached[1]


_factories: dict[tuple[int, bool], tuple[Engine, sessionmaker[Session]]] = {}


def session_factory(url: str | None = None, *, single_statement: bool = False) -> sessionmaker[Session]:
    """Sessions on the engine for ``url``. ``single_statement``: on PostgreSQL the session's
    connection is in autocommit mode, so a unit of work that is one statement (atomic by itself)
    costs one round trip instead of three (BEGIN, statement, COMMIT)."""
    engine = get_engine(url)
    # One sessionmaker per engine: building one creates a Session subclass and copies its event
    # listeners, which cost more CPU than a short transaction itself.
    key = (id(engine), single_statement)
    cached = _factories.get(key)
    if cached is None or cached[0] is not engine:
        bind = engine
        if single_statement and engine.dialect.name == "postgresql":
            bind = _autocommit(engine)  # shares the engine's pool
        cached = _factories[key] = (engine, sessionmaker(bind=bind, expire_on_commit=False))
    return cached[1]


@contextmanager
def session_scope(url: str | None = None, *, single_statement: bool = False) -> Iterator[Session]:
    session = session_factory(url, single_statement=single_statement)()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


#: Connection failures that waiting does not cure: fail at once with the server's own words.
_FATAL = ("password authentication failed", "no password supplied", "does not exist",
          "authentication failed", "no pg_hba.conf entry", "permission denied")
_TRANSIENT = ("connection", "server closed", "terminating", "shutting down", "could not connect",
              "the database system is", "database is locked", "ssl syscall")


def _is_disconnect(exc: BaseException) -> bool:
    """True for a dropped or refused connection that a retry may cure (a restart, a lock)."""
    if not isinstance(exc, DBAPIError):
        return False
    text = str(exc).lower()
    if any(s in text for s in _FATAL):
        return False
    if exc.connection_invalidated:
        return True
    return isinstance(exc, OperationalError) and any(s in text for s in _TRANSIENT)


def _retrying(url: str | None, retry_for: float) -> Retrying:
    """Retry a whole unit of work while the database is unreachable: exponential backoff with
    jitter (0.1 s doubling to 3 s), a fresh pool before each retry, give up after ``retry_for``."""

    def before_sleep(state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        log.warning("database unavailable (%s); retrying in %.1fs", type(exc).__name__,
                    state.next_action.sleep if state.next_action else 0.0)
        dispose_pools(url)

    return Retrying(retry=retry_if_exception(_is_disconnect), stop=stop_after_delay(retry_for),
                    wait=wait_exponential_jitter(initial=0.1, max=3.0, jitter=0.05),
                    before_sleep=before_sleep, reraise=True)


def transaction(
    fn: Callable[[Session], T], *, url: str | None = None, retry_for: float = 60.0, single_statement: bool = False
) -> T:
    """Run ``fn(session)`` in one transaction, retrying it whole while the database is unreachable.

    ``fn`` must be safe to re-run: every write in it is a guarded compare-and-set, so a retry
    after an unknown commit outcome does no harm. ``single_statement``: ``fn`` writes with at most
    one statement on PostgreSQL (reads after it may see later commits), which then runs without
    BEGIN/COMMIT (see :func:`session_factory`); elsewhere this changes nothing.
    """
    def unit() -> T:
        with session_scope(url, single_statement=single_statement) as session:
            return fn(session)

    return _with_retries(unit, url, retry_for)


def one_statement(fn: Callable[[Connection], T], *, url: str | None = None, retry_for: float = 60.0,
                  recoverable: bool = False) -> T:
    """:func:`transaction` for the hot path (a job's claim, heartbeat and completion, a submit):
    ``fn`` gets a Core connection, not a Session, and writes with at most one statement on
    PostgreSQL, where it runs in autocommit (one round trip, no BEGIN/COMMIT); on SQLite it runs
    in a transaction (several statements are atomic). A Session costs more CPU than such a
    statement's own work; ``fn`` uses only what a Connection and a Session share (``execute``,
    ``scalar``; see ``statements.Executor``). Retried whole like :func:`transaction`.

    ``recoverable``: a write that the design recovers from losing (a claim, a heartbeat, by default
    a completion) runs on PostgreSQL's claim lane (:func:`claim_lane`): its commit does not wait for
    the WAL flush, and its statements are planned once per connection (the claim's plan does not
    depend on its values, and planning it costs more than running it). Visibility is immediate,
    and the log keeps commit order, so a crash loses only the newest such commits (under a second
    old, none older than a later flushed commit). A lost claim leaves the job pending: the
    attempt's heartbeat and completion match no row (results discarded) and the outbox publishes
    the job again. A lost completion leaves the job running with a silent heartbeat: failover
    runs it again (outputs are published atomically). Submits, failures and cancels always wait."""
    def unit() -> T:
        engine = get_engine(url)
        if engine.dialect.name != "postgresql":
            with engine.begin() as conn:
                return fn(conn)
        with _connect(claim_lane(url) if recoverable else single_statements(url)) as conn:
            return fn(conn)

    return _with_retries(unit, url, retry_for)


def _with_retries(unit: Callable[[], T], url: str | None, retry_for: float) -> T:
    """``unit()``; while the database is unreachable, run it again (see :func:`_retrying`). The
    first try runs without building the retry machinery: most units never need it."""
    try:
        return unit()
    except Exception as exc:
        if not _is_disconnect(exc):
            raise
        log.warning("database unavailable (%s); retrying", type(exc).__name__)
        dispose_pools(url)
    for attempt in _retrying(url, retry_for):
        with attempt:
            return unit()
    raise AssertionError("unreachable: tenacity re-raises the last error")  # pragma: no cover
