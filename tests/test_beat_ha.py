"""HA scheduler, end to end: three real ``mediarunner beat`` processes on one PostgreSQL and Redis,
one of them with its clock 4 s ahead (injected with a ``sitecustomize`` that shifts ``utcnow``).
Only the lease holder acts (no job failed over or published twice over hundreds of jobs, the
standbys' ticks all skipped); SIGKILL the holder and another takes over within the lease time;
then again, so the skewed beat is either the standby that must not steal a live lease or the holder
whose lease a normal clock must respect."""

from __future__ import annotations

import ast
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from datetime import timedelta

import psutil
import redis
from sqlalchemy import func, select, text

from mediarunner.models.base import utcnow
from mediarunner.models.db import transaction
from mediarunner.models.enums import JobState, JobType
from mediarunner.models.tables import EventRow, JobRow, LockRow
from mediarunner.models.transitions import NewJob
from mediarunner.scheduler import lease
from tests import rows
from tests.support import ROOT, Stack, wait_for

CLI = [sys.executable, "-c", "from mediarunner.cli import main; main()"]
LEASE_TTL = 10.0  # every scheduler task holds the lease this long: max(10, BEAT_INTERVAL_SECONDS * 10)
SKEW = """
from datetime import timedelta
import mediarunner.models.base as base
_real = base.utcnow
base.utcnow = lambda: _real() + timedelta(seconds=float({skew}))
"""


class Beat:
    def __init__(self, stack: Stack, name: str, skew: float = 0.0) -> None:
        self.log = stack.tmp / f"{name}.log"
        env = {**os.environ, **stack.env, "MEDIARUNNER_FAILOVER_AFTER_SECONDS": "2",
               "MEDIARUNNER_REDISPATCH_AFTER_SECONDS": "3600"}
        if skew:
            hook = stack.tmp / f"skew-{name}"
            hook.mkdir()
            (hook / "sitecustomize.py").write_text(SKEW.format(skew=skew))
            env["PYTHONPATH"] = os.pathsep.join([str(hook), str(ROOT), env.get("PYTHONPATH", "")])
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen([*CLI, "beat", "--schedule", str(stack.tmp / f"{name}.schedule")],
                                         cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
                                         start_new_session=True)

    def ready(self) -> bool:
        assert self.proc.poll() is None, self.log.read_text()[-3000:]
        return b"ready." in self.log.read_bytes()

    def pids(self) -> set[int]:
        proc = psutil.Process(self.proc.pid)
        return {proc.pid, *(c.pid for c in proc.children(recursive=True))}

    def ticks(self) -> Counter[str]:
        """Its tick results: 'worked' or 'skipped' (celery logs each task's return value)."""
        out: Counter[str] = Counter()
        for line in self.log.read_text(errors="replace").splitlines():
            if "mediarunner.scheduler.tick[" in line and " succeeded in " in line:
                out["skipped" if "not the lease holder" in line else "worked"] += 1
        return out

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)


def holder_pid(url: str) -> int | None:
    row = transaction(lambda s: s.get(LockRow, "scheduler"), url=url)
    return int(row.holder.rsplit(":", 1)[1]) if row is not None else None


def stale_running_jobs(url: str, n: int) -> list[str]:
    """``n`` jobs running on a worker that died an hour ago (attempt 1 of 3)."""
    past = utcnow() - timedelta(hours=1)
    jobs = [NewJob(type=JobType.TRANSCODE, queue="cpu", payload={"input": f"/in/{i}.mp4"}) for i in range(n)]

    def tx(s):
        ids = rows.create_jobs(s, jobs, past)
        for job_id in ids:
            assert rows.claim(s, job_id, 1, "ghost@gone", None, past)
        return ids
    return transaction(tx, url=url)


def queued_messages(broker: str) -> Counter[str]:
    """Job id -> messages waiting in the cpu queue (kombu's Redis priority lists ``cpu``, ``cpu:N``)."""
    r = redis.Redis.from_url(broker)
    out: Counter[str] = Counter()
    for key in [b"cpu", *(f"cpu:{p}".encode() for p in range(10))]:
        for raw in r.lrange(key, 0, -1):
            job_id, _attempt = ast.literal_eval(json.loads(raw)["headers"]["argsrepr"])
            out[job_id] += 1
    return out


