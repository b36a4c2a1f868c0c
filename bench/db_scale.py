"""(13) Scale beyond this machine, on paper: what one PostgreSQL primary spends per worker and per job.

``python -m bench.db_scale [--smoke] [--json out.json] [--workers 100,1000,10000] [--seconds 10] [--jobs 300]``

* **Heartbeat writes.** N simulated workers against PostgreSQL, each at the production intervals
  (``runner_heartbeat_seconds``: the worker's own heartbeat, ``runners.heartbeat``; and
  ``heartbeat_seconds``: the heartbeat of the one job it runs, ``transitions.touch``, sent as the
  worker sends it, one statement without BEGIN/COMMIT). Offered load = N x (1/5 + 1/2) writes/s
  with the defaults, on a schedule with random phases (open loop: a write is due at its time,
  whether or not the previous ones finished). Issued by 2 processes x 10 threads, each thread
  with its own connection (plain SQLAlchemy sessions, as the workers use). Reported: writes/s
  sustained, latency p50/p99 (statement start → commit), and lag p99 (due → start: the
  generator falling behind). The generator and PostgreSQL share this machine's cores, so a
  shortfall is the machine's limit, not only PostgreSQL's.
* **Per-job database cost.** No-op jobs submitted with ``Client.submit_noop`` and run by
  ``runtime.execute_next`` in this process (the throughput path, no broker in between): every
  statement sent is counted and timed (SQLAlchemy cursor events), per job, split into submit
  and claim → run → complete.
"""

from __future__ import annotations

import argparse
import heapq
import multiprocessing as mp
import random
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

from sqlalchemy import event, insert
from sqlalchemy.engine import Engine

from bench.common import (
    BenchResult,
    bench_tmp,
    cli,
    database,
    make_stack,
    percentile,
    private_redis,
    production_overrides,
)
from mediarunner.config import Settings
from mediarunner.models import runners, transitions
from mediarunner.models.base import utcnow
from mediarunner.models.db import session_factory
from mediarunner.models.enums import JobState, RunnerStatus, Stage
from mediarunner.models.tables import JobRow, RunnerRow

NAME = "db_scale"
TITLE = "Database scale: simulated workers' heartbeats and per-job statements (PostgreSQL)"
PROCESSES, THREADS = 2, 10  # 10: the engine pool of each process (5 + 5 overflow), one connection each


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--workers", help="comma-separated simulated worker counts (default 100,1000,10000)")
    parser.add_argument("--seconds", type=float, help="seconds of load per worker count (default 10, smoke 1)")
    parser.add_argument("--jobs", type=int, help="no-op jobs for the per-job cost (default 300, smoke 20)")


# --------------------------------------------------------------------------- heartbeats


def _seed(url: str, n: int) -> None:
    """``n`` registered runners, each running one job (as a fleet of busy single-slot workers)."""
    now = utcnow()
    session = session_factory(url)()
    try:
        session.execute(insert(RunnerRow), [
            {"hostname": f"sim{i}@host", "status": RunnerStatus.ENABLED, "queues": ["cpu"], "concurrency": 1,
             "version": "sim", "capabilities": {}, "diagnostics": {}, "registered_at": now,
             "last_heartbeat_at": now} for i in range(n)])
        session.execute(insert(JobRow), [
            {"id": f"00000000-0000-4000-8000-{i:012d}", "type": "noop", "state": JobState.RUNNING, "queue": "cpu",
             "root_id": f"00000000-0000-4000-8000-{i:012d}", "payload": {}, "private_payload": {}, "meta": {},
             "worker": f"sim{i}@host", "attempt": 1, "created_at": now, "updated_at": now, "started_at": now,
             "heartbeat_at": now} for i in range(n)])
        session.commit()
    finally:
        session.close()


def _schedule(workers: range, seconds: float, runner_every: float, job_every: float,
              rng: random.Random) -> list[tuple[float, str, int]]:
    """(due offset, kind, worker) of every write in ``seconds``, each worker at a random phase."""
    events: list[tuple[float, str, int]] = []
    for w in workers:
        for kind, every in (("runner", runner_every), ("job", job_every)):
            t = rng.uniform(0, every)
            while t < seconds:
                events.append((t, kind, w))
                t += every
    heapq.heapify(events)
    return [heapq.heappop(events) for _ in range(len(events))]


