"""Losing a worker is not the job's fault: real worker processes are killed (SIGKILL) or stopped
(SIGTERM) while they run a job. Aborts spend no failure (MAX_ATTEMPTS), a poison job that keeps
killing its workers fails after MAX_ABORTS, and a warm shutdown gives its jobs back at once."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from sqlalchemy import select

from mediarunner.models.db import transaction
from mediarunner.models.enums import JobState
from mediarunner.models.tables import EventRow
from tests.support import RedisServer, Stack, Worker, empty_broker, make_clip, make_stack, wait_for

pytestmark = pytest.mark.slow
FAST = {
    "MEDIARUNNER_BEAT_INTERVAL_SECONDS": "0.5",
    "MEDIARUNNER_FAILOVER_AFTER_SECONDS": "3",
    "MEDIARUNNER_HEARTBEAT_SECONDS": "0.5",
    "MEDIARUNNER_MAX_ATTEMPTS": "2",
}


@pytest.fixture
def st(tmp_path: Path, pg_url: str, redis_server: RedisServer) -> Iterator[Stack]:
    empty_broker(redis_server.url)
    with make_stack(tmp_path, pg_url, redis_server.url, **FAST) as s:
        yield s


@pytest.fixture
def st_any(tmp_path: Path, pg_url: str, broker_url: str) -> Iterator[Stack]:
    """:func:`st` on each broker (Redis, RabbitMQ)."""
    with make_stack(tmp_path, pg_url, broker_url, **FAST) as s:
        yield s


def kinds(job_id: str) -> list[str]:
    return list(transaction(lambda s: s.scalars(select(EventRow.kind).where(EventRow.job_id == job_id)
                                                .order_by(EventRow.id)).all()))


def run_then_kill(st: Stack, client: object, job_id: str, name: str) -> Worker:
    """Start worker ``name``, wait until it runs the job, SIGKILL it (its pool and children too)."""
    w = st.worker(name)
    wait_for(lambda: (j := client.get(job_id)).state is JobState.RUNNING and j.worker == w.hostname,  # type: ignore[attr-defined]
             60, what=f"{name} to run the job")
    w.kill()
    return w


def test_four_killed_workers_spend_no_attempt_and_the_fifth_completes(st_any: Stack) -> None:
    st = st_any
    st.worker("sched", queues="scheduler", beat=True)
    client = st.client()
    job = client.submit_noop(duration=3.0)
    assert job.max_attempts == 2
    for i in range(4):
        run_then_kill(st, client, job.id, f"w{i}")
    last = st.worker("w4")
    done = client.wait(job.id, timeout=90)
    assert done.state is JobState.COMPLETED, done.error
    assert (done.worker, done.attempt, done.failures, done.aborts) == (last.hostname, 5, 0, 4)
    assert kinds(job.id).count("job_failed_over") == 4


def test_a_job_that_keeps_killing_its_workers_fails_as_poison_after_max_aborts(st: Stack) -> None:
    st.stop_all()
    with make_stack(st.tmp / "poison", st.env["MEDIARUNNER_DATABASE_URL"], st.env["MEDIARUNNER_BROKER_URL"],
                    **FAST, MEDIARUNNER_MAX_ABORTS="2") as ps:
        ps.worker("sched", queues="scheduler", beat=True)
        client = ps.client()
        job = client.submit_noop(duration=60.0)
        run_then_kill(ps, client, job.id, "p0")
        run_then_kill(ps, client, job.id, "p1")
        failed = client.wait(job.id, timeout=60)
        assert failed.state is JobState.FAILED
        assert (failed.failures, failed.aborts, failed.error_kind) == (0, 1, "permanent")
        assert "poison job" in (failed.error or "") and "MAX_ABORTS=2" in (failed.error or "")


def ffmpegs_of(w: Worker) -> list[psutil.Process]:
    try:
        return [p for p in psutil.Process(w.proc.pid).children(recursive=True)  # type: ignore[union-attr]
                if p.name() == "ffmpeg"]
    except psutil.NoSuchProcess:
        return []


@pytest.mark.parametrize("to", ["main", "group"])
def test_sigterm_releases_the_running_job_at_once_without_spending_anything(st: Stack, tmp_path: Path,
                                                                            to: str) -> None:
    """``main``: only the main process gets SIGTERM (``docker stop``, ``kill PID``); ``group``: its
    pool processes too (Ctrl-C in a terminal, systemd). Either way the job is back to pending in
    seconds (failover would take 60 s here) and its ffmpeg is stopped at once."""
    st.stop_all()
    env = {**FAST, "MEDIARUNNER_FAILOVER_AFTER_SECONDS": "60", "MEDIARUNNER_X264_PRESET": "veryslow"}
    with make_stack(tmp_path / "term", st.env["MEDIARUNNER_DATABASE_URL"], st.env["MEDIARUNNER_BROKER_URL"],
                    **env) as ts:
        src = make_clip(tmp_path / "in.mp4", seconds=8.0, size="1280x720")
        ts.worker("sched", queues="scheduler", beat=True)
        a = ts.worker("a")
        client = ts.client()
        job = client.submit_transcode(str(src), str(ts.tmp / "outputs" / "t"), renditions=["720p"])
        wait_for(lambda: ffmpegs_of(a) and client.get(job.id).worker == a.hostname, 60, what="a to run ffmpeg")
        encoders = ffmpegs_of(a)
        assert a.proc is not None
        t0 = time.monotonic()
        if to == "main":
            os.kill(a.proc.pid, signal.SIGTERM)
        else:
            os.killpg(a.proc.pid, signal.SIGTERM)
        released = wait_for(lambda: (j := client.get(job.id)).attempt == 2 and j, 10, what="the release")
        assert time.monotonic() - t0 < 10
        assert released.state is JobState.PENDING and (released.failures, released.aborts) == (0, 0)
        assert "shutdown" in (released.error or "") and released.created_at == job.created_at
        wait_for(lambda: not any(p.is_running() and p.status() != psutil.STATUS_ZOMBIE for p in encoders), 10,
                 what="a's ffmpeg to stop")
        a.proc.wait(20)
        assert "job_released" in kinds(job.id) and "job_failed_over" not in kinds(job.id)
        b = ts.worker("b", extra_env={"MEDIARUNNER_X264_PRESET": "ultrafast"})
        done = client.wait(job.id, timeout=180)
        assert done.state is JobState.COMPLETED, done.error
        assert (done.worker, done.attempt, done.failures, done.aborts) == (b.hostname, 2, 0, 0)
