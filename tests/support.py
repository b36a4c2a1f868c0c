"""Test support: real services (a private redis-server, PostgreSQL databases, SQLite files)
and real Celery worker processes. Waiting is always on a condition with a deadline."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import psycopg
import redis

T = TypeVar("T")
ROOT = Path(__file__).resolve().parents[1]
PG_ADMIN = os.environ.get("MEDIARUNNER_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")


def wait_for(cond: Callable[[], T], timeout: float = 30.0, interval: float = 0.05, what: str = "condition") -> T:
    """Poll ``cond`` until it returns something truthy; fail with ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    delay = interval
    while True:
        value = cond()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(delay)
        delay = min(delay * 1.5, 0.5)


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


def create_pg_database() -> str:
    if not pg_available():
        import pytest

        if os.environ.get("MEDIARUNNER_REQUIRE_PG"):
            raise RuntimeError(f"PostgreSQL is required (MEDIARUNNER_REQUIRE_PG) but {PG_ADMIN} is unreachable")
        pytest.skip(f"PostgreSQL not reachable at {PG_ADMIN} (set MEDIARUNNER_TEST_PG)")
    name = f"mr_test_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return PG_ADMIN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://") + f"/{name}"


def drop_pg_database(url: str) -> None:
    name = url.rsplit("/", 1)[1]
    from mediarunner.models.db import _engines

    for (u, _pid), eng in list(_engines.items()):
        if u == url:
            eng.dispose()
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@dataclass
class Stack:
    """Everything a test needs to run jobs: settings (as env vars), a client, workers."""

    env: dict[str, str]
    tmp: Path
    workers: list[Worker] = field(default_factory=list)

    def settings(self) -> Any:
        from mediarunner.config import Settings

        return Settings()

    def client(self) -> Any:
        from mediarunner.client import Client
        from mediarunner.workers.app import create_app

        settings = self.settings()
        return Client(settings, app=create_app(settings))

    def worker(self, name: str, queues: str = "cpu", concurrency: int = 1, beat: bool = False,
               extra_env: dict[str, str] | None = None) -> Worker:
        w = Worker(name=name, queues=queues, concurrency=concurrency, env={**self.env, **(extra_env or {})},
                   log=self.tmp / f"worker-{name}.log", beat=beat)
        w.start()
        self.workers.append(w)
        return w

    def stop_all(self) -> None:
        for w in self.workers:
            w.stop()
        self.workers.clear()


@dataclass
class Worker:
    name: str
    queues: str
    concurrency: int
    env: dict[str, str]
    log: Path
    beat: bool = False
    proc: subprocess.Popen[bytes] | None = None

    @property
    def hostname(self) -> str:
        return f"{self.name}@{socket.gethostname()}"

    def start(self, wait: bool = True) -> None:
        cmd = [sys.executable, "-m", "celery", "-A", "mediarunner.workers.app", "worker", "-Q", self.queues,
               "-c", str(self.concurrency), "-n", self.hostname, "--loglevel", "INFO", "--without-mingle",
               "--without-gossip", "-E"]
        if self.beat:
            cmd += ["-B", "--schedule", str(self.log.with_suffix(".beat"))]
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(cmd, cwd=ROOT, env={**os.environ, **self.env}, stdout=out,
                                         stderr=subprocess.STDOUT, start_new_session=True)
        if wait:
            wait_for(lambda: b"ready." in self.log.read_bytes() or self._died(), 60,
                     what=f"worker {self.name} to be ready")
            assert not self._died(), self.log.read_text()[-3000:]

    def _died(self) -> bool:
        return self.proc is not None and self.proc.poll() is not None

    def kill(self) -> None:
        """SIGKILL the whole process group: the pool children and their ffmpeg die too."""
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.kill()


@contextmanager
def make_stack(tmp: Path, database_url: str, broker_url: str, **overrides: str) -> Iterator[Stack]:
    from mediarunner.config import get_settings
    from mediarunner.models.migrate import upgrade

    outputs = tmp / "outputs"
    outputs.mkdir(parents=True, exist_ok=True)
    env = {
        "MEDIARUNNER_DATABASE_URL": database_url,
        "MEDIARUNNER_BROKER_URL": broker_url,
        "MEDIARUNNER_SCRATCH_DIR": str(tmp / "scratch"),
        "MEDIARUNNER_OUTPUT_ROOTS": f'["{outputs}"]',
        "MEDIARUNNER_INPUT_ROOTS": f'["{tmp.parent}"]',  # this test's files and the session fixtures' (siblings)
        "MEDIARUNNER_X264_PRESET": "ultrafast",
        "MEDIARUNNER_HEARTBEAT_SECONDS": "0.5",
        "MEDIARUNNER_CANCEL_POLL_SECONDS": "0.2",
        "MEDIARUNNER_HLS_SEGMENT_SECONDS": "2",
        **overrides,
    }
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    get_settings.cache_clear()
    upgrade(database_url)
    stack = Stack(env=env, tmp=tmp)
    try:
        yield stack
    finally:
        stack.stop_all()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        get_settings.cache_clear()
        shutil.rmtree(tmp / "scratch", ignore_errors=True)


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
