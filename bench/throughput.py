"""(4) Control-plane throughput: no-op jobs through mediarunner's full lifecycle (job row insert,
publish, claim, heartbeat, completion, events) per second, vs raw Celery no-op tasks on the same
broker, in the same run, with the same worker configuration. Goal: >= 0.5x raw Celery, on SQLite
and on PostgreSQL, on Redis and on RabbitMQ.

``python -m bench.throughput [--smoke] [--json out.json] [--jobs 2000] [--concurrency 2] [--submitters 4]
[--db sqlite,postgresql] [--brokers redis,rabbitmq]``

For N jobs: time from the first submit to the last completion (``finished_at`` in the job table;
for raw Celery, the latest finish time the tasks pushed to a Redis list). Jobs are submitted by a
few threads of one process (``Client.submit_noop`` / ``apply_async``), while one worker
(``celery worker -P prefork -c K``) drains them. Each broker is measured on its own (``bench.brokers``):
its own fresh databases, its own workers (raw, one per database), started before its first
measurement and idling while the others are measured; raw Celery on that broker is measured before
and after the mediarunner runs and the mean is the baseline, so ratios are per broker (raw Celery
on RabbitMQ vs mediarunner on RabbitMQ). With RabbitMQ as the broker the raw tasks still push their
finish times to a (private) Redis. Metric names carry the broker (``rabbitmq/sqlite: ...``) unless
Redis alone was asked for.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import redis
from sqlalchemy import func, select

from bench.brokers import BROKERS, Broker, broker, label, pick
from bench.common import (
    BenchResult,
    Unavailable,
    bench_tmp,
    cli,
    comma_list,
    database,
    make_stack,
    pg_available,
    private_redis,
    production_overrides,
    start_workers,
    stop_workers,
    wait_for,
)
from bench.raw_app import DONE_ENV, QUEUE_ENV, RAW_QUEUE, TASK_NAME, create_raw_app
from mediarunner.client import Client
from mediarunner.config import Settings
from mediarunner.models.base import utcnow
from mediarunner.models.db import transaction
from mediarunner.models.enums import ACTIVE_STATES, TERMINAL_STATES, JobState
from mediarunner.models.tables import JobRow
from mediarunner.workers.app import create_app

NAME = "throughput"
TITLE = "Control-plane throughput: no-op jobs vs raw Celery no-op tasks"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--jobs", type=int, help="jobs per measurement (default 2000, smoke 30)")
    parser.add_argument("--concurrency", type=int, default=2, help="worker -c (prefork), same for both")
    parser.add_argument("--submitters", type=int, default=4, help="submitting threads, same for both")
    parser.add_argument("--rounds", type=int, help="measurements of each side, interleaved (default 3, smoke 1)")
    parser.add_argument("--db", type=comma_list("postgresql", "sqlite"),
                        help="comma-separated: sqlite,postgresql (default: both if available; smoke: sqlite)")
    parser.add_argument("--brokers", type=comma_list(*BROKERS),
                        help="comma-separated: redis,rabbitmq (default: both, RabbitMQ when reachable; smoke: redis)")


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


def measure_raw(broker_url: str, done_url: str, queue: str, n: int, threads: int,
                timeout: float) -> dict[str, float]:
    app = create_raw_app(Settings(broker_url=broker_url), queue=queue)
    r = redis.Redis.from_url(done_url)
    key = f"bench:raw:{uuid.uuid4().hex}"
    sig = app.signature(TASK_NAME, args=(key,), queue=queue, priority=4, immutable=True)
    try:
        first = time.time()
        submit_s = _submit_all(n, threads, lambda: sig.apply_async(retry=False))
        wait_for(lambda: r.llen(key) >= n, timeout, 0.05, f"{n} raw Celery tasks", max_interval=0.05)
        last = max(float(x) for x in r.lrange(key, 0, -1))
        r.delete(key)
    finally:
        app.close()
    return {"n": n, "seconds": last - first, "per_s": n / (last - first), "submit_per_s": n / submit_s}


def measure_mediarunner(client: Client, url: str, queue: str, n: int, threads: int,
                        timeout: float) -> dict[str, float]:
    first = utcnow()

    def done() -> tuple[int, datetime | None]:
        return transaction(lambda s: tuple(s.execute(  # type: ignore[return-value]
            select(func.count(), func.max(JobRow.finished_at)).where(
                JobRow.created_at >= first, JobRow.state.in_(list(TERMINAL_STATES)))).one()), url=url)

    def drained() -> bool:
        # Polled every 50 ms while the jobs run, so it must cost the database next to nothing (raw
        # Celery's side polls a Redis LLEN): one probe of the (state, queue) index for an active
        # job of this queue, instead of counting this round's rows at each poll.
        return transaction(lambda s: s.scalar(select(JobRow.id).where(
            JobRow.state.in_(list(ACTIVE_STATES)), JobRow.queue == queue).limit(1)), url=url) is None

    submit_s = _submit_all(n, threads, lambda: client.submit_noop(queue=queue))  # every row exists after it
    wait_for(drained, timeout, 0.05, f"{n} mediarunner no-op jobs", max_interval=0.05)
    failed = transaction(lambda s: s.scalar(select(func.count()).where(
        JobRow.created_at >= first, JobRow.state != JobState.COMPLETED)), url=url)
    if failed:
        raise RuntimeError(f"{failed} no-op job(s) did not complete")
    count, last = done()
    if count < n or last is None:
        raise RuntimeError(f"{count} of {n} no-op jobs finished")
    seconds = (last.astimezone(UTC) - first).total_seconds()
    return {"n": count, "seconds": seconds, "per_s": count / seconds, "submit_per_s": n / submit_s}


@dataclass
class Sizes:
    smoke: bool
    n: int
    warmup: int
    rounds: int
    concurrency: int
    submitters: int
    timeout: float


@dataclass
class Outcome:
    """One broker's measurements: raw Celery's and ours per database (or why a database could not run)."""

    raw: list[dict[str, float]] = field(default_factory=list)
    ours: dict[str, list[dict[str, float]]] = field(default_factory=dict)
    unavailable: dict[str, str] = field(default_factory=dict)


def run(smoke: bool = False, jobs: int | None = None, concurrency: int = 2, submitters: int = 4,
        db: str | None = None, rounds: int | None = None, brokers: str | None = None) -> BenchResult:
    n = jobs or (30 if smoke else 2000)
    sizes = Sizes(smoke, n, 5 if smoke else 50, rounds or (1 if smoke else 3), concurrency, submitters, 60 + n * 0.5)
    if db:
        dbs = [d.strip() for d in db.split(",") if d.strip()]
    else:  # smoke: one database is enough to check the script (the code path is the same)
        dbs = ["sqlite"] if smoke or not pg_available() else ["sqlite", "postgresql"]
    kinds, missing = pick(brokers, smoke)
    asked = [*kinds, *missing]
    res = BenchResult(NAME, TITLE, smoke, params={
        "jobs": n, "warmup_jobs": sizes.warmup, "rounds": sizes.rounds, "dbs": dbs, "brokers": kinds,
        "submitter_threads": submitters,
        "worker": f"celery worker -P prefork -c {concurrency} (same flags for both), one per side and broker",
        "raw_task": "bench.raw_app: no-op + RPUSH of its finish time (to the broker's Redis, or a private one)"})
    with bench_tmp(NAME) as tmp:
        for kind in kinds:
            (tmp / kind).mkdir()
            with broker(kind, tmp / kind) as b:
                out = measure_broker(b, dbs, tmp / kind, sizes)
            report(res, out, dbs, label(kind, asked))
            res.details[kind] = {"raw": out.raw, "mediarunner": out.ours}
            res.details.setdefault("queues", {})[kind] = b.declared
    for kind, why in missing.items():
        res.add(f"{kind}: not available", None, note=why)
    return res


def measure_broker(b: Broker, dbs: list[str], tmp: Path, sizes: Sizes) -> Outcome:
    """Raw Celery and mediarunner on one broker: a fresh database of each kind, the raw worker and
    one worker per database started first, then rounds of raw | ours... | raw."""
    out = Outcome()
    with contextlib.ExitStack() as cleanup:
        urls: dict[str, str] = {}
        for kind in dbs:
            try:
                urls[kind] = cleanup.enter_context(database(kind, tmp))
            except Unavailable as exc:
                out.unavailable[kind] = str(exc)
        if not urls:
            raise Unavailable("; ".join(out.unavailable.values()))
        # With RabbitMQ as the broker the raw tasks still record their finish times in a Redis.
        done = b.url if b.kind == "redis" else cleanup.enter_context(private_redis(tmp / "done")).url
        raw_q = b.queue(RAW_QUEUE)
        queues = {kind: b.queue(f"noop-{kind}") for kind in urls}
        stack = cleanup.enter_context(make_stack(tmp, next(iter(urls.values())), b.url,
                                                 **production_overrides(sizes.smoke)))
        specs: list[dict[str, Any]] = [{"name": "raw", "app_module": "bench.raw_app", "queues": raw_q,
                                        "concurrency": sizes.concurrency,
                                        "extra_env": {QUEUE_ENV: raw_q, DONE_ENV: done}}]
        specs += [{"name": f"noop-{kind}", "queues": queues[kind], "concurrency": sizes.concurrency,
                   "extra_env": {"MEDIARUNNER_DATABASE_URL": url, **b.job_queues(queues[kind])}}
                  for kind, url in urls.items()]
        start_workers(stack, specs)

        def raw(k: int) -> dict[str, float]:
            return measure_raw(b.url, done, raw_q, k, sizes.submitters, sizes.timeout)

        raw(sizes.warmup)  # warm-up: pool processes, connections
        clients = {}
        for kind, url in urls.items():
            settings = Settings(database_url=url, broker_url=b.url, job_queues=[queues[kind]])
            clients[kind] = cleanup.enter_context(_closing(Client(settings, app=create_app(settings))))
            measure_mediarunner(clients[kind], url, queues[kind], sizes.warmup, sizes.submitters, sizes.timeout)
        # Rounds of raw | ours...: every measurement of ours sits between two of raw Celery, whose
        # mean is its baseline, so a machine that speeds up or slows down moves both sides.
        out.raw.append(raw(sizes.n))
        out.ours = {kind: [] for kind in urls}
        for _ in range(sizes.rounds):
            for kind, url in urls.items():
                out.ours[kind].append(measure_mediarunner(clients[kind], url, queues[kind], sizes.n,
                                                          sizes.submitters, sizes.timeout))
            out.raw.append(raw(sizes.n))
        stop_workers(stack)
    return out


@contextlib.contextmanager
def _closing(client: Client) -> Iterator[Client]:
    try:
        yield client
    finally:
        client.app.close()  # its connections to the broker


def report(res: BenchResult, out: Outcome, dbs: list[str], prefix: str) -> None:
    """One broker's metrics; ``prefix`` (``rabbitmq/``, see ``brokers.label``) says which."""
    raw = out.raw
    res.add(f"{prefix[:-1]}: raw Celery no-op tasks" if prefix else "raw Celery no-op tasks",
            statistics.median(r["per_s"] for r in raw), "/s",
            note=f"median of {len(raw)}: {_rates(raw)}/s; submit {raw[0]['submit_per_s']:.0f}/s")
    for kind in dbs:
        if kind in out.unavailable:
            res.add(f"{prefix}{kind}: not available", None, note=out.unavailable[kind])
            continue
        runs = out.ours[kind]
        ratios = [o["per_s"] / statistics.fmean((raw[k]["per_s"], raw[k + 1]["per_s"])) for k, o in enumerate(runs)]
        res.add(f"{prefix}{kind}: mediarunner no-op jobs", statistics.median(o["per_s"] for o in runs), "/s",
                note=f"median of {len(runs)}: {_rates(runs)}/s; submit {runs[0]['submit_per_s']:.0f}/s")
        res.add(f"{prefix}{kind}: ratio vs raw Celery", statistics.median(ratios), "x", goal=(">=", 0.5),
                note=f"median of the rounds' ratios {', '.join(f'{r:.2f}' for r in ratios)}")


def _rates(runs: list[dict[str, float]]) -> str:
    return ", ".join(f"{r['per_s']:.0f}" for r in runs)


def main(argv: list[str] | None = None) -> int:
    return cli(sys.modules[__name__], argv)


if __name__ == "__main__":
    sys.exit(main())
