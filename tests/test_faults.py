"""Fault tests: real worker processes are killed, Redis and PostgreSQL are stopped, and
nothing is lost or done twice. Bounded in time; every wait is on a condition."""

from __future__ import annotations

import os
import random
import shutil
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from mediarunner.models.db import transaction
from mediarunner.models.enums import JobState
from mediarunner.models.tables import EventRow, JobRow
from tests.media_checks import duration
from tests.support import PgServer, RedisServer, Stack, make_clip, make_stack, wait_for

pytestmark = pytest.mark.slow
DONE = JobState.COMPLETED

FAST_SCHEDULER = {
    "MEDIARUNNER_BEAT_INTERVAL_SECONDS": "0.5",
    "MEDIARUNNER_FAILOVER_AFTER_SECONDS": "3",
    "MEDIARUNNER_HEARTBEAT_SECONDS": "0.5",
    "MEDIARUNNER_RETRY_BASE_SECONDS": "0.5",
}


def unfinished(url: str, ids: list[str]) -> list[dict[str, object]]:
    """What a stuck job's row and events say (for the failure message of an outage test)."""
    def read(s: Session) -> list[dict[str, object]]:
        rows = s.execute(select(JobRow.id, JobRow.state, JobRow.attempt, JobRow.dispatched_at,
                                JobRow.redispatches, JobRow.worker).where(
            JobRow.id.in_(ids), JobRow.state != DONE)).all()
        return [dict(r._mapping, events=[(e.kind, f"{e.at:%H:%M:%S.%f}") for e in s.scalars(
            select(EventRow).where(EventRow.job_id == r.id).order_by(EventRow.id))]) for r in rows]

    return transaction(read, url=url)


def claims(url: str) -> Counter[str]:
    rows = transaction(lambda s: s.scalars(select(EventRow.job_id).where(EventRow.kind == "job_assigned")).all(),
                       url=url)
    return Counter(r for r in rows if r)


@pytest.fixture
def fast(tmp_path: Path, pg_url: str, redis_server: RedisServer) -> Iterator[Stack]:
    import redis

    redis.Redis.from_url(redis_server.url).flushdb()
    with make_stack(tmp_path, pg_url, redis_server.url, **FAST_SCHEDULER) as s:
        yield s


@pytest.fixture
def fast_any(tmp_path: Path, pg_url: str, broker_url: str) -> Iterator[Stack]:
    """:func:`fast` on each broker (Redis, RabbitMQ)."""
    with make_stack(tmp_path, pg_url, broker_url, **FAST_SCHEDULER) as s:
        yield s


def test_transient_error_is_retried_with_backoff_by_beat(fast_any: Stack) -> None:
    fast = fast_any
    fast.worker("a", wait=False)
    fast.worker("sched", queues="scheduler", beat=True, wait=False)
    fast.ready()
    client = fast.client()
    job = client.wait(client.submit_noop(fail_attempts=2).id, timeout=60)
    assert (job.state, job.attempt, job.failures) == (DONE, 3, 2)
    events = transaction(lambda s: s.scalars(select(EventRow.kind).where(EventRow.job_id == job.id)
                                             .order_by(EventRow.id)).all())
    assert events.count("job_retried") == 2 and events[-1] == "job_completed"


def test_kill_9_worker_mid_transcode_fails_over(fast_any: Stack, tmp_path: Path) -> None:
    fast = fast_any
    # long enough to be killed mid-encode (at 5 %), short enough that the second attempt is quick
    src = make_clip(tmp_path / "in.mp4", seconds=10.0, size="1280x720")
    env = {"MEDIARUNNER_X264_PRESET": "faster"}
    workers = {w.hostname: w for w in (fast.worker("a", extra_env=env, wait=False),
                                       fast.worker("b", extra_env=env, wait=False))}
    fast.worker("sched", queues="scheduler", beat=True, wait=False)
    fast.ready()
    client = fast.client()
    out = fast.tmp / "outputs" / "killed"
    job = client.submit_transcode(str(src), str(out), renditions=["720p"])
    running = wait_for(lambda: (j := client.get(job.id)).progress > 5 and j.worker and j, 90,
                       what="the transcode to be running")
    victim = workers[running.worker]
    victim.kill()
    done = client.wait(job.id, timeout=180)
    assert done.state is DONE, done.error
    assert done.attempt == 2 and done.worker != victim.hostname
    assert (done.failures, done.aborts) == (0, 1)  # losing a worker is not the job's failure
    kinds = transaction(lambda s: s.scalars(select(EventRow.kind).where(EventRow.job_id == job.id)).all())
    assert "job_failed_over" in kinds
    files = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    assert [f for f in files if not f.startswith("hls/720p/seg_")] == ["720p.mp4", "hls/720p/index.m3u8",
                                                                      "master.m3u8"]
    assert not [f for f in files if ".tmp" in f or f.startswith(".")]


