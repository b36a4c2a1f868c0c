"""(8) Rank fidelity: is the displayed queue rank the order in which jobs run? Goal: 0 pairs out of order.

``python -m bench.rank_fidelity [--smoke] [--json out.json] [--jobs 200] [--db postgresql,sqlite]``

A mixed backlog (three priority classes, priorities from -500 to 999, some ties) is submitted with
no worker running; beat's rank tick ranks it (what ``jobs ls`` shows); then two workers (``-c 1``
each) start and drain it. Claims and completions are ordered by their events (``job_assigned``,
``job_completed``), numbered by the database as each statement executes.

**Run before** (goal 0): the job ranked behind was claimed, run and completed (its
``job_completed`` event) before the job ranked ahead was claimed. The job ranked ahead was then
pending and unlocked during the whole of the other's claim, so that claim chose wrongly. This uses
the database's event sequence only, no clocks. **Claimed before** (no goal) counts every inverted
pair of claims. Two workers claiming at the same moment lock different rows
(PostgreSQL's ``SKIP LOCKED``: the second skips the row the first holds), and their events can take
sequence numbers in either order. Such claims ran at the same time, not one before the other. The
same by ``started_at`` is shown too (the clock each worker read before its claim), and the drain
rate. With one worker the order is exact (``tests/test_ordering.py``).
"""

from __future__ import annotations

import argparse
import itertools
import random
import sys
from typing import Any

from sqlalchemy import func, select

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
from mediarunner.models.db import transaction
from mediarunner.models.enums import JobState
from mediarunner.models.tables import EventRow, JobRow, RankRow
from mediarunner.scheduler import ticks

NAME = "rank_fidelity"
TITLE = "Rank fidelity: displayed rank vs run order, mixed backlog, 2 workers"
CLASSES = '{"staff": 0, "default": 10, "student": 20}'


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--jobs", type=int, help="jobs in the backlog (default 200, smoke 30)")
    parser.add_argument("--db", type=comma_list("postgresql", "sqlite"),
                        help="comma-separated: postgresql,sqlite (default: both; smoke: one)")


def run_before(assigned: dict[str, int], completed: dict[str, int], rank: dict[str, int]) -> float:
    """The fraction of pairs where the job ranked behind completed before the one ranked ahead was
    claimed (event sequence numbers): one ran wholly before the other, out of rank order."""
    ids = sorted(rank, key=rank.__getitem__)
    pairs = bad = 0
    for i, ahead in enumerate(ids):
        for behind in ids[i + 1:]:
            pairs += 1
            bad += completed[behind] < assigned[ahead]
    return bad / pairs if pairs else 0.0


def out_of_order(order: list[str], rank: dict[str, int]) -> float:
    """The fraction of pairs of ``order`` (run order) whose ranks are inverted."""
    pairs = bad = 0
    for a, b in itertools.combinations(order, 2):
        pairs += 1
        bad += rank[a] > rank[b]
    return bad / pairs if pairs else 0.0


def measure(url: str, redis_url: str, tmp: Any, jobs: int, smoke: bool) -> dict[str, Any]:
    rng = random.Random(42)
    with make_stack(tmp, url, redis_url, MEDIARUNNER_PRIORITY_CLASSES=CLASSES, **production_overrides(smoke)) as stack:
        client = stack.client()
        ids = [client.submit_noop(duration=0.01, priority=rng.choice([-500, -1, 0, 0, 1, 7, 999]),
                                  priority_class=rng.choice(["staff", "default", "student"])).id for _ in range(jobs)]
        settings = stack.settings()
        transaction(lambda s: ticks.update_ranks(s, settings), url=url)
        rank = {i: r for i, r in transaction(lambda s: s.execute(select(RankRow.job_id, RankRow.rank)).all(), url=url)}
        start_workers(stack, [{"name": "fid-a", "concurrency": 1}, {"name": "fid-b", "concurrency": 1}])
        wait_for(lambda: transaction(lambda s: s.scalar(select(JobRow.id).where(
            JobRow.state != JobState.COMPLETED).limit(1)), url=url) is None, 300, what="the backlog to drain")
        first, last = transaction(lambda s: s.execute(select(func.min(JobRow.started_at),
                                                             func.max(JobRow.finished_at))).one(), url=url)
        events = transaction(lambda s: s.execute(select(EventRow.kind, EventRow.job_id, EventRow.id).where(
            EventRow.kind.in_(["job_assigned", "job_completed"])).order_by(EventRow.id)).all(), url=url)
        started = transaction(lambda s: s.scalars(select(JobRow.id).order_by(JobRow.started_at)).all(), url=url)
        workers = set(transaction(lambda s: s.scalars(select(JobRow.worker)).all(), url=url))
        stop_workers(stack)
    claims = [job_id for kind, job_id, _ in events if kind == "job_assigned"]  # in claim order
    if sorted(claims) != sorted(ids) or set(rank) != set(ids):
        raise RuntimeError("every job must be ranked once and claimed once")
    seq: dict[str, dict[str, int]] = {"job_assigned": {}, "job_completed": {}}
    for kind, job_id, number in events:
        seq[kind][job_id] = number
    return {"ran": run_before(seq["job_assigned"], seq["job_completed"], rank),
            "claims": out_of_order(claims, rank), "started": out_of_order(list(started), rank),
            "rate": jobs / (last - first).total_seconds(), "workers": len(workers)}


def run(smoke: bool = False, jobs: int | None = None, db: str | None = None) -> BenchResult:
    jobs = jobs or (30 if smoke else 200)
    if db:
        dbs = [d.strip() for d in db.split(",") if d.strip()]
    elif smoke:
        dbs = ["postgresql" if pg_available() else "sqlite"]
    else:
        dbs = ["postgresql", "sqlite"] if pg_available() else ["sqlite"]
    res = BenchResult(NAME, TITLE, smoke, params={
        "jobs": jobs, "dbs": dbs, "classes": CLASSES, "workers": "2 prefork workers, -c 1 each",
        "measure": "pairs where the job ranked behind completed before the one ranked ahead was claimed "
                   "(job_completed vs job_assigned event numbers)"})
    with bench_tmp(NAME) as tmp, private_redis(tmp) as redis:
        for kind in dbs:
            try:
                with database(kind, tmp) as url:
                    m = measure(url, redis.url, tmp / kind, jobs, smoke)
            except Unavailable as exc:
                res.add(f"{kind}: not available", None, note=str(exc))
                continue
            res.add(f"{kind}: pairs run out of rank order", m["ran"], "", goal=("<=", 0.0),
                    note=f"{jobs} jobs, {jobs * (jobs - 1) // 2:,} pairs; behind completed before ahead was claimed")
            res.add(f"{kind}: pairs claimed out of rank order", m["claims"], "",
                    note="by claim events, concurrent claims of the two workers included")
            res.add(f"{kind}: pairs started out of rank order", m["started"], "",
                    note="by started_at (clock read just before each claim)")
            res.add(f"{kind}: drain rate", m["rate"], "/s",
                    note=f"first claim to last finish; {m['workers']} workers ran jobs (10 ms no-op jobs)")
            res.details[kind] = m
    return res


def main(argv: list[str] | None = None) -> int:
    return cli(sys.modules[__name__], argv)


if __name__ == "__main__":
    sys.exit(main())
