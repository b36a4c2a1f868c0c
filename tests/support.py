"""Test support: real services (a private redis-server, PostgreSQL databases, SQLite files)
and real Celery workers. Waiting is always on a condition with a deadline (:func:`wait_for`).

Two kinds of worker, both running mediarunner's real app, tasks and fleet bootstep:

* ``stack.worker(...)``: a ``celery worker`` subprocess (prefork pool). For tests whose point is a
  process: kills, restarts, beat, exit codes, logs of one process, per-worker environments.
* ``stack.inproc_worker(...)``: Celery's embedded test worker (``celery.contrib.testing.worker``,
  the worker behind pytest-celery's in-process fixtures) in a thread of the test process, with a
  ``threads`` pool (ffmpeg runs in subprocesses either way). It starts in a fraction of a second
  instead of seconds, and runs the same path: claim -> handler -> complete, job heartbeats, cancel
  polling, runner registration and heartbeats. It shares the test's environment and cannot be killed.

Several worker processes of one test start at once: ``stack.worker(..., wait=False)`` for each, then
``stack.ready()``. A migrated database per test is a copy (``create_pg_database(migrated=True)``,
:func:`migrated_sqlite`) of one migrated once per test session.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mediarunner.workers.clock import SCHEDULER_WORKER_ARGS
from tests.services import (  # noqa: F401  (re-exported: tests import services from here too)
    AT_HEAD,
    BROKER_QUEUES,
    PG_ADMIN,
    RABBITMQ,
    ROOT,
    PgServer,
    RedisServer,
    create_pg_database,
    create_rabbitmq_vhost,
    delete_rabbitmq_vhost,
    drop_pg_database,
    empty_broker,
    free_port,
    make_clip,
    migrated_sqlite,
    pg_available,
    rabbitmq_available,
    wait_for,
)


@dataclass
class Stack:
    """Everything a test needs to run jobs: settings (as env vars), a client, workers."""

    env: dict[str, str]
    tmp: Path
    workers: list[Worker] = field(default_factory=list)
    inproc_workers: list[InprocWorker] = field(default_factory=list)
    _saved_env: dict[str, str | None] = field(default_factory=dict)  # what in-process workers changed

    def settings(self) -> Any:
        from mediarunner.config import Settings

        return Settings()

    def client(self) -> Any:
        from mediarunner.client import Client
        from mediarunner.workers.app import create_app

        settings = self.settings()
        return Client(settings, app=create_app(settings))

    def worker(self, name: str, queues: str = "cpu", concurrency: int = 1, beat: bool = False,
               extra_env: dict[str, str] | None = None, wait: bool = True) -> Worker:
        """A ``celery worker`` process, ready when this returns; ``wait=False``: started only, so
        that several start at once (then :meth:`ready`)."""
        w = Worker(name=name, queues=queues, concurrency=concurrency, env={**self.env, **(extra_env or {})},
                   log=self.tmp / f"worker-{name}.log", beat=beat)
        self.workers.append(w)  # first: the stack's teardown stops it even if its start fails
        w.start(wait=wait)
        return w

    def ready(self) -> None:
        """Wait until every worker process started with ``wait=False`` is ready."""
        for w in self.workers:
            if not w.ready_seen:
                w.wait_ready()

    def inproc_worker(self, name: str, queues: str = "cpu", concurrency: int = 1,
                      extra_env: dict[str, str] | None = None) -> InprocWorker:
        """A worker in this process (see the module docstring). ``extra_env`` is applied to this
        process's environment until the stack ends, so every in-process worker of a test (and the
        test itself) sees it: two in-process workers with different settings are refused."""
        from mediarunner.config import get_settings

        for k, v in (extra_env or {}).items():
            if os.environ.get(k) == v:
                continue
            if k in self._saved_env or self.inproc_workers:
                raise ValueError(f"in-process workers share one environment: {k} differs; use stack.worker()")
            self._saved_env[k] = os.environ.get(k)
            os.environ[k] = v
        get_settings.cache_clear()
        if not self.inproc_workers:  # a fresh worker process would start with no model loaded
            from mediarunner.speech import clear_engine_cache

            clear_engine_cache()
        w = InprocWorker(name=name, queues=queues, concurrency=concurrency, log=self.tmp / f"worker-{name}.log")
        self.inproc_workers.append(w)  # first: the stack's teardown cleans up after a failed start too
        w.start()
        return w

    def stop_all(self) -> None:
        for w in self.workers:  # all at once: each warm shutdown takes seconds
            w.request_stop()
        for iw in self.inproc_workers:
            iw.request_stop(fail_over=True)
        for w in self.workers:
            w.stop()
        self.workers.clear()
        for iw in reversed(self.inproc_workers):
            iw.join()
        self.inproc_workers.clear()
        for k, v in self._saved_env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        self._saved_env.clear()


@dataclass
class Worker:
    name: str
    queues: str
    concurrency: int
    env: dict[str, str]
    log: Path
    beat: bool = False
    proc: subprocess.Popen[bytes] | None = None
    ready_seen: bool = False  # this run said it is ready
    _offset: int = 0  # where this run's lines start in the log

    @property
    def hostname(self) -> str:
        return f"{self.name}@{socket.gethostname()}"

    def start(self, wait: bool = True) -> None:
        cmd = [sys.executable, "-m", "celery", "-A", "mediarunner.workers.app", "worker", "-Q", self.queues,
               "-c", str(self.concurrency), "-n", self.hostname, "--loglevel", "INFO", "--without-mingle",
               "--without-gossip", "-E"]
        if self.beat:
            cmd += [*SCHEDULER_WORKER_ARGS, "--schedule", str(self.log.with_suffix(".beat"))]  # as `mediarunner beat`
        self.ready_seen = False
        with self.log.open("ab") as out:
            self._offset = out.tell()  # a restart appends: only this run's lines say it is ready
            self.proc = subprocess.Popen(cmd, cwd=ROOT, env={**os.environ, **self.env}, stdout=out,
                                         stderr=subprocess.STDOUT, start_new_session=True)
        if wait:
            self.wait_ready()

    def wait_ready(self) -> None:
        wait_for(lambda: b"ready." in self.log.read_bytes()[self._offset:] or self._died(), 60,
                 what=f"worker {self.name} to be ready")
        assert not self._died(), self.log.read_text()[-3000:]
        self.ready_seen = True

    def _died(self) -> bool:
        return self.proc is not None and self.proc.poll() is not None

    def kill(self) -> None:
        """SIGKILL the whole process group: the pool children and their ffmpeg die too."""
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def request_stop(self) -> None:
        """SIGTERM (warm shutdown), without waiting for the process to end."""
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.request_stop()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.kill()


def bind_app(settings: Any) -> Any:
    """mediarunner's worker app (``mediarunner.workers.app.app``, created at import with the settings
    of that moment), configured for ``settings`` and with its tasks registered."""
    import mediarunner.workers.tasks  # noqa: F401  (registers the tasks on the app)
    from mediarunner.workers.app import app, celery_config

    config = celery_config(settings)
    # A closing consumer waits for its blocking pop to return: 0.1 s instead of kombu's 1 s apiece.
    config["broker_transport_options"] = {**config["broker_transport_options"], "polling_interval": 0.1}
    if any(app.conf.get(k) != v for k, v in config.items() if k != "task_queues"):
        app.conf.update(config)
        app._pool = None  # the app's (cached) pool of connections to the broker it was created for
        app.amqp._producer_pool = None
    app.finalize()
    return app


def _inproc_pool() -> type:
    """Celery's threads pool, but a task's ``request.hostname`` is its own worker's name: Celery's
    non-prefork trace uses the machine's name (or one name per process, set up by ``celery worker``),
    and several in-process workers share this process."""
    from celery.app.trace import fast_trace_task
    from celery.concurrency.thread import TaskPool
    from kombu.serialization import prepare_accept_content

    class InprocPool(TaskPool):
        def on_apply(self, target: Any, args: Any = None, kwargs: Any = None, **options: Any) -> Any:
            app = self.app

            def trace(name: str, uuid: str, request: dict[str, Any], *rest: Any, **kw: Any) -> Any:
                loc = [app._tasks, prepare_accept_content(app.conf.accept_content), request["hostname"]]
                return fast_trace_task(name, uuid, request, *rest, _loc=loc, **kw)

            return super().on_apply(trace, args, kwargs, **options)

    return InprocPool


@dataclass
class InprocWorker:
    """A Celery worker in a thread of this process: ``stack.inproc_worker(...)`` starts one."""

    name: str
    queues: str
    concurrency: int
    log: Path
    controller: Any = None
    thread: threading.Thread | None = None
    _log_handler: logging.Handler | None = None
    _root_level: int = logging.WARNING

    @property
    def hostname(self) -> str:
        return f"{self.name}@{socket.gethostname()}"

    def start(self) -> None:
        from celery.contrib.testing.worker import TestWorkController, test_worker_started
        from kombu.asynchronous import set_event_loop

        from mediarunner.config import get_settings

        app = bind_app(get_settings())
        app.set_current()
        root = logging.getLogger()
        self._root_level = root.level
        self._log_handler = logging.FileHandler(self.log)
        self._log_handler.setFormatter(logging.Formatter("[%(asctime)s: %(levelname)s/%(threadName)s] %(message)s"))
        self._log_handler.setLevel(logging.INFO)
        root.addHandler(self._log_handler)
        if root.getEffectiveLevel() > logging.INFO:
            root.setLevel(logging.INFO)
        ready = threading.Event()

        def on_started(worker: Any = None, **_: Any) -> None:
            if worker is self.controller:
                ready.set()

        test_worker_started.connect(on_started, sender=app, weak=False)
        # A worker takes kombu's current event loop if there is one: each in-process worker needs its own.
        set_event_loop(None)
        try:
            # A refusal at start-up (worker_init: a bad token) exits the process; here it fails the test.
            self.controller = TestWorkController(
                app=app, hostname=self.hostname, queues=self.queues.split(","), concurrency=self.concurrency,
                pool=_inproc_pool(), loglevel="INFO", without_mingle=True, without_gossip=True, ready_callback=None)
            self.thread = threading.Thread(target=self.controller.start, name=f"worker-{self.name}", daemon=True)
            self.thread.start()
            thread = self.thread
            wait_for(lambda: ready.is_set() or not thread.is_alive(), 30, what=f"in-process worker {self.name}")
            if not ready.is_set():
                tail = self.log.read_text()[-3000:]
                self.join()
                raise AssertionError(f"in-process worker {self.name} died:\n{tail}")
        except SystemExit as exc:
            self.join()
            raise AssertionError(f"in-process worker {self.name} refused to start (exit code {exc.code})") from None
        finally:
            test_worker_started.disconnect(on_started, sender=app)

    def stop(self, timeout: float = 20.0, fail_over: bool = False) -> None:
        """Warm shutdown, as SIGTERM gives a subprocess: running jobs finish first. ``fail_over``
        (the stack's teardown) first fails over this runner's running jobs, so they stop at once."""
        self.request_stop(fail_over)
        self.join(timeout)

    def request_stop(self, fail_over: bool = False) -> None:
        if self.thread is None or not self.thread.is_alive():
            return
        if fail_over:
            from mediarunner.models.base import utcnow
            from mediarunner.models.db import transaction
            from mediarunner.scheduler.fleet import fail_over_runner

            with contextlib.suppress(Exception):
                transaction(lambda s: fail_over_runner(s, self.hostname, utcnow(), "test over", max_aborts=None))
        # Remote-control shutdown is handled on the worker's own event loop (WorkerShutdown), like
        # SIGTERM for a process: it stops this worker only, not the others in this process.
        self.controller.app.control.broadcast("shutdown", destination=[self.hostname], reply=False)

    def join(self, timeout: float = 20.0) -> None:
        alive = False
        if self.thread is not None:
            self.thread.join(timeout)
            alive = self.thread.is_alive()
            self.thread = None
        root = logging.getLogger()
        if self._log_handler is not None:
            root.removeHandler(self._log_handler)
            self._log_handler.close()
            self._log_handler = None
        root.setLevel(self._root_level)
        assert not alive, f"in-process worker {self.name} did not stop within {timeout}s"


def _cancel_leftovers(database_url: str) -> None:
    """Cancel the jobs an earlier test left active in a shared database (its teardown fails running
    jobs over, back to pending): a message claims the best due job of its queue, so they would run
    before this test's own jobs."""
    from sqlalchemy import select

    from mediarunner.models import transitions
    from mediarunner.models.base import utcnow
    from mediarunner.models.db import transaction
    from mediarunner.models.enums import ACTIVE_STATES
    from mediarunner.models.tables import JobRow

    def cancel(session: Any) -> None:
        # every active job, not only roots: a finished parent may leave pending children behind
        for job_id in session.scalars(select(JobRow.id).where(JobRow.state.in_(list(ACTIVE_STATES)))
                                      .order_by(JobRow.parent_id.is_not(None))).all():
            transitions.cancel(session, job_id, utcnow())

    transaction(cancel, url=database_url)




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
        # One job per rung, split only when asked: what most tests assert on. The auto planner
        # (production's default) is tested by tests/test_vod_layout_e2e.py.
        "MEDIARUNNER_TRANSCODE_PLANNER": "fixed",
        **overrides,
    }
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    get_settings.cache_clear()
    if database_url not in AT_HEAD:  # a database shared by tests (pg_url) is migrated once
        upgrade(database_url)
        AT_HEAD.add(database_url)
    _cancel_leftovers(database_url)
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
