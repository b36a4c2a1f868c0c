from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import RedisServer, Stack, create_pg_database, drop_pg_database, make_stack

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
    """A migrated, empty database on each backend."""
    from mediarunner.models.migrate import upgrade

    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'mediarunner.db'}"
        upgrade(url)
        yield url
    else:
        url = create_pg_database()
        upgrade(url)
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
    with make_stack(tmp_path, f"sqlite:///{tmp_path / 'mediarunner.db'}", redis_server.url) as s:
        yield s
