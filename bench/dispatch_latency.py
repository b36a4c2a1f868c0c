"""(3) Dispatch latency: submit -> running with an idle worker, p50/p95/p99 over 500 no-op jobs.
Goal: p50 < 15 ms, p99 < 100 ms.

``python -m bench.dispatch_latency [--smoke] [--json out.json] [--jobs 500] [--db postgresql,sqlite]
[--brokers redis,rabbitmq]``

What is measured, per job, from the job table: ``started_at - created_at``. ``created_at`` is taken
by ``Client.submit_noop`` just before it inserts the row; ``started_at`` by the worker in the claim
(``pending -> running``) transaction. Both come from ``utcnow()`` on the same host, so one clock.
The span covers the insert transaction, reading the job back, publishing to the broker, the broker
delivering to the worker, the worker's claim transaction. Also reported: from the start of the
``submit_noop`` call (validation included) to ``started_at``.

Measured per broker (``bench.brokers``: a private Redis, the machine's RabbitMQ) and database, each
pair with a fresh database and its own worker; metric names carry the broker
(``rabbitmq/postgresql: ...``) unless Redis alone was asked for.

Jobs go one at a time: the next is submitted only after the previous finished and a short idle
pause, so the worker is always idle and waiting on the broker (no queueing in the numbers).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from sqlalchemy import select

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
    production_overrides,
    start_workers,
    stop_workers,
    summary,
    wait_for,
)
from mediarunner.models.base import utcnow
from mediarunner.models.db import transaction
from mediarunner.models.enums import JobState
from mediarunner.models.tables import JobRow

NAME = "dispatch_latency"
TITLE = "Dispatch latency: submit → running, idle worker"
IDLE_PAUSE_S = 0.02  # after each job, so the worker is back waiting on the broker
# What the anchors do instead (design values, not measured here).
ANCHORS = [  # see BENCHMARKS.md for the sources
    ("Esup-Pod: encoding cron every 3 min", 90_000.0, "design value, not measured: 0-180 s, mean 90 s"),
    ("PeerTube: runner ping + HTTP request", 1_000.0, "design value, not measured: >= 1 s (ping debounced 1 s)"),
]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--jobs", type=int, help="measured jobs (default 500, smoke 20)")
    parser.add_argument("--db", type=comma_list("postgresql", "sqlite"),
                        help="comma-separated: postgresql,sqlite (default: both; smoke: one)")
    parser.add_argument("--brokers", type=comma_list(*BROKERS),
                        help="comma-separated: redis,rabbitmq (default: both, RabbitMQ when reachable; smoke: redis)")


def measure(url: str, b: Broker, tmp: Path, jobs: int, warmup: int, smoke: bool) -> dict[str, Any]:
    queue = b.queue("cpu")  # the production queue's name (with this run's suffix on RabbitMQ)
    with make_stack(tmp, url, b.url, **production_overrides(smoke), **b.job_queues(queue)) as stack:
        start_workers(stack, [{"name": "latency", "queues": queue, "concurrency": 1}])
        client = stack.client()

        def row(job_id: str) -> Any:
            return transaction(lambda s: s.execute(select(JobRow.state, JobRow.created_at, JobRow.started_at)
                                                   .where(JobRow.id == job_id)).one(), url=url)

        db_ms: list[float] = []
        call_ms: list[float] = []
        submit_ms: list[float] = []
        try:
            for i in range(warmup + jobs):
                called_at = utcnow()
                t0 = time.perf_counter()
                job = client.submit_noop(queue=queue)
                submit = time.perf_counter() - t0
                # A steady 10 ms poll: the latency comes from the row's timestamps; the poll only paces the loop.
                r = wait_for(lambda job_id=job.id: (x := row(job_id)).state.is_terminal and x, 30, 0.01,
                             f"job {job.id} to finish", max_interval=0.01)
                if r.state is not JobState.COMPLETED:
                    raise RuntimeError(f"no-op job {job.id} ended {r.state}")
                if i >= warmup:
                    db_ms.append((r.started_at - r.created_at).total_seconds() * 1000)
                    call_ms.append((r.started_at - called_at).total_seconds() * 1000)
                    submit_ms.append(submit * 1000)
                time.sleep(IDLE_PAUSE_S)
        finally:
            client.app.close()  # its connections to the broker
        stop_workers(stack)
    return {"created_to_running_ms": db_ms, "call_to_running_ms": call_ms, "submit_call_ms": submit_ms}


def run(smoke: bool = False, jobs: int | None = None, db: str | None = None,
        brokers: str | None = None) -> BenchResult:
    jobs = jobs or (20 if smoke else 500)
    warmup = 5 if smoke else 20
    if db:
        dbs = [d.strip() for d in db.split(",") if d.strip()]
    elif smoke:
        dbs = ["postgresql" if pg_available() else "sqlite"]
    else:
        dbs = ["postgresql", "sqlite"] if pg_available() else ["sqlite"]
    kinds, missing = pick(brokers, smoke)
    asked = [*kinds, *missing]
    res = BenchResult(NAME, TITLE, smoke, params={
        "jobs": jobs, "warmup_jobs": warmup, "dbs": dbs, "brokers": kinds, "worker": "1 prefork worker, -c 1, idle",
        "measure": "started_at - created_at (job table, one host clock)"})
    with bench_tmp(NAME) as tmp:
        for bk in kinds:
            (tmp / bk).mkdir()
            with broker(bk, tmp / bk) as b:
                for kind in dbs:
                    name = label(bk, asked) + kind
                    try:
                        with database(kind, tmp / bk) as url:
                            samples = measure(url, b, tmp / bk / kind, jobs, warmup, smoke)
                    except Unavailable as exc:
                        res.add(f"{name}: not available", None, note=str(exc))
                        continue
                    report(res, name, samples)
            res.details.setdefault("queues", {})[bk] = b.declared
    for bk, why in missing.items():
        res.add(f"{bk}: not available", None, note=why)
    for name, value, note in ANCHORS:
        res.add(f"anchor: {name}", value, "ms", note=note)
    return res


def report(res: BenchResult, name: str, samples: dict[str, Any]) -> None:
    s = summary(samples["created_to_running_ms"])
    res.add(f"{name}: p50 created → running", s["p50"], "ms", goal=("<", 15))
    res.add(f"{name}: p95 created → running", s["p95"], "ms")
    res.add(f"{name}: p99 created → running", s["p99"], "ms", goal=("<", 100))
    res.add(f"{name}: max created → running", s["max"], "ms")
    c = summary(samples["call_to_running_ms"])
    res.add(f"{name}: p50 / p99 submit call → running", c["p50"], "ms", note=f"p99 {c['p99']:.1f} ms")
    res.add(f"{name}: p50 submit_noop() call", summary(samples["submit_call_ms"])["p50"], "ms")
    res.details[name] = {"summary_ms": s, "call_summary_ms": c, **samples}


def main(argv: list[str] | None = None) -> int:
    return cli(sys.modules[__name__], argv)


if __name__ == "__main__":
    sys.exit(main())
