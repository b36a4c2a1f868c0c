"""`mediarunner beat` (the scheduler-queue worker with beat embedded) loads only beat's tasks, in one process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from types import SimpleNamespace

import psutil
import pytest

from mediarunner.workers.app import ROLE_MODULES, create_app, modules_for
from tests.support import ROOT, Stack, wait_for

CLI = [sys.executable, "-c", "from mediarunner.cli import main; main()"]


def test_roles_choose_the_task_modules() -> None:
    assert modules_for(None) == ROLE_MODULES["jobs"]
    assert modules_for("scheduler") == ["mediarunner.workers.beat"]
    with pytest.raises(ValueError, match="MEDIARUNNER_WORKER_ROLE"):
        modules_for("nope")
    assert list(create_app(include=modules_for("scheduler")).conf.include) == ["mediarunner.workers.beat"]


def test_beat_process_registers_no_job_task(stack: Stack) -> None:
    log = stack.tmp / "beat.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([*CLI, "beat", "--schedule", str(stack.tmp / "beat-schedule")], cwd=ROOT,
                                env={**os.environ, **stack.env}, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
    try:
        wait_for(lambda: b"ready." in log.read_bytes() or proc.poll() is not None, 60, what="beat to be ready")
        text = log.read_text()
        assert proc.poll() is None, text[-3000:]
        tasks = text.split("[tasks]", 1)[1].split("\n\n", 1)[0]
        assert "mediarunner.scheduler.tick" in tasks, text[-3000:]
        assert "mediarunner.transcode" not in tasks and "mediarunner.transcribe" not in tasks, tasks
        # One process: beat is a thread of it and sends the ticks that its solo pool runs.
        wait_for(lambda: b"mediarunner.scheduler.tick[" in log.read_bytes() and b"succeeded in" in log.read_bytes(),
                 60, what="beat's first tick to run")
        assert psutil.Process(proc.pid).children(recursive=True) == [], log.read_text()[-3000:]
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)


def test_an_operator_pool_size_leaves_the_one_process_scheduler_as_it_is() -> None:
    """`mediarunner beat` runs the solo pool, which cannot grow: a concurrency set on its runner is
    logged and ignored instead of failing the worker's start (prefork workers resize as before)."""
    from celery.concurrency.solo import TaskPool

    from mediarunner.workers.fleet import FleetAgent

    agent = FleetAgent("scheduler@host", SimpleNamespace(), None)  # type: ignore[arg-type]
    agent.consumer = SimpleNamespace(pool=TaskPool(), controller=SimpleNamespace(autoscaler=None))
    agent._resize_now(3)
    assert agent.pool_size() == 1