def _write(url: str, kind: str, w: int) -> None:
    now = utcnow()
    if kind == "job":  # DatabaseLease.touch: one statement, no BEGIN/COMMIT on PostgreSQL
        session = session_factory(url, single_statement=True)()
        try:
            ok = transitions.touch(session, f"00000000-0000-4000-8000-{w:012d}", 1, now, progress=50.0,
                                   stage=Stage.PROCESSING)
            session.commit()
        finally:
            session.close()
    else:  # the fleet agent's heartbeat (a transaction: read the runner, then update it)
        session = session_factory(url)()
        try:
            ok = runners.heartbeat(session, f"sim{w}@host", {"load": [0.5, 0.5, 0.5], "jobs": 1}, 1, now) is not None
            session.commit()
        finally:
            session.close()
    if not ok:
        raise RuntimeError(f"simulated {kind} heartbeat of worker {w} matched no row")


def _generator(url: str, workers: range, seconds: float, runner_every: float, job_every: float, seed: int,
               start_at: float, out: Any) -> None:
    """One load-generator process: its share of the workers, THREADS connections, open loop."""
    events = _schedule(workers, seconds, runner_every, job_every, random.Random(seed))
    lat: list[float] = []
    lag: list[float] = []
    lock = threading.Lock()

    def one(due: float, kind: str, w: int) -> None:
        t0 = time.perf_counter()
        _write(url, kind, w)
        t1 = time.perf_counter()
        with lock:
            lat.append(t1 - t0)
            lag.append(max(0.0, t0 - due))

    while time.time() < start_at:  # every process starts its schedule at the same instant
        time.sleep(0.001)
    origin = time.perf_counter()
    with ThreadPoolExecutor(THREADS) as pool:
        for offset, kind, w in events:
            due = origin + offset
            pause = due - time.perf_counter()
            if pause > 0:
                time.sleep(pause)
            pool.submit(one, due, kind, w)
    out.put({"lat": lat, "lag": lag, "elapsed": time.perf_counter() - origin, "offered": len(events)})


def heartbeat_load(url: str, n: int, seconds: float, settings: Settings) -> dict[str, Any]:
    _seed_fresh(url, n)
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    start_at = time.time() + 3.0
    share = [range(i, n, PROCESSES) for i in range(PROCESSES)]
    procs = [ctx.Process(target=_generator, args=(url, s, seconds, settings.runner_heartbeat_seconds,
                                                  settings.heartbeat_seconds, 42 + i, start_at, out))
             for i, s in enumerate(share)]
    for p in procs:
        p.start()
    parts = [out.get(timeout=seconds * 20 + 120) for _ in procs]
    for p in procs:
        p.join(30)
    lat = [x for p in parts for x in p["lat"]]
    lag = [x for p in parts for x in p["lag"]]
    elapsed = max(p["elapsed"] for p in parts)
    offered = n * (1 / settings.runner_heartbeat_seconds + 1 / settings.heartbeat_seconds)
    return {"workers": n, "offered_per_s": offered, "writes": len(lat), "elapsed_s": elapsed,
            "sustained_per_s": len(lat) / elapsed, "p50_ms": percentile(lat, 50) * 1000,
            "p99_ms": percentile(lat, 99) * 1000, "lag_p99_ms": percentile(lag, 99) * 1000}


def _seed_fresh(url: str, n: int) -> None:
    session = session_factory(url)()
    try:
        session.query(JobRow).filter(JobRow.type == "noop").delete()
        session.query(RunnerRow).filter(RunnerRow.version == "sim").delete()
        session.commit()
    finally:
        session.close()
    _seed(url, n)


# --------------------------------------------------------------------------- per-job cost


class StatementMeter:
    """Counts and times every statement this process sends (SQLAlchemy cursor events)."""

    def __init__(self) -> None:
        self.count = 0
        self.seconds = 0.0
        self._local = threading.local()

    def _before(self, conn: Any, cursor: Any, statement: str, params: Any, context: Any, many: bool) -> None:
        self._local.t0 = time.perf_counter()

    def _after(self, conn: Any, cursor: Any, statement: str, params: Any, context: Any, many: bool) -> None:
        self.count += 1
        self.seconds += time.perf_counter() - getattr(self._local, "t0", time.perf_counter())

    @contextmanager
    def listening(self) -> Iterator[StatementMeter]:
        event.listen(Engine, "before_cursor_execute", self._before)
        event.listen(Engine, "after_cursor_execute", self._after)
        try:
            yield self
        finally:
            event.remove(Engine, "before_cursor_execute", self._before)
            event.remove(Engine, "after_cursor_execute", self._after)

    def snapshot(self) -> tuple[int, float]:
        return self.count, self.seconds


