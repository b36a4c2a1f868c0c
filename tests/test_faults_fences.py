"""Fault tests for fences (issue 13, items 10 and 11): a database outage mid-encode costs no
work, and a worker never fails over its own jobs nor a live namesake's. Real workers, a private
PostgreSQL that is stopped and started, Redis."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from mediarunner.models.db import transaction
from mediarunner.models.enums import JobState
from mediarunner.models.tables import EventRow
from tests.support import PgServer, RedisServer, Stack, Worker, make_clip, make_stack, wait_for
from tests.test_faults import FAST_SCHEDULER, claims, private_pg  # noqa: F401 (a fixture)

DONE = JobState.COMPLETED


@pytest.fixture
def pg_stack(tmp_path: Path, private_pg: PgServer, redis_server: RedisServer) -> Iterator[Stack]:  # noqa: F811
    import redis

    redis.Redis.from_url(redis_server.url).flushdb()
    with make_stack(tmp_path, private_pg.url, redis_server.url, **FAST_SCHEDULER,
                    MEDIARUNNER_RUNNER_HEARTBEAT_SECONDS="1") as st:
        yield st


def kinds(st: Stack, job_id: str) -> list[str]:
    return list(transaction(lambda s: s.scalars(select(EventRow.kind).where(EventRow.job_id == job_id)).all(),
                            url=st.env["MEDIARUNNER_DATABASE_URL"]))


def namesake(st: Stack, name: str, log: str, **env: str) -> Worker:
    w = Worker(name=name, queues="cpu", concurrency=1, env={**st.env, **env}, log=st.tmp / log)
    st.workers.append(w)
    return w


@pytest.mark.slow
def test_database_outage_mid_encode_costs_no_work(pg_stack: Stack, private_pg: PgServer,  # noqa: F811
                                                 tmp_path: Path) -> None:
    st = pg_stack
    src = make_clip(tmp_path / "in.mp4", seconds=20.0, size="1280x720")
    st.worker("a", extra_env={"MEDIARUNNER_X264_PRESET": "faster"})
    st.worker("sched", queues="scheduler", beat=True)
    client = st.client()
    out = st.tmp / "outputs" / "outage"
    job = client.submit_transcode(str(src), str(out), renditions=["720p"])
    wait_for(lambda: (j := client.get(job.id)).state is JobState.RUNNING and j.progress > 5, 90,
             what="the encode to be running")
    private_pg.stop()  # twice the failover threshold (3 s): no heartbeat can be written meanwhile
    down_until = time.monotonic() + 6
    wait_for(lambda: time.monotonic() >= down_until, 15, what="6 s of database outage")
    private_pg.start()
    done = client.wait(job.id, timeout=180)
    assert (done.state, done.attempt, done.failures) == (DONE, 1, 0), done.error
    assert claims(st.env["MEDIARUNNER_DATABASE_URL"])[job.id] == 1, "encoded twice"
    assert "job_failed_over" not in kinds(st, job.id)
    assert (out / "720p.mp4").is_file() and (out / "master.m3u8").is_file()


def test_a_namesake_starting_does_not_fail_over_a_live_workers_job(pg_stack: Stack) -> None:
    st = pg_stack
    st.worker("a")
    client = st.client()
    job = client.submit_noop(duration=4.0)
    running = wait_for(lambda: (j := client.get(job.id)).state is JobState.RUNNING and j, 30, what="the job running")
    twin = namesake(st, "a", "worker-a-twin.log")
    twin.start()
    assert twin.hostname == running.worker
    done = client.wait(job.id, timeout=60)
    assert (done.state, done.attempt) == (DONE, 1), done.error
    assert "job_failed_over" not in kinds(st, job.id)


def test_a_worker_registers_before_it_consumes(pg_stack: Stack, private_pg: PgServer) -> None:  # noqa: F811
    st = pg_stack
    private_pg.stop()
    quitter = namesake(st, "q", "worker-q.log", MEDIARUNNER_WORKER_REGISTER_TIMEOUT_SECONDS="2")
    quitter.start(wait=False)
    assert quitter.proc is not None
    wait_for(lambda: quitter.proc.poll() is not None, 60, what="the worker to give up")  # type: ignore[union-attr]
    assert quitter.proc.returncode == 75
    text = quitter.log.read_text()
    assert "could not register" in text and "MEDIARUNNER_WORKER_REGISTER_TIMEOUT_SECONDS" in text
    assert "ready." not in text

    patient = namesake(st, "p", "worker-p.log")
    patient.start(wait=False)
    wait_for(lambda: patient.log.read_text().count("database unavailable") >= 6, 60,
             what="registration to be retried for more than 5 s")
    assert "ready." not in patient.log.read_text(), "consuming before registering"
    private_pg.start()
    wait_for(lambda: "ready." in patient.log.read_text(), 60, what="the worker to register and start")
    client = st.client()
    job = client.submit_noop(duration=3.0)
    done = client.wait(job.id, timeout=60)
    assert (done.state, done.attempt) == (DONE, 1), done.error
    assert "job_failed_over" not in kinds(st, job.id)