def test_redis_outage_during_submissions_loses_nothing(tmp_path: Path, pg_url: str) -> None:
    broker = RedisServer(tmp_path / "redis", persist=True)
    broker.start()
    try:
        with make_stack(tmp_path, pg_url, broker.url, **FAST_SCHEDULER) as st:
            st.worker("a", concurrency=2)
            st.worker("sched", queues="scheduler", beat=True)
            client = st.client()
            out = st.tmp / "outputs"
            ids = [client.submit_noop(output=str(out / f"n{i}.txt")).id for i in range(10)]
            broker.stop()
            outage_end = time.monotonic() + 10
            for i in range(10, 50):
                t0 = time.monotonic()
                job = client.submit_noop(output=str(out / f"n{i}.txt"))
                assert time.monotonic() - t0 < 10, "submission must not hang while the broker is down"
                assert job.state is JobState.PENDING
                ids.append(job.id)
            wait_for(lambda: time.monotonic() >= outage_end, 15, what="the 10 s outage to pass")
            broker.start()
            url = st.env["MEDIARUNNER_DATABASE_URL"]
            try:
                wait_for(lambda: all(client.get(i).done for i in ids), 120, what="all 50 jobs to finish")
            except AssertionError as exc:
                raise AssertionError(f"{exc}; unfinished: {unfinished(url, ids)}") from None
            jobs = [client.get(i) for i in ids]
            assert [j.state for j in jobs] == [DONE] * 50
            c = claims(url)
            assert all(c[i] == 1 for i in ids), "a job ran twice"
            assert len(list(out.glob("n*.txt"))) == 50
    finally:
        broker.stop()


@pytest.fixture
def private_pg() -> Iterator[PgServer]:
    if not shutil.which("runuser") and os.geteuid() == 0:
        pytest.skip("runuser needed to run a private PostgreSQL as root")
    d = Path(tempfile.mkdtemp(prefix="mr-pg-"))
    os.chmod(d, 0o755)
    pg = PgServer(d)
    try:
        pg.init()
    except Exception as exc:  # no PostgreSQL server binaries on this machine
        if os.environ.get("MEDIARUNNER_REQUIRE_PG"):
            raise
        pytest.skip(f"cannot start a private PostgreSQL: {exc}")
    yield pg
    pg.destroy()


def test_postgres_restart_while_workers_run(tmp_path: Path, private_pg: PgServer,
                                            redis_server: RedisServer) -> None:
    import redis

    redis.Redis.from_url(redis_server.url).flushdb()
    with make_stack(tmp_path, private_pg.url, redis_server.url, **FAST_SCHEDULER) as st:
        st.worker("a", concurrency=2, wait=False)
        st.worker("sched", queues="scheduler", beat=True, wait=False)
        st.ready()
        client = st.client()
        ids = [client.submit_noop(duration=1.0).id for _ in range(12)]
        wait_for(lambda: any(client.get(i).state is JobState.RUNNING for i in ids), 30, what="jobs running")
        private_pg.stop()
        down_until = time.monotonic() + 3
        wait_for(lambda: time.monotonic() >= down_until, 10, what="3 s of database outage")
        private_pg.start()
        jobs = [client.wait(i, timeout=120) for i in ids]
        assert [j.state for j in jobs] == [DONE] * 12, [(j.state, j.error) for j in jobs]


