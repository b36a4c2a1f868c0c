"""(4) Control-plane throughput: no-op jobs through mediarunner's full lifecycle (job row insert,
publish, claim, heartbeat, completion, events) per second, vs raw Celery no-op tasks on the same
broker, in the same run, with the same worker configuration. Goal: >= 0.5x raw Celery, on SQLite
and on PostgreSQL.

``python -m bench.throughput [--smoke] [--json out.json] [--jobs 2000] [--concurrency 2] [--submitters 4]``

For N jobs: time from the first submit to the last completion (``finished_at`` in the job table;
for raw Celery, the latest finish time the tasks pushed to Redis). Jobs are submitted by a few
threads of one process (``Client.submit_noop`` / ``apply_async``), while one worker
(``celery worker -P prefork -c K``) drains them. Every worker (raw, one per database) is started
before the first measurement and idles while the others are measured; raw Celery is measured
before and after the mediarunner runs and the mean is the baseline.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

import redis
from sqlalchemy import func, select

from bench.common import (
    BenchResult,
    Unavailable,
    bench_tmp,
    cli,
    database,
    make_stack,
    pg_available,
    private_redis,
    production_overrides,
    start_workers,
    stop_workers,
    wait_for,
)
from bench.raw_app import RAW_QUEUE, TASK_NAME, create_raw_app
from mediarunner.client import Client
from mediarunner.config import Settings
from mediarunner.models.base import utcnow
from mediarunner.models.db import transaction
from mediarunner.models.enums import TERMINAL_STATES, JobState
from mediarunner.models.tables import JobRow
from mediarunner.workers.app import create_app

NAME = "throughput"
TITLE = "Control-plane throughput: no-op jobs vs raw Celery no-op tasks"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--jobs", type=int, help="jobs per measurement (default 2000, smoke 30)")
    parser.add_argument("--concurrency", type=int, default=2, help="worker -c (prefork), same for both")
    parser.add_argument("--submitters", type=int, default=4, help="submitting threads, same for both")
    parser.add_argument("--rounds", type=int, help="measurements of each side, interleaved (default 3, smoke 1)")
    parser.add_argument("--db", help="comma-separated: sqlite,postgresql (default: both if available; smoke: sqlite)")


def _submit_all(n: int, threads: int, submit: Callable[[], Any]) -> float:
    """Submit n items from ``threads`` threads; return how long submission took."""
    per = [n // threads + (1 if i < n % threads else 0) for i in range(threads)]

    def worker(k: int) -> None:
        for _ in range(k):
            submit()

    t0 = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        for f in [pool.submit(worker, k) for k in per if k]:
            f.result()
    return time.perf_counter() - t0


def measure_raw(redis_url: str, n: int, threads: int, timeout: float) -> dict[str, float]:
    app = create_raw_app(Settings(broker_url=redis_url))
    r = redis.Redis.from_url(redis_url)
    key = f"bench:raw:{uuid.uuid4().hex}"
    sig = app.signature(TASK_NAME, args=(key,), queue=RAW_QUEUE, priority=4, immutable=True)
    first = time.time()
    submit_s = _submit_all(n, threads, lambda: sig.apply_async(retry=False))
    wait_for(lambda: r.llen(key) >= n, timeout, 0.05, f"{n} raw Celery tasks", max_interval=0.05)
    last = max(float(x) for x in r.lrange(key, 0, -1))
    r.delete(key)
    app.close()
    return {"n": n, "seconds": last - first, "per_s": n / (last - first), "submit_per_s": n / submit_s}


def measure_mediarunner(client: Client, url: str, queue: str, n: int, threads: int,
                        timeout: float) -> dict[str, float]:
    first = utcnow()

    def done() -> tuple[int, datetime | None]:
        return transaction(lambda s: tuple(s.execute(  # type: ignore[return-value]
            select(func.count(), func.max(JobRow.finished_at)).where(
                JobRow.created_at >= first, JobRow.state.in_(list(TERMINAL_STATES)))).one()), url=url)

    submit_s = _submit_all(n, threads, lambda: client.submit_noop(queue=queue))
    wait_for(lambda: done()[0] >= n, timeout, 0.05, f"{n} mediarunner no-op jobs", max_interval=0.05)
    failed = transaction(lambda s: s.scalar(select(func.count()).where(
        JobRow.created_at >= first, JobRow.state != JobState.COMPLETED)), url=url)
    if failed:
        raise RuntimeError(f"{failed} no-op job(s) did not complete")
    count, last = done()
    assert last is not None
    seconds = (last.astimezone(UTC) - first).total_seconds()
    return {"n": count, "seconds": seconds, "per_s": count / seconds, "submit_per_s": n / submit_s}


def run(smoke: bool = False, jobs: int | None = None, concurrency: int = 2, submitters: int = 4,
        db: str | None = None, rounds: int | None = None) -> BenchResult:
    n = jobs or (30 if smoke else 2000)
    rounds = rounds or (1 if smoke else 3)
    warmup = 5 if smoke else 50
    timeout = 60 + n * 0.5
    if db:
        dbs = [d.strip() for d in db.split(",") if d.strip()]
    else:  # smoke: one database is enough to check the script (the code path is the same)
        dbs = ["sqlite"] if smoke or not pg_available() else ["sqlite", "postgresql"]
    res = BenchResult(NAME, TITLE, smoke, params={
        "jobs": n, "warmup_jobs": warmup, "rounds": rounds, "dbs": dbs, "submitter_threads": submitters,
        "worker": f"celery worker -P prefork -c {concurrency} (same flags for both), one per side",
        "raw_task": "bench.raw_app: no-op + RPUSH of its finish time"})
    with contextlib.ExitStack() as cleanup:
        tmp = cleanup.enter_context(bench_tmp(NAME))
        srv = cleanup.enter_context(private_redis(tmp))
        urls: dict[str, str] = {}
        unavailable: dict[str, str] = {}
        for kind in dbs:
            try:
                urls[kind] = cleanup.enter_context(database(kind, tmp))
            except Unavailable as exc:
                unavailable[kind] = str(exc)
        if not urls:
            raise Unavailable("; ".join(unavailable.values()))
        stack = cleanup.enter_context(make_stack(tmp, next(iter(urls.values())), srv.url,
                                                 **production_overrides(smoke)))
        specs: list[dict[str, Any]] = [{"name": "raw", "app_module": "bench.raw_app", "queues": RAW_QUEUE,
                                        "concurrency": concurrency}]
        specs += [{"name": f"noop-{kind}", "queues": f"noop-{kind}", "concurrency": concurrency,
                   "extra_env": {"MEDIARUNNER_DATABASE_URL": url}} for kind, url in urls.items()]
        start_workers(stack, specs)
        measure_raw(srv.url, warmup, submitters, timeout)  # warm-up: pool processes, connections
        clients = {}
        for kind, url in urls.items():
            settings = Settings(database_url=url, broker_url=srv.url, job_queues=[f"noop-{kind}"])
            clients[kind] = Client(settings, app=create_app(settings))
            measure_mediarunner(clients[kind], url, f"noop-{kind}", warmup, submitters, timeout)
        # Rounds of raw | ours...: every measurement of ours sits between two of raw Celery, whose
        # mean is its baseline, so a machine that speeds up or slows down moves both sides.
        raw = [measure_raw(srv.url, n, submitters, timeout)]
        ours: dict[str, list[dict[str, float]]] = {kind: [] for kind in urls}
        for _ in range(rounds):
            for kind, url in urls.items():
                ours[kind].append(measure_mediarunner(clients[kind], url, f"noop-{kind}", n, submitters, timeout))
            raw.append(measure_raw(srv.url, n, submitters, timeout))
        stop_workers(stack)
    raw_per_s = statistics.median(r["per_s"] for r in raw)
    res.add("raw Celery no-op tasks", raw_per_s, "/s", note=f"median of {len(raw)}: {_rates(raw)}/s; "
            f"submit {raw[0]['submit_per_s']:.0f}/s")
    for kind in dbs:
        if kind in unavailable:
            res.add(f"{kind}: not available", None, note=unavailable[kind])
            continue
        runs = ours[kind]
        ratios = [o["per_s"] / statistics.fmean((raw[k]["per_s"], raw[k + 1]["per_s"])) for k, o in enumerate(runs)]
        res.add(f"{kind}: mediarunner no-op jobs", statistics.median(o["per_s"] for o in runs), "/s",
                note=f"median of {len(runs)}: {_rates(runs)}/s; submit {runs[0]['submit_per_s']:.0f}/s")
        res.add(f"{kind}: ratio vs raw Celery", statistics.median(ratios), "x", goal=(">=", 0.5),
                note=f"median of the rounds' ratios {', '.join(f'{r:.2f}' for r in ratios)}")
    res.details = {"raw": raw, "mediarunner": ours}
    return res


def _rates(runs: list[dict[str, float]]) -> str:
    return ", ".join(f"{r['per_s']:.0f}" for r in runs)


def main(argv: list[str] | None = None) -> int:
    return cli(sys.modules[__name__], argv)


if __name__ == "__main__":
    sys.exit(main())
