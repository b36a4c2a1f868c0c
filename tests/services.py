"""Test services: real ones, never fakes: a private redis-server, PostgreSQL databases (copies of
one migrated template) and a private PostgreSQL cluster a test may restart, SQLite files, RabbitMQ
vhosts, test clips, and :func:`wait_for` (a condition with a deadline, never a fixed sleep).
Re-exported by :mod:`tests.support`, which builds stacks and workers on them."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import psycopg
import redis

T = TypeVar("T")
ROOT = Path(__file__).resolve().parents[1]
PG_ADMIN = os.environ.get("MEDIARUNNER_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")
#: databases at the head, migrated in this process (never downgraded by a test): make_stack skips them
AT_HEAD: set[str] = set()

def wait_for(cond: Callable[[], T], timeout: float = 30.0, interval: float = 0.05, what: str = "condition",
             max_interval: float = 0.25) -> T:
    """Poll ``cond`` until it returns something truthy and return that; fail with ``what`` after
    ``timeout``. The pause grows from ``interval`` to ``max_interval`` (pass both equal for a steady
    rate). The one polling helper of the tests and benchmarks: no fixed sleeps anywhere else."""
    deadline = time.monotonic() + timeout
    delay = interval
    while True:
        value = cond()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(delay)
        delay = min(delay * 1.5, max_interval)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class RedisServer:
    """A private redis-server on a free loopback port (so tests may stop and restart it)."""

    dir: Path
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None
    persist: bool = False  # AOF on: queued messages survive a restart, as in production

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "yes" if self.persist else "no", "--appendfsync", "always", "--dir", str(self.dir)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for(self.ping, 10, what="redis-server to accept connections")

    def ping(self) -> bool:
        try:
            return bool(redis.Redis(port=self.port, socket_connect_timeout=0.2).ping())
        except redis.RedisError:
            return False

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
        self.proc = None


def pg_available() -> bool:
    try:
        with psycopg.connect(PG_ADMIN, connect_timeout=3):
            return True
    except psycopg.Error:
        return False


def create_pg_database(migrated: bool = False) -> str:
    """A new, empty database; ``migrated``: at the migrations' head, copied from this process's
    migrated template (``CREATE DATABASE ... TEMPLATE``: one migration run per test session, not
    one per database)."""
    if not pg_available():
        import pytest

        if os.environ.get("MEDIARUNNER_REQUIRE_PG"):
            raise RuntimeError(f"PostgreSQL is required (MEDIARUNNER_REQUIRE_PG) but {PG_ADMIN} is unreachable")
        pytest.skip(f"PostgreSQL not reachable at {PG_ADMIN} (set MEDIARUNNER_TEST_PG)")
    template = f' TEMPLATE "{_pg_template()}"' if migrated else ""
    name = f"mr_test_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"{template}')
        # A commit does not wait for its WAL flush: a test database never has to survive the
        # machine crashing (the same isolation and visibility, without an fsync per transaction).
        conn.execute(f'ALTER DATABASE "{name}" SET synchronous_commit = off')
    url = PG_ADMIN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://") + f"/{name}"
    if migrated:
        AT_HEAD.add(url)
    return url


_templates: dict[str, str] = {}  # "pg": the template database's name; "sqlite": the migrated file


def _pg_template() -> str:
    """This process's migrated template database, made on first use and dropped at exit. Nothing
    stays connected to it (a template with a session open cannot be copied)."""
    if "pg" not in _templates:
        import atexit

        from mediarunner.models.migrate import upgrade

        url = create_pg_database()
        upgrade(url)
        _dispose_engines(url)
        _templates["pg"] = url.rsplit("/", 1)[1]
        atexit.register(drop_pg_database, url)
    return _templates["pg"]


def migrated_sqlite(path: Path) -> str:
    """A SQLite database at ``path``, at the migrations' head: a copy of a file migrated once per process."""
    if "sqlite" not in _templates:
        import atexit
        import tempfile

        from mediarunner.models.migrate import upgrade

        folder = tempfile.mkdtemp(prefix="mr-sqlite-template-")
        upgrade(f"sqlite:///{folder}/template.db")
        _dispose_engines(f"sqlite:///{folder}/template.db")
        _templates["sqlite"] = f"{folder}/template.db"
        atexit.register(shutil.rmtree, folder, True)
    import sqlite3

    # SQLite's backup API: a consistent copy whatever the template's journal (WAL) holds
    with contextlib.closing(sqlite3.connect(_templates["sqlite"])) as src, \
            contextlib.closing(sqlite3.connect(path)) as dst:
        src.backup(dst)
    AT_HEAD.add(f"sqlite:///{path}")
    return f"sqlite:///{path}"


