"""(2) Scale-out: the 720p/480p/360p HLS ladder with 1 worker vs 2 workers, each worker pinned to
its own core (``taskset -c``) with ``MEDIARUNNER_FFMPEG_THREADS=1``, so N workers = N cores.
Speedup T1/TN and efficiency T1/(N·TN) (goal >= 0.9) for three workloads:

* ``single``: one ladder of the 30 s clip (latency of one video);
* ``batch``: 4 ladders submitted at once (throughput of a busy site);
* ``long``: one ladder of a 5-minute clip: the family is split into children (one per lower
  rung) that run in parallel once the parent has encoded the top rung.
* ``single-split`` and ``long-split``: the same ladders with every rung split into time parts
  (``submit_transcode(parts=...)``; 2 for the 30 s clip, ``--parts`` for the long one; parts of
  at least 10 s): part children encode at once on both workers and the last part of each rung
  joins them. Their efficiency is measured against the *unsplit* 1-worker time (the fastest one
  worker does it), so the cost of splitting and joining counts against it; the 1-worker time of
  the split ladder is reported too.

``python -m bench.scaleout [--smoke] [--json out.json] [--seconds 30] [--long-seconds 300] [--batch 4] [--parts 4]``

A family's children start only when its parent (probe + the top rung) completes, so for one
unsplit ladder the best 2-worker time is ``parent + slowest child``; the table reports that bound
(``ideal``) computed from the 1-worker run beside the measured efficiency. ``utilisation`` (the
jobs' running time over 2·T2) is the share of the two workers' time spent running jobs: the part
of the efficiency the scheduler owns; its note says how much longer the same jobs ran when both
cores worked (the machine's part).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from bench.common import (
    BenchResult,
    Unavailable,
    bench_tmp,
    cached_clip,
    cli,
    database,
    default_db,
    distinct_cores,
    make_stack,
    private_redis,
    production_overrides,
    start_workers,
    stop_workers,
)
from bench.ladder import LADDER, run_ladders

NAME = "scaleout"
TITLE = "Scale-out: 1 vs 2 workers pinned to one core each (ffmpeg threads=1)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--seconds", type=float, help="clip length for single/batch (default 30, smoke 1)")
    parser.add_argument("--long-seconds", type=float, help="long clip length (default 300, smoke 1)")
    parser.add_argument("--batch", type=int, help="ladders submitted at once in the batch case (default 4, smoke 2)")
    parser.add_argument("--parts", type=int, default=4, help="time parts per rung in the long-split case (default 4)")
    parser.add_argument("--db", choices=["postgresql", "sqlite"], help="job table (default: PostgreSQL if up)")


def _ideal_two_workers(single: dict[str, Any]) -> float:
    """Best possible 2-worker time for one family from its 1-worker job times: the parent, then
    the children spread over two workers (longest first), plus the gaps actually seen."""
    (fam,) = single["families"]
    jobs = fam["jobs"]
    parent = jobs[0]["run_s"]
    loads = [0.0, 0.0]
    for run_s in sorted((j["run_s"] for j in jobs[1:]), reverse=True):
        loads[loads.index(min(loads))] += run_s
    gaps = fam["e2e_s"] - fam["busy_s"]
    return float(parent + max(loads) + gaps)


def run(smoke: bool = False, seconds: float | None = None, long_seconds: float | None = None,
        batch: int | None = None, db: str | None = None, parts: int = 4) -> BenchResult:
    seconds = seconds or (1.0 if smoke else 30.0)
    long_seconds = long_seconds or (1.0 if smoke else 300.0)
    batch = batch or (2 if smoke else 4)
    db = db or default_db()
    cores = distinct_cores(2)
    if cores is None:
        raise Unavailable("needs 2 usable CPU cores that are not SMT siblings")
    overrides = {**production_overrides(smoke), "MEDIARUNNER_FFMPEG_THREADS": "1",
                 "MEDIARUNNER_TRANSCODE_PART_MIN_SECONDS": "10"}
    res = BenchResult(NAME, TITLE, smoke, params={
        "clip_s": seconds, "long_clip_s": long_seconds, "batch": batch, "ladder": list(LADDER), "db": db,
        "parts": parts,
        "cores": cores, "worker": "prefork -c 1 under taskset -c <core>, MEDIARUNNER_FFMPEG_THREADS=1",
        "x264_preset": overrides["MEDIARUNNER_X264_PRESET"]})
    src, long_src, warm = cached_clip(seconds), cached_clip(long_seconds), cached_clip(1.0)
    timeout = max(300.0, long_seconds * 30)
    cases = {"single": (src, 1, 1), "single-split": (src, 1, 2), "batch": (src, batch, 1), "long": (long_src, 1, 1),
             "long-split": (long_src, 1, parts)}  # (clip, ladders at once, parts per rung)
    times: dict[int, dict[str, dict[str, Any]]] = {}
    with bench_tmp(NAME) as tmp, private_redis(tmp) as redis, database(db, tmp) as url, \
            make_stack(tmp, url, redis.url, **overrides) as stack:
        client = stack.client()
        out = tmp / "outputs"
        workers = []
        for n in (1, 2):
            workers += start_workers(stack, [{"name": f"pinned{n}", "cpus": str(cores[n - 1])}])
            if not smoke:
                run_ladders(client, warm, [out / f"warm{n}-{k}" for k in range(n)], timeout)
            times[n] = {}
            for case, (clip, count, split) in cases.items():
                if case == "long" and clip == src:  # same workload as "single" (smoke sizes): measured once
                    times[n][case] = times[n]["single"]
                    continue
                times[n][case] = run_ladders(client, clip, [out / f"{case}{n}-{k}" for k in range(count)], timeout,
                                             parts=split)
        stop_workers(stack, workers)
    for case in cases:
        split = case.endswith("-split")
        # Split work is compared with the fastest one worker does: the same ladder unsplit.
        t1, t2 = times[1][case.removesuffix("-split")]["e2e_s"], times[2][case]["e2e_s"]
        same = case == "long" and times[1]["long"] is times[1]["single"]
        res.add(f"{case}: T1 (1 worker)", t1, "s", note="same clip as single at these sizes: measured once" if same
                else "the unsplit ladder" if split else "")
        if split:
            t1s = times[1][case]["e2e_s"]
            res.add(f"{case}: T1 split (1 worker)", t1s, "s",
                    note=f"splitting and joining cost {100 * (t1s / t1 - 1):+.1f} % on one worker")
        res.add(f"{case}: T2 (2 workers)", t2, "s")
        res.add(f"{case}: speedup T1/T2", t1 / t2, "x")
        note = ""
        if case != "batch" and not split:
            ideal = _ideal_two_workers(times[1][case])
            note = f"ideal for one family {t1 / (2 * ideal):.2f} (parent, then children in parallel)"
        res.add(f"{case}: efficiency T1/(2·T2)", t1 / (2 * t2), "", goal=(">=", 0.9), note=note)
        # What mediarunner controls (keeping both workers busy) apart from what the machine does
        # (the same jobs may run slower when both cores work: shared caches, memory, a VM's host).
        busy1, busy2 = times[1][case]["busy_s"], times[2][case]["busy_s"]
        res.add(f"{case}: worker utilisation busy/(2·T2)", busy2 / (2 * t2), "",
                note=f"the same jobs ran {abs(100 * (busy2 / busy1 - 1)):.1f} % "
                     f"{'longer' if busy2 >= busy1 else 'shorter'} with 2 workers")
    res.details = {f"{n}_workers": t for n, t in times.items()}
    return res


def main(argv: list[str] | None = None) -> int:
    return cli(sys.modules[__name__], argv)


if __name__ == "__main__":
    sys.exit(main())