@pytest.mark.soak
def test_soak_300_jobs_with_random_worker_kills(tmp_path: Path, pg_url: str, redis_server: RedisServer) -> None:
    import redis

    redis.Redis.from_url(redis_server.url).flushdb()
    # Chaos kills can hit the same job many times in a row (the restarted worker claims the best
    # job again); the attempt and abort budgets are policy, not what this test is about: raised here.
    env = {**FAST_SCHEDULER, "MEDIARUNNER_FAILOVER_AFTER_SECONDS": "2", "MEDIARUNNER_REDISPATCH_AFTER_SECONDS": "8",
           "MEDIARUNNER_MAX_ATTEMPTS": "10", "MEDIARUNNER_MAX_ABORTS": "1000"}
    rng = random.Random(1234)
    with make_stack(tmp_path, pg_url, redis_server.url, **env) as st:
        workers = [st.worker("a", concurrency=2), st.worker("b", concurrency=2)]
        st.worker("sched", queues="scheduler", beat=True)
        client = st.client()
        out = st.tmp / "outputs"
        ids = [client.submit_noop(duration=rng.choice([0.0, 0.05, 0.2]), output=str(out / f"s{i}.txt")).id
               for i in range(300)]
        kills = 0
        deadline = time.monotonic() + 300

        def all_done() -> bool:
            return all(j.state.is_terminal for j in client.list(limit=400))

        while not all_done():
            assert time.monotonic() < deadline, "soak did not finish in 300 s"
            victim = rng.choice(workers)
            victim.kill()
            kills += 1
            # Not waiting for it to be ready: a worker is also killed in the middle of its start-up.
            victim.start(wait=False)
            # Polled at most every 0.5 s (the cadence this soak was written for): a faster poll kills
            # a freshly restarted worker before its first jobs can finish, over and over.
            wait_for(lambda: all_done() or any(j.state is JobState.RUNNING for j in client.list(limit=400)), 30,
                     max_interval=0.5, what="progress after a restart")
        jobs = [client.get(i) for i in ids]
        assert Counter(j.state for j in jobs) == {DONE: 300}, (
            Counter(j.state for j in jobs), [(j.attempt, j.failures, j.error) for j in jobs if j.state is not DONE][:5])
        files = sorted(out.glob("s*.txt"))
        assert len(files) == 300
        for j in jobs:  # exactly one output each, written by the attempt that completed
            idx = ids.index(j.id)
            assert (out / f"s{idx}.txt").read_text().split() == [j.id, str(j.attempt)]
        assert not [p for p in out.iterdir() if p.name.startswith(".")]
        print(f"soak: 300 jobs, {kills} worker kills, {sum(j.attempt > 1 for j in jobs)} jobs needed >1 attempt")


def test_kill_9_worker_mid_part_of_a_split_rendition(fast: Stack, tmp_path: Path) -> None:
    # two parts of 6 s (3 segments each, over the 5 s minimum): each long enough to be killed mid-encode
    src = make_clip(tmp_path / "in.mp4", seconds=12.0, size="1280x720")
    env = {"MEDIARUNNER_X264_PRESET": "faster", "MEDIARUNNER_TRANSCODE_PART_MIN_SECONDS": "5"}
    workers = {w.hostname: w for w in (fast.worker("a", extra_env=env, wait=False),
                                       fast.worker("b", extra_env=env, wait=False))}
    fast.worker("sched", queues="scheduler", beat=True, wait=False)
    fast.ready()
    client = fast.client()
    out = fast.tmp / "outputs" / "split-killed"
    job = client.submit_transcode(str(src), str(out), renditions=["720p"], parts=2)

    def a_running_part() -> object:
        parts = [j for j in client.get(job.id).children if j.state is JobState.RUNNING and j.progress > 5]
        return parts[0] if parts else None

    victim_part = wait_for(a_running_part, 90, what="a part to be encoding")
    victim = workers[victim_part.worker]  # type: ignore[attr-defined]
    victim.kill()
    done = client.wait(job.id, timeout=180)
    assert all(j.state is DONE for j in done.family), [(j.state, j.error) for j in done.family]
    again = next(j for j in done.children if j.id == victim_part.id)  # type: ignore[attr-defined]
    assert again.attempt == 2 and again.worker != victim.hostname
    assert sum(1 for j in done.children if j.result and j.result.get("joined") == 2) == 1
    files = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    assert [f for f in files if not f.startswith("hls/720p/seg_")] == ["720p.mp4", "hls/720p/index.m3u8",
                                                                      "master.m3u8"]
    assert abs(duration(out / "720p.mp4") - 12.0) <= 0.1
