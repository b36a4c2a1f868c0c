"""(5) Scheduler scale: how long the beat ticks take on a PostgreSQL job table of 10k / 100k / 1M
rows. Goal: the rank update with 100k pending jobs takes < 1 s.

``python -m bench.scheduler_scale [--smoke] [--json out.json] [--sizes 10000,100000,1000000] [--repeats 3]``

The table grows in steps (rows are added with ``COPY``, then ``VACUUM ANALYZE`` as autovacuum would)
and at each size the tick functions of ``mediarunner.scheduler.ticks`` are timed, called as beat
calls them (one transaction each, the same ``now``):

* ``update_ranks``: rank every pending job in its queue (committed, as in production). Before each
  timing the first 10 jobs of each queue are started (as claims would), so every rank behind them
  moves and the tick must rewrite all of them: the realistic worst case, not an idle re-rank;
* ``fail_over``: find running jobs with a silent heartbeat (10 of them) and requeue them (rolled back);
* ``purge``: one batch (``purge_batch_size`` = 1000 families) of completed families older than
  ``purge_after_days`` deleted with their events (rolled back, so every repeat does the same work);
* ``due_for_dispatch``: the outbox scan (10 pending jobs never published).

Row mix (a table that is mostly history): 10 % pending (roots; 80 % cpu / 20 % gpu queue, 5 % staff
class, priorities -5..5), 1 % running, 89 % completed in families of 3 (a root and 2 children), half
of them finished more than 30 days ago. So 1M rows hold 100k pending jobs.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import statistics
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
from sqlalchemy.orm import Session

from bench.common import BenchResult, bench_tmp, cli, database
from mediarunner.config import Settings
from mediarunner.models.base import utcnow
from mediarunner.models.db import session_factory
from mediarunner.scheduler import ticks

NAME = "scheduler_scale"
TITLE = "Scheduler scale: beat tick times vs job-table size (PostgreSQL)"
PENDING, RUNNING = 0.10, 0.01  # the rest is completed families of 3
STALE_RUNNING = 10  # silent workers for fail_over to find
NEVER_PUBLISHED = 10  # pending jobs the outbox must publish
HEADS_STARTED = 10  # jobs per queue started between two rank ticks
COLUMNS = ("id", "type", "state", "progress", "queue", "priority", "priority_class", "parent_id", "root_id",
           "attempt", "failures", "max_attempts", "payload", "private_payload", "meta", "result",
           "worker", "created_at", "updated_at", "dispatched_at", "started_at", "heartbeat_at", "finished_at")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--sizes", help="comma-separated table sizes (default 10000,100000,1000000; smoke 500,2000)")
    parser.add_argument("--repeats", type=int, help="timings per tick and size (default 3, smoke 2)")


def _rows(count: int, now: datetime, rng: random.Random, first: bool) -> Iterator[tuple[Any, ...]]:
    """``count`` job rows in the mix described above (naive UTC timestamps, as the column stores)."""
    now = now.replace(tzinfo=None)
    empty = "{}"
    n_pending = round(count * PENDING)
    n_running = round(count * RUNNING)
    for i in range(n_pending):
        jid = str(uuid.uuid4())
        created = now - timedelta(seconds=rng.uniform(0, 86_400))
        dispatched = None if first and i < NEVER_PUBLISHED else now - timedelta(seconds=rng.uniform(1, 200))
        yield (jid, "transcode", "pending", 0.0, "gpu" if rng.random() < 0.2 else "cpu", rng.randint(-5, 5),
               "staff" if rng.random() < 0.05 else "default", None, jid, 1, 0, 3, '{"input": "in.mp4"}', empty,
               empty, None, None, created, created, dispatched, None, None, None)
    for i in range(n_running):
        jid = str(uuid.uuid4())
        started = now - timedelta(seconds=rng.uniform(10, 3_600))
        beat = now - timedelta(seconds=120 if first and i < STALE_RUNNING else rng.uniform(0, 2))
        yield (jid, "transcode", "running", 50.0, "cpu", 0, "default", None, jid, 1, 0, 3, empty, empty, empty,
               None, "w1@host", started, beat, started, started, beat, None)
    for _ in range((count - n_pending - n_running) // 3):
        root = str(uuid.uuid4())
        age = timedelta(days=rng.uniform(31, 90) if rng.random() < 0.5 else rng.uniform(0, 29))
        finished = now - age
        created = finished - timedelta(minutes=10)
        for k, jtype in enumerate(("transcode", "transcode_rendition", "transcode_rendition")):
            jid = root if k == 0 else str(uuid.uuid4())
            yield (jid, jtype, "completed", 100.0, "cpu", 0, "default", None if k == 0 else root, root, 1, 0, 3,
                   empty, empty, empty, '{"rendition": "720p"}', "w1@host", created, finished, created, created,
                   finished, finished)


def _grow(pg_url: str, count: int, now: datetime, rng: random.Random, first: bool) -> dict[str, float]:
    """Add ``count`` rows (and one event per completed root) with COPY, then VACUUM ANALYZE."""
    t0 = time.perf_counter()
    with psycopg.connect(pg_url) as conn:
        with conn.cursor() as cur:
            events = []
            with cur.copy(f"COPY jobs ({', '.join(COLUMNS)}) FROM STDIN") as copy:
                for row in _rows(count, now, rng, first):
                    copy.write_row(row)
                    if row[2] == "completed" and row[7] is None:
                        events.append((row[22], "job_completed", row[0], "attempt 1"))
            with cur.copy("COPY events (at, kind, job_id, message) FROM STDIN") as copy:
                for ev in events:
                    copy.write_row(ev)
        conn.commit()
    copy_s = time.perf_counter() - t0
    t1 = time.perf_counter()
    _vacuum(pg_url, analyze=True)
    return {"copy_s": copy_s, "rows_per_s": count / copy_s, "vacuum_analyze_s": time.perf_counter() - t1}


def _start_heads(pg_url: str, now: datetime, per_queue: int = HEADS_STARTED) -> None:
    """Move the first ``per_queue`` pending jobs of each queue to running (as claims would)."""
    with psycopg.connect(pg_url) as conn:
        conn.execute(
            "UPDATE jobs SET state = 'running', started_at = %(now)s, heartbeat_at = %(now)s WHERE id IN ("
            " SELECT job_id FROM job_ranks JOIN jobs ON jobs.id = job_ranks.job_id"
            " WHERE jobs.state = 'pending' AND job_ranks.rank <= %(n)s)",
            {"now": now.replace(tzinfo=None), "n": per_queue})


def _vacuum(pg_url: str, analyze: bool = False) -> None:
    with psycopg.connect(pg_url, autocommit=True) as conn:
        for table in ("jobs", "events", "job_ranks"):
            conn.execute(f"VACUUM {'ANALYZE ' if analyze else ''}{table}")


def _timed(url: str, fn: Callable[[Session], Any], commit: bool) -> tuple[float, Any]:
    session = session_factory(url)()
    try:
        t0 = time.perf_counter()
        out = fn(session)
        if commit:
            session.commit()
        elapsed = time.perf_counter() - t0
        if not commit:
            session.rollback()
        return elapsed, out
    finally:
        session.close()


def _counts(pg_url: str) -> dict[str, int]:
    with psycopg.connect(pg_url) as conn:
        rows = conn.execute("SELECT state, count(*) FROM jobs GROUP BY state").fetchall()
        events = conn.execute("SELECT count(*) FROM events").fetchone()
    counts = {str(state): int(n) for state, n in rows}
    counts["total"] = sum(counts.values())
    counts["events"] = int(events[0]) if events else 0
    return counts


def measure(url: str, settings: Settings, now: datetime, repeats: int) -> dict[str, Any]:
    pg_url = url.replace("postgresql+psycopg://", "postgresql://")
    out: dict[str, Any] = {}
    samples: dict[str, list[float]] = {"due_for_dispatch": [], "fail_over": [], "purge": [], "update_ranks": []}
    results: dict[str, Any] = {}
    for _ in range(repeats):
        dt, due = _timed(url, lambda s: ticks.due_for_dispatch(s, now, settings), commit=False)
        samples["due_for_dispatch"].append(dt)
        results["due_for_dispatch"] = len(due)
        dt, fo = _timed(url, lambda s: ticks.fail_over(s, now, settings), commit=False)
        samples["fail_over"].append(dt)
        results["fail_over"] = len(fo.requeued) + len(fo.failed) + len(fo.timed_out)
        dt, purged = _timed(url, lambda s: ticks.purge(s, now, settings), commit=False)
        samples["purge"].append(dt)
        results["purge"] = len(purged)
    _timed(url, lambda s: ticks.update_ranks(s, settings), commit=True)  # rank the rows just grown
    written = []
    for _ in range(repeats):
        # The realistic tick: since the last one, the head of each queue started, so every pending
        # job behind it moved up and every rank must be rewritten.
        _start_heads(pg_url, now)
        _vacuum(pg_url)  # autovacuum's job in production; keeps the repeats comparable
        dt, ranked = _timed(url, lambda s: ticks.update_ranks(s, settings), commit=True)
        samples["update_ranks"].append(dt)
        written.append(ranked)
    results["update_ranks"] = min(written)
    out["seconds"] = samples
    out["median_s"] = {k: statistics.median(v) for k, v in samples.items()}
    out["rows_affected"] = results
    return out


def run(smoke: bool = False, sizes: str | None = None, repeats: int | None = None) -> BenchResult:
    size_list = sorted(int(s) for s in sizes.split(",")) if sizes else (
        [500, 2000] if smoke else [10_000, 100_000, 1_000_000])
    repeats = repeats or (2 if smoke else 3)
    res = BenchResult(NAME, TITLE, smoke, params={
        "sizes": size_list, "repeats": repeats, "mix": {"pending": PENDING, "running": RUNNING,
                                                         "completed_families_of_3": 1 - PENDING - RUNNING},
        "stale_running": STALE_RUNNING, "never_published": NEVER_PUBLISHED, "purge_batch_size": 1000,
        "insert": "psycopg COPY, then VACUUM ANALYZE"})
    rng = random.Random(42)
    now = utcnow()
    per_size: dict[int, dict[str, Any]] = {}
    with bench_tmp(NAME) as tmp, database("postgresql", tmp) as url:
        settings = Settings(database_url=url, scratch_dir=Path(tmp) / "no-scratch", purge_after_days=30,
                            purge_batch_size=1000, failover_after_seconds=60)
        pg_url = url.replace("postgresql+psycopg://", "postgresql://")
        have = 0
        for size in size_list:
            grow = _grow(pg_url, size - have, now, rng, first=have == 0)
            have = size
            per_size[size] = {"insert": grow, "counts": _counts(pg_url), **measure(url, settings, now, repeats)}
        from mediarunner.models.db import get_engine

        get_engine(url).dispose()
    labels = {"update_ranks": "rank update", "fail_over": "failover scan", "purge": "purge tick (1 batch)",
              "due_for_dispatch": "outbox scan"}
    for size, data in per_size.items():
        pending = data["counts"].get("pending", 0)
        for op, label in labels.items():
            # The goal is for ~100k pending jobs (the 1M-row table; the ticks' claims leave a few less).
            goal = ("<", 1000.0) if op == "update_ranks" and pending >= 95_000 else None
            note = {"update_ranks": f"{pending:,} pending ranked, {data['rows_affected']['update_ranks']:,} "
                                    f"ranks rewritten ({HEADS_STARTED} started per queue since the last tick)",
                    "fail_over": f"{data['counts'].get('running', 0):,} running, "
                                 f"{data['rows_affected']['fail_over']} failed over",
                    "purge": f"{data['rows_affected']['purge']} families deleted",
                    "due_for_dispatch": f"{data['rows_affected']['due_for_dispatch']} due"}[op]
            res.add(f"{size:,} rows: {label}", data["median_s"][op] * 1000, "ms", goal=goal, note=note)
    lo, hi = size_list[0], size_list[-1]
    if hi > lo:
        for op, label in labels.items():
            t_lo, t_hi = per_size[lo]["median_s"][op], per_size[hi]["median_s"][op]
            res.add(f"growth exponent {label}", math.log(t_hi / t_lo) / math.log(hi / lo), "",
                    note=f"t ∝ rows^k, {lo:,} → {hi:,} rows; 1 = linear")
    res.details = {str(k): v for k, v in per_size.items()}
    json.dumps(res.details)  # fail here, not when writing, if something is not serialisable
    return res


def main(argv: list[str] | None = None) -> int:
    return cli(sys.modules[__name__], argv)


if __name__ == "__main__":
    sys.exit(main())