def _dispose_engines(url: str) -> None:
    from mediarunner.models.db import dispose_pools

    dispose_pools(url)


def drop_pg_database(url: str) -> None:
    name = url.rsplit("/", 1)[1]
    _dispose_engines(url)
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


RABBITMQ = os.environ.get("MEDIARUNNER_TEST_RABBITMQ", "amqp://guest:guest@127.0.0.1:5672")
#: Every queue mediarunner declares (job queues, beat's) and Celery's default one.
BROKER_QUEUES = ("cpu", "gpu", "scheduler", "celery")


def rabbitmq_available() -> bool:
    host, port = RABBITMQ.rsplit("@", 1)[-1].split(":")
    try:
        with socket.create_connection((host, int(port)), timeout=2):
            return True
    except OSError:
        return False


def _rabbitmqctl(*args: str) -> None:
    subprocess.run(["rabbitmqctl", "-q", *args], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                   timeout=60)


def create_rabbitmq_vhost() -> str:
    """A vhost of its own on the machine's RabbitMQ (``rabbitmqctl``, as root), for one test session:
    nothing another process or session publishes can reach it. Returns its URL."""
    if not rabbitmq_available() or not shutil.which("rabbitmqctl"):
        import pytest

        if os.environ.get("MEDIARUNNER_REQUIRE_RABBITMQ"):
            raise RuntimeError(f"RabbitMQ is required (MEDIARUNNER_REQUIRE_RABBITMQ) but {RABBITMQ} is unreachable")
        pytest.skip(f"RabbitMQ not reachable at {RABBITMQ} (set MEDIARUNNER_TEST_RABBITMQ)")
    name = f"mr_test_{uuid.uuid4().hex[:10]}"
    _rabbitmqctl("add_vhost", name)
    user = RABBITMQ.split("://", 1)[1].split(":", 1)[0]
    _rabbitmqctl("set_permissions", "-p", name, user, ".*", ".*", ".*")
    return f"{RABBITMQ}/{name}"


def delete_rabbitmq_vhost(url: str) -> None:
    with contextlib.suppress(subprocess.SubprocessError):
        _rabbitmqctl("delete_vhost", url.rsplit("/", 1)[1])


def empty_broker(url: str) -> None:
    """Start from an empty broker (or lose every message, as a broker failure would): flush the
    Redis database, or purge mediarunner's queues in the RabbitMQ vhost. Purged, not deleted: the
    producers of this process remember the queues they declared (kombu's per-connection cache,
    shared by every app on the same URL) and would never declare a deleted one again."""
    if not url.startswith("amqp"):
        redis.Redis.from_url(url).flushdb()
        return
    from kombu import Connection

    with Connection(url, connect_timeout=5) as conn:
        for q in BROKER_QUEUES:
            channel = conn.channel()
            try:
                channel.queue_purge(q)
            except Exception:  # ChannelError: no such queue (yet); RabbitMQ closed the channel
                pass
            finally:
                with contextlib.suppress(Exception):
                    channel.close()


def make_clip(path: Path, *, seconds: float = 3.0, size: str = "640x360", audio: bool = True,
              video: bool = True, rate: int = 25) -> Path:
    """Generate a test clip with ffmpeg's lavfi sources."""
    args = ["ffmpeg", "-hide_banner", "-loglevel", "error", "-y"]
    if video:
        args += ["-f", "lavfi", "-i", f"testsrc2=size={size}:rate={rate}:duration={seconds}"]
    if audio:
        args += ["-f", "lavfi", "-i", f"sine=frequency=440:sample_rate=48000:duration={seconds}"]
    if video:
        args += ["-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p"]
    if audio:
        args += ["-c:a", "aac"]
    args += [str(path)]
    subprocess.run(args, check=True)
    return path


@dataclass
class PgServer:
    """A private PostgreSQL cluster on a free port, so a test may restart it."""

    dir: Path
    port: int = field(default_factory=free_port)

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def _bin(self, name: str) -> str:
        found = sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"))
        return str(found[-1]) if found else name

    def _run(self, *cmd: str) -> None:
        prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        subprocess.run(prefix + list(cmd), check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def init(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            shutil.chown(self.dir, "postgres")
        self._run(self._bin("initdb"), "-D", str(self.dir / "data"), "-A", "trust", "-U", "postgres")
        self.start()

    def start(self) -> None:
        self._run(self._bin("pg_ctl"), "-D", str(self.dir / "data"), "-l", str(self.dir / "log"), "-w", "-o",
                  f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off", "start")

    def stop(self) -> None:
        self._run(self._bin("pg_ctl"), "-D", str(self.dir / "data"), "-m", "fast", "-w", "stop")

    def destroy(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError):
            self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)
