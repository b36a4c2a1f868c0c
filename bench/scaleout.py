"""(2) Scale-out: the 720p/480p/360p HLS ladder with 1 vs 2 workers, each worker pinned to its
own core (``taskset -c``) with ``MEDIARUNNER_FFMPEG_THREADS=1``, so N workers = N cores. Default
settings: no ``parts`` argument, the auto planner lays each ladder out (media/strategy.py).
Speedup T1/TN and efficiency T1/(N·TN) for four workloads:

* ``single``: one ladder of the 30 s clip (too short to split: one job per rung on 2 workers);
* ``minute``: one ladder of a 60 s clip: the goal case (>= 0.85): with a second idle worker the
  planner splits every rung into 2 parts;
* ``batch``: 4 ladders submitted at once (throughput of a busy site: no slot is idle, so each
  ladder is encoded in one ffmpeg by one worker);
* ``long``: one ladder of a 5-minute clip (>= 0.9).

T1 is the 1-worker time, where the planner encodes every rung in one ffmpeg (one decode): the
fastest one worker does it, so splitting and joining count against the multi-worker times.
4 workers are measured when the machine has 4 distinct cores (``--workers 4`` asks for them);
on 2 cores they are not (state the limit).

``python -m bench.scaleout [--smoke] [--json out.json] [--seconds 30] [--minute-seconds 60]
[--long-seconds 300] [--batch 4] [--workers 4]``

For a ladder laid out one job per rung, the best 2-worker time is ``parent + slowest child``; the
table reports that bound (``ideal``). ``utilisation`` (the jobs' running time over N·TN) is the
share of the workers' time spent running jobs: the part of the efficiency the scheduler owns; its
note says how much longer the same jobs ran when all cores worked (the machine's part).
"""

from __future__ import annotations

import argparse
import os
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
    parser.add_argument("--minute-seconds", type=float, help="the goal case's clip length (default 60, smoke 2)")
    parser.add_argument("--long-seconds", type=float, help="long clip length (default 300, smoke 1)")
    parser.add_argument("--batch", type=int, help="ladders submitted at once in the batch case (default 4, smoke 2)")
    parser.add_argument("--workers", type=int, default=2, help="the most workers measured: 2, or 4 (4 cores)")
    parser.add_argument("--db", choices=["postgresql", "sqlite"], help="job table (default: PostgreSQL if up)")


GOALS = {"minute": 0.85, "long": 0.9}


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


def _measure(stack: Any, cores: list[int], cases: dict[str, tuple[Any, int]], counts: tuple[int, ...],
             warm: Any, smoke: bool, timeout: float) -> dict[int, dict[str, dict[str, Any]]]:
    client = stack.client()
    out = stack.tmp / "outputs"
    times: dict[int, dict[str, dict[str, Any]]] = {}
    workers: list[Any] = []
    for n in counts:
        workers += start_workers(stack, [{"name": f"pinned{k + 1}", "cpus": str(cores[k])}
                                         for k in range(len(workers), n)])
        if not smoke:
            run_ladders(client, warm, [out / f"warm{n}-{k}" for k in range(n)], timeout)
        times[n] = {}
        for case, (clip, count) in cases.items():
            times[n][case] = run_ladders(client, clip, [out / f"{case}{n}-{k}" for k in range(count)], timeout)
    stop_workers(stack, workers)
    return times


def run(smoke: bool = False, seconds: float | None = None, minute_seconds: float | None = None,
        long_seconds: float | None = None, batch: int | None = None, db: str | None = None,
        workers: int = 2) -> BenchResult:
    seconds = seconds or (1.0 if smoke else 30.0)
    minute_seconds = minute_seconds or (2.0 if smoke else 60.0)
    long_seconds = long_seconds or (1.0 if smoke else 300.0)
    batch = batch or (2 if smoke else 4)
    db = db or default_db()
    cores = distinct_cores(2)
    if cores is None:
        raise Unavailable("needs 2 usable CPU cores that are not SMT siblings")
    four = distinct_cores(4) if workers >= 4 else None
    counts = (1, 2, 4) if four else (1, 2)
    cores = four or cores
    overrides = {**production_overrides(smoke), "MEDIARUNNER_FFMPEG_THREADS": "1"}
    res = BenchResult(NAME, TITLE, smoke, params={
        "clip_s": seconds, "minute_clip_s": minute_seconds, "long_clip_s": long_seconds, "batch": batch,
        "ladder": list(LADDER), "db": db, "parts": "none given (auto planner)", "workers": list(counts),
        "cores": cores, "worker": "prefork -c 1 under taskset -c <core>, MEDIARUNNER_FFMPEG_THREADS=1",
        "x264_preset": overrides["MEDIARUNNER_X264_PRESET"]})
    src, minute, long_src = cached_clip(seconds), cached_clip(minute_seconds), cached_clip(long_seconds)
    cases = {"single": (src, 1), "minute": (minute, 1), "batch": (src, batch), "long": (long_src, 1)}
    with bench_tmp(NAME) as tmp, private_redis(tmp) as redis, database(db, tmp) as url, \
            make_stack(tmp, url, redis.url, **overrides) as stack:
        times = _measure(stack, cores, cases, counts, cached_clip(1.0), smoke, max(300.0, long_seconds * 30))
    for case in cases:
        _report(res, case, times)
    if not four:
        res.add("4 workers: not available", None, "", note=f"not measured: {len(os.sched_getaffinity(0))} usable cores "
                                           "(4 workers need 4 distinct cores; --workers 4)")
    res.details = {f"{n}_workers": t for n, t in times.items()}
    return res


def _layouts(run: dict[str, Any]) -> str:
    return ", ".join(sorted({f"{f['layout']}" + (f" x{f['parts']}" if (f.get("parts") or 1) > 1 else "")
                             for f in run["families"]}))


def _report(res: BenchResult, case: str, times: dict[int, dict[str, dict[str, Any]]]) -> None:
    t1 = times[1][case]["e2e_s"]
    res.add(f"{case}: T1 (1 worker)", t1, "s", note=f"layout {_layouts(times[1][case])}")
    for n in sorted(times)[1:]:
        tn = times[n][case]["e2e_s"]
        res.add(f"{case}: T{n} ({n} workers)", tn, "s", note=f"layout {_layouts(times[n][case])}")
        res.add(f"{case}: speedup T1/T{n}", t1 / tn, "x")
        note = ""
        if n == 2 and case != "batch" and times[n][case]["families"][0]["layout"] == "fan-out":
            ideal = _ideal_two_workers(times[n][case])
            note = f"one job per rung: bound ~{t1 / (2 * ideal):.2f} (parent, then children in parallel)"
        goal = (">=", GOALS[case]) if case in GOALS and n == 2 else None
        res.add(f"{case}: efficiency T1/({n}·T{n})", t1 / (n * tn), "", goal=goal, note=note)
        busy1, busyn = times[1][case]["busy_s"], times[n][case]["busy_s"]
        res.add(f"{case}: worker utilisation busy/({n}·T{n})", busyn / (n * tn), "",
                note=f"the jobs ran {abs(100 * (busyn / busy1 - 1)):.1f} % "
                     f"{'longer' if busyn >= busy1 else 'shorter'} in all than on 1 worker")


def main(argv: list[str] | None = None) -> int:
    return cli(sys.modules[__name__], argv)


if __name__ == "__main__":
    sys.exit(main())
