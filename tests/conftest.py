from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import (
    RedisServer,
    Stack,
    create_pg_database,
    create_rabbitmq_vhost,
    delete_rabbitmq_vhost,
    drop_pg_database,
    empty_broker,
    make_stack,
    migrated_sqlite,
)

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("PYANNOTE_METRICS_ENABLED", "0")


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    url = create_pg_database()
    yield url
    drop_pg_database(url)


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'mediarunner.db'}"


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A migrated, empty database on each backend (a copy of one migrated once per session)."""
    if request.param == "sqlite":
        yield migrated_sqlite(tmp_path / "mediarunner.db")
    else:
        url = create_pg_database(migrated=True)
        yield url
        drop_pg_database(url)


@pytest.fixture
def stack(tmp_path: Path, pg_url: str, redis_server: RedisServer) -> Iterator[Stack]:
    """PostgreSQL + a private Redis; start workers with ``stack.inproc_worker(name, queues)`` (in this
    process: fast) or ``stack.worker(name, queues)`` (a ``celery worker`` process: for fault tests)."""
    redis_server.ping() or redis_server.start()
    import redis

    redis.Redis.from_url(redis_server.url).flushdb()
    with make_stack(tmp_path, pg_url, redis_server.url) as s:
        yield s


@pytest.fixture
def sqlite_stack(tmp_path: Path, redis_server: RedisServer) -> Iterator[Stack]:
    import redis

    redis.Redis.from_url(redis_server.url).flushdb()
    with make_stack(tmp_path, migrated_sqlite(tmp_path / "mediarunner.db"), redis_server.url) as s:
        yield s


# ------------------------------------------------------------------------------ both brokers
# End-to-end, ordering and fault tests run on Redis and on RabbitMQ through these fixtures
# (parametrised, never copied); everything else stays on the session's private Redis.


@pytest.fixture(scope="session")
def rabbitmq_url() -> Iterator[str]:
    """This session's own vhost on the machine's RabbitMQ (127.0.0.1:5672, guest/guest)."""
    url = create_rabbitmq_vhost()
    yield url
    delete_rabbitmq_vhost(url)


@pytest.fixture(params=["redis", "rabbitmq"])
def broker_url(request: pytest.FixtureRequest, redis_server: RedisServer) -> str:
    """An empty broker of each kind: the session's private Redis (flushed), or the session's
    RabbitMQ vhost (mediarunner's queues deleted)."""
    if request.param == "redis":
        redis_server.ping() or redis_server.start()
        url = redis_server.url
    else:
        url = request.getfixturevalue("rabbitmq_url")
    empty_broker(url)
    return url


@pytest.fixture
def broker_stack(tmp_path: Path, pg_url: str, broker_url: str) -> Iterator[Stack]:
    """:func:`stack` on each broker (PostgreSQL)."""
    with make_stack(tmp_path, pg_url, broker_url) as s:
        yield s


@pytest.fixture(params=["sqlite", "postgresql"])
def matrix_stack(request: pytest.FixtureRequest, tmp_path: Path, broker_url: str) -> Iterator[Stack]:
    """A stack on each database and each broker (four runs): for ordering tests."""
    if request.param == "sqlite":
        with make_stack(tmp_path, migrated_sqlite(tmp_path / "mediarunner.db"), broker_url) as s:
            yield s
        return
    url = create_pg_database(migrated=True)
    try:
        with make_stack(tmp_path, url, broker_url) as s:
            yield s
    finally:
        drop_pg_database(url)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark the RabbitMQ runs (the ``rabbitmq`` broker parameter, or the ``rabbitmq_url`` fixture):
    ``make test-rabbitmq`` runs them in a pytest session of their own, so that the in-process Celery
    app, which every in-process worker and client of a session shares, never switches between Redis
    and RabbitMQ within one session."""
    for item in items:
        params = getattr(getattr(item, "callspec", None), "params", {})
        if "rabbitmq" in params.values() or "rabbitmq_url" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.rabbitmq)


@pytest.fixture
def publishers() -> Iterator[list[subprocess.Popen[bytes]]]:
    """Stream sources (ffmpeg publishers or RTMP servers) a test starts: killed if still running
    (a test may have stopped one with SIGSTOP to freeze the stream)."""
    procs: list[subprocess.Popen[bytes]] = []
    yield procs
    for p in procs:
        if p.poll() is None:
            os.kill(p.pid, signal.SIGCONT)  # a stopped process would not die before it runs again
            p.kill()
        p.wait(10)