def assert_failed_over_once(url: str, broker: str, ids: list[str]) -> None:
    def done() -> bool:
        return transaction(lambda s: s.scalar(select(func.count()).where(
            JobRow.id.in_(ids), JobRow.state == JobState.PENDING, JobRow.attempt == 2,
            JobRow.dispatched_at.is_not(None))), url=url) == len(ids)
    wait_for(done, 40, interval=0.25, what=f"{len(ids)} jobs failed over and published")
    attempts = transaction(lambda s: Counter(s.scalars(select(JobRow.attempt).where(JobRow.id.in_(ids))).all()),
                           url=url)
    assert attempts == {2: len(ids)}  # failed over exactly once each
    events = transaction(lambda s: Counter(s.scalars(select(EventRow.job_id).where(
        EventRow.job_id.in_(ids), EventRow.kind == "job_failed_over")).all()), url=url)
    assert set(events.values()) == {1} and len(events) == len(ids), events.most_common(3)
    messages = queued_messages(broker)
    assert {job_id: messages[job_id] for job_id in ids} == dict.fromkeys(ids, 1)  # published exactly once each


def test_beats_only_the_holder_acts_and_another_takes_over_even_with_a_skewed_clock(stack: Stack) -> None:
    """Three beats (one with its clock 4 s ahead) start together; the holder is killed twice."""
    url, broker = stack.env["MEDIARUNNER_DATABASE_URL"], stack.env["MEDIARUNNER_BROKER_URL"]
    beats = [Beat(stack, "beat-a"), Beat(stack, "beat-b"), Beat(stack, "beat-fast", skew=4.0)]
    try:
        wait_for(lambda: all(b.ready() for b in beats), 90, what="the beats ready")
        wait_for(lambda: holder_pid(url) is not None, 20, what="a lease holder")
        jobs = 200
        while len(beats) > 1:
            holder = next(b for b in beats if holder_pid(url) in b.pids())
            standbys = [b for b in beats if b is not holder]
            assert_failed_over_once(url, broker, stale_running_jobs(url, jobs))
            wait_for(lambda sb=standbys: all(b.ticks()["skipped"] >= 3 for b in sb), 20, what="standby ticks skipped")
            assert holder_pid(url) in holder.pids(), "the lease moved while its holder was alive"
            assert holder.ticks()["worked"] >= 1
            assert [b.ticks()["worked"] for b in standbys] == [0] * len(standbys), "a standby acted"
            holder.kill()
            beats.remove(holder)
            killed = time.monotonic()
            wait_for(lambda: any(holder_pid(url) in b.pids() for b in beats), LEASE_TTL + 5, interval=0.1,
                     what="the takeover")
            assert time.monotonic() - killed <= LEASE_TTL + 3
            jobs = 30
        assert_failed_over_once(url, broker, stale_running_jobs(url, jobs))
    finally:
        for b in beats:
            b.kill()


def test_the_lease_clock_is_the_databases(db_url: str) -> None:
    def tokyo(s):
        if s.bind.dialect.name == "postgresql":
            s.execute(text("SET TIME ZONE 'Asia/Tokyo'"))
        return lease.database_now(s)
    now = transaction(tokyo, url=db_url)
    assert now.utcoffset() == timedelta(0) and abs((now - utcnow()).total_seconds()) < 2


def test_every_scheduler_task_holds_the_lease_for_the_same_short_time(db_url: str, monkeypatch) -> None:
    """A task that took a long lease (the hourly purge, ranks) would make a takeover wait that long."""
    from mediarunner.config import get_settings
    from mediarunner.workers import beat

    monkeypatch.setenv("MEDIARUNNER_DATABASE_URL", db_url)
    get_settings.cache_clear()
    try:
        for task in (beat.ranks, beat.purge):
            task()
            row = transaction(lambda s: s.get(LockRow, "scheduler"), url=db_url)
            left = (row.expires_at - transaction(lease.database_now, url=db_url)).total_seconds()
            assert row.holder == beat.HOLDER and 0 < left <= LEASE_TTL + 1, (task.name, left)
    finally:
        get_settings.cache_clear()
