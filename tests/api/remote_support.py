"""Remote (HTTP) runners in tests: the real server (uvicorn on a free loopback port) and
``mediarunner runner`` as real subprocesses whose environment holds no database, broker or storage
settings. The ``remote`` fixture (``tests/api/conftest.py``) is :func:`open_remote`."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from tests.api.conftest import API_ENV, SERVED, serving
from tests.support import ROOT, Stack

#: what the runner process keeps of the stack's environment: no database, broker, roots or credentials
CLI = [sys.executable, "-c", "from mediarunner.cli import main; main()", "runner"]
RUNNER_KEEPS = ("MEDIARUNNER_X264_PRESET", "MEDIARUNNER_HEARTBEAT_SECONDS", "MEDIARUNNER_CANCEL_POLL_SECONDS",
                "MEDIARUNNER_HLS_SEGMENT_SECONDS")


@dataclass
class Remote:
    url: str
    stack: Stack
    token_id: str
    token: str
    queue: str  # the test's own remote queue (the PostgreSQL database is shared by the session's tests)

    @property
    def home(self) -> Path:
        return self.stack.tmp / "runner-home"

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("MEDIARUNNER_")}
        env.update({k: self.stack.env[k] for k in RUNNER_KEEPS if k in self.stack.env})
        env.update(MEDIARUNNER_RUNNER_HOME=str(self.home), MEDIARUNNER_SCRATCH_DIR=str(self.stack.tmp / "rscratch"),
                   PYTHONPATH=str(ROOT))
        return env

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*CLI, *args], env=self.env(),
                              cwd=self.cwd, capture_output=True, text=True, timeout=60)

    def serve(self, *args: str) -> subprocess.Popen[str]:
        log = (self.stack.tmp / "runner.log").open("a")
        return subprocess.Popen([*CLI, "serve", *args], env=self.env(),
                                cwd=self.cwd, stdout=log, stderr=subprocess.STDOUT, text=True)

    @property
    def cwd(self) -> Path:
        """Where the runner runs: were it to open its (default, SQLite) database, var/ would appear here."""
        path = self.stack.tmp / "runner-cwd"
        path.mkdir(exist_ok=True)
        return path

    def waiting_requests(self) -> int:
        """How many job requests (long polls) the server holds now."""
        watch = getattr(SERVED[self.url].state, "runner_watch", None)
        return watch.waiters if watch is not None else 0

    def log(self) -> str:
        path = self.stack.tmp / "runner.log"
        return path.read_text()[-4000:] if path.exists() else ""


@contextmanager
def open_remote(stack: Stack, **env_extra: str) -> Iterator[Remote]:
    """The real API server with a remote queue of the test's own and a registration token."""
    from mediarunner.fleet import FleetService

    queue = f"remote-{uuid.uuid4().hex[:8]}"
    env = {**API_ENV, "MEDIARUNNER_JOB_QUEUES": f'["cpu", "gpu", "{queue}"]',
           "MEDIARUNNER_REMOTE_QUEUES": f'["{queue}"]', **env_extra}
    with serving(stack, env) as (url, settings):
        token = FleetService(settings).create_token("remote-test")
        try:
            yield Remote(url, stack, token.id, token.secret, queue)
        finally:
            cancel_queue(settings.database_url, queue)


def cancel_queue(database_url: str, queue: str) -> None:
    """Leave no pending job behind in the session's shared database."""
    from sqlalchemy import select

    from mediarunner.models import transitions
    from mediarunner.models.base import utcnow
    from mediarunner.models.db import transaction
    from mediarunner.models.tables import JobRow

    def cancel(s: Any) -> None:
        for job_id in s.scalars(select(JobRow.id).where(JobRow.queue == queue, JobRow.parent_id.is_(None))):
            transitions.cancel(s, job_id, utcnow())

    transaction(cancel, url=database_url)


def register(remote: Remote, name: str) -> dict[str, Any]:
    r = httpx.post(f"{remote.url}/v1/runner/register", json={"registration_token": remote.token, "name": name})
    assert r.status_code == 201, r.text
    return r.json()


def h(runner: dict[str, Any], job_token: str | None = None) -> dict[str, str]:
    h = {"Authorization": f"Bearer {runner['runner_token']}"}
    return {**h, "Mediarunner-Job-Token": job_token} if job_token else h