def per_job_cost(tmp: Any, url: str, jobs: int) -> dict[str, Any]:
    from mediarunner.tasks.handlers import HANDLERS
    from mediarunner.tasks.runtime import Doorbell, RunStatus, execute_next

    with private_redis(tmp) as redis, make_stack(tmp, url, redis.url, **production_overrides(False)) as stack:
        settings = stack.settings()
        client = stack.client()
        for _ in range(5):  # warm: connections, statement caches
            j = client.submit_noop()
            execute_next(lambda job: HANDLERS[job.type], Doorbell(j.id, j.attempt, queue="cpu"), worker="meter@host",
                         task_id=None, settings=settings)
        meter = StatementMeter()
        submit = run = (0, 0.0)
        wall = {"submit": 0.0, "run": 0.0}
        with meter.listening():
            for _ in range(jobs):
                a, t0 = meter.snapshot(), time.perf_counter()
                j = client.submit_noop()
                b, t1 = meter.snapshot(), time.perf_counter()
                status, _job = execute_next(lambda job: HANDLERS[job.type], Doorbell(j.id, j.attempt, queue="cpu"),
                                            worker="meter@host", task_id=None, settings=settings)
                c, t2 = meter.snapshot(), time.perf_counter()
                if status != RunStatus.COMPLETED:
                    raise RuntimeError(f"no-op job {j.id}: {status}")
                submit = (submit[0] + b[0] - a[0], submit[1] + b[1] - a[1])
                run = (run[0] + c[0] - b[0], run[1] + c[1] - b[1])
                wall["submit"] += t1 - t0
                wall["run"] += t2 - t1
    return {"jobs": jobs, "submit_statements": submit[0] / jobs, "submit_db_ms": submit[1] / jobs * 1000,
            "run_statements": run[0] / jobs, "run_db_ms": run[1] / jobs * 1000,
            "submit_wall_ms": wall["submit"] / jobs * 1000, "run_wall_ms": wall["run"] / jobs * 1000}


# --------------------------------------------------------------------------- run


def run(smoke: bool = False, workers: str | None = None, seconds: float | None = None,
        jobs: int | None = None) -> BenchResult:
    counts = [int(x) for x in workers.split(",")] if workers else ([10, 50] if smoke else [100, 1000, 10_000])
    seconds = seconds or (1.0 if smoke else 10.0)
    jobs = jobs or (20 if smoke else 300)
    settings = Settings()
    res = BenchResult(NAME, TITLE, smoke, params={
        "workers": counts, "seconds": seconds, "jobs": jobs, "generator": f"{PROCESSES} processes x {THREADS} threads",
        "runner_heartbeat_seconds": settings.runner_heartbeat_seconds,
        "job_heartbeat_seconds": settings.heartbeat_seconds, "jobs_per_worker": 1})
    with bench_tmp(NAME) as tmp, database("postgresql", tmp) as url:
        loads = [heartbeat_load(url, n, seconds, settings) for n in counts]
        cost = per_job_cost(tmp, url, jobs)
    for h in loads:
        n = h["workers"]
        res.add(f"{n:,} workers: heartbeat writes/s sustained", h["sustained_per_s"], "/s",
                note=f"offered {h['offered_per_s']:,.0f}/s ({h['writes']:,} writes in {h['elapsed_s']:.1f} s)")
        res.add(f"{n:,} workers: heartbeat p50", h["p50_ms"], "ms", note=f"p99 {h['p99_ms']:.1f} ms")
        res.add(f"{n:,} workers: heartbeat p99", h["p99_ms"], "ms",
                note=f"lag p99 {h['lag_p99_ms']:.1f} ms (due → sent)")
    res.add("per job: statements", cost["submit_statements"] + cost["run_statements"], "",
            note=f"submit {cost['submit_statements']:.1f} + claim/run/complete {cost['run_statements']:.1f}")
    res.add("per job: database ms", cost["submit_db_ms"] + cost["run_db_ms"], "ms",
            note=f"submit {cost['submit_db_ms']:.2f} + run {cost['run_db_ms']:.2f} ms in statements; "
                 f"wall {cost['submit_wall_ms'] + cost['run_wall_ms']:.2f} ms")
    res.details = {"heartbeats": loads, "per_job": cost}
    return res


def main(argv: Sequence[str] | None = None) -> int:
    return cli(sys.modules[__name__], list(argv) if argv is not None else None)


if __name__ == "__main__":
    sys.exit(main())
