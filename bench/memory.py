"""(12) Memory: the peak RSS of a CPU worker during a 1080p ladder, and of the scheduler (``mediarunner
beat``) on a PostgreSQL job table of 1M rows. Goals: worker < 150 MiB, beat < 200 MiB.

``python -m bench.memory [--smoke] [--json out.json] [--seconds 30] [--rows 1000000]``

* Worker: a real ``celery worker -c 1`` (prefork: the main process and one pool process) runs a
  1920x1080 25 fps clip into the 1080p/720p/480p/360p ladder (HLS + MP4), the parent job and its
  three children one after the other. Sampled every 0.2 s with psutil: the main process and its
  pool process, **not** the ffmpeg/ffprobe processes they start (those are the media work).
* Beat: the job table is filled as ``scheduler_scale`` fills it (``COPY``; 1M rows: 100k pending,
  10k running, 890k completed), then ``mediarunner beat``'s process runs (``celery worker -P solo
  --beat-thread -Q scheduler`` with the scheduler role: one process that runs the ticks, with beat
  sending them from a thread). Sampled from its start until the rank tick has ranked the backlog,
  then for ten more beat intervals (every tick runs several times).

Which figure the goals are on: the **PSS summed over the process tree**. RSS counts a page shared by
forked processes once per process, so the RSS sum of a prefork parent and its pool process counts
every module both hold (imported once, before the fork) twice: it is not memory the tree uses. PSS
divides each shared page among its sharers, so the PSS sum is what the tree takes from the machine
(what a second worker would add). The RSS sum (the issue's wording), the largest single process's
RSS and the USS sum (pages no other process shares) are reported beside it. With one process (beat)
the RSS and PSS differ only by the shared libraries' pages.
"""

from __future__ import annotations

import argparse
import random
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import psutil
import psycopg

from bench import scheduler_scale
from bench.common import (
    BenchResult,
    bench_tmp,
    cached_clip,
    cli,
    database,
    make_stack,
    private_redis,
    production_overrides,
    start_workers,
    stop_workers,
    wait_for,
)
from mediarunner.models.base import utcnow
from mediarunner.models.enums import JobState

NAME = "memory"
TITLE = "Memory: a CPU worker during a 1080p ladder, beat with 1M job rows"
LADDER = ("1080p", "720p", "480p", "360p")
SMOKE_LADDER = ("360p", "240p")
MIB = 1024 * 1024
ROLE_ENV = "MEDIARUNNER_WORKER_ROLE"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--seconds", type=float, help="clip length (default 30, smoke 2)")
    parser.add_argument("--rows", type=int, help="job rows for beat (default 1000000, smoke 2000)")


class TreeSampler(threading.Thread):
    """Samples the Python processes of a worker's tree (the root and its descendants that are not
    ffmpeg/ffprobe) every ``period`` s until stopped; keeps the peaks of the RSS and PSS sums."""

    def __init__(self, pid: int, period: float = 0.2) -> None:
        super().__init__(daemon=True)
        self.root, self.period, self.stopped = psutil.Process(pid), period, threading.Event()
        self.peak: dict[str, float] = dict.fromkeys(("rss_mib", "pss_mib", "uss_mib", "max_rss_mib", "main_rss_mib",
                                                     "children_rss_mib"), 0.0)
        self.samples = 0
        self.most_processes = 0

    def _python(self) -> list[psutil.Process]:
        procs = [self.root]
        for p in self.root.children(recursive=True):
            try:
                if "python" in p.name() or "celery" in " ".join(p.cmdline()[:3]):
                    procs.append(p)
            except psutil.Error:
                continue
        return procs

    def now(self) -> dict[str, float]:
        rss = pss = uss = main = largest = 0.0
        procs = self._python()
        for p in procs:
            try:
                full = p.memory_full_info()
            except psutil.Error:
                continue
            rss += full.rss / MIB
            pss += getattr(full, "pss", full.rss) / MIB
            uss += getattr(full, "uss", full.rss) / MIB
            largest = max(largest, full.rss / MIB)
            if p.pid == self.root.pid:
                main = full.rss / MIB
        self.most_processes = max(self.most_processes, len(procs))
        return {"rss_mib": rss, "pss_mib": pss, "uss_mib": uss, "max_rss_mib": largest, "main_rss_mib": main,
                "children_rss_mib": rss - main}

    def run(self) -> None:
        while not self.stopped.is_set():
            with_errors = self.now()
            self.samples += 1
            for k, v in with_errors.items():
                self.peak[k] = max(self.peak[k], v)
            self.stopped.wait(self.period)

    def stop(self) -> dict[str, float]:
        self.stopped.set()
        self.join()
        return dict(self.peak)


def worker_peak(tmp: Path, url: str, smoke: bool, seconds: float) -> dict[str, Any]:
    """Peak memory of one ``celery worker -c 1`` while it runs one ladder."""
    size = "640x360" if smoke else "1920x1080"
    ladder = SMOKE_LADDER if smoke else LADDER
    src = cached_clip(seconds, size)
    with private_redis(tmp) as redis, make_stack(tmp, url, redis.url, **production_overrides(smoke)) as stack:
        (worker,) = start_workers(stack, [{"name": "memory", "concurrency": 1}])
        assert worker.proc is not None
        sampler = TreeSampler(worker.proc.pid)
        idle = sampler.now()
        sampler.start()
        t0 = time.perf_counter()
        try:
            client = stack.client()
            root = client.submit_transcode(str(src), str(tmp / "outputs" / "ladder"), renditions=list(ladder),
                                           formats=("hls", "mp4"))
            done = client.wait(root.id, timeout=max(300.0, seconds * 40))
            bad = [(j.type.value, j.state.value, j.error) for j in done.family if j.state is not JobState.COMPLETED]
            if bad:
                raise RuntimeError(f"ladder did not complete: {bad}")
        finally:
            peak = sampler.stop()
            stop_workers(stack)
    return {"idle": idle, "peak": peak, "samples": sampler.samples, "processes": sampler.most_processes,
            "ladder_s": time.perf_counter() - t0, "clip": f"{seconds:g} s {size}", "ladder": list(ladder)}


def _ranked(pg_url: str) -> int:
    with psycopg.connect(pg_url) as conn:
        row = conn.execute("SELECT count(*) FROM job_ranks").fetchone()
    return int(row[0]) if row else 0


def beat_peak(tmp: Path, url: str, rows: int) -> dict[str, Any]:
    """Peak memory of ``mediarunner beat``'s process tree over a job table of ``rows`` rows."""
    pg_url = url.replace("postgresql+psycopg://", "postgresql://")
    with private_redis(tmp) as redis, make_stack(tmp, url, redis.url, **production_overrides(False)) as stack:
        # filled after make_stack, whose sweep of a test's leftovers cancels every active job
        fill = scheduler_scale._grow(pg_url, rows, utcnow(), random.Random(42), first=True)
        pending = scheduler_scale._counts(pg_url).get("pending", 0)
        interval = stack.settings().beat_interval_seconds
        (beat,) = start_workers(stack, [{"name": "beat", "queues": "scheduler", "concurrency": 1, "beat": True,
                                         "extra_env": {ROLE_ENV: "scheduler"}}])
        assert beat.proc is not None
        sampler = TreeSampler(beat.proc.pid)
        idle = sampler.now()
        sampler.start()
        t0 = time.perf_counter()
        try:
            # The backlog ranked (the ticks' fail-over and outbox claims may move a few jobs on).
            wait_for(lambda: _ranked(pg_url) >= pending * 0.9, timeout=60 if rows < 100_000 else 600, interval=0.5,
                     what="beat to rank the backlog")
            ranked_after = time.perf_counter() - t0
            end = time.monotonic() + 10 * interval
            wait_for(lambda: time.monotonic() >= end, timeout=60 + 10 * interval, interval=interval,
                     what="ten more beat intervals")
        finally:
            peak = sampler.stop()
            stop_workers(stack)
    return {"idle": idle, "peak": peak, "samples": sampler.samples, "processes": sampler.most_processes,
            "rows": rows, "pending": pending, "fill": fill, "ranked_after_s": ranked_after}


def _add(res: BenchResult, label: str, m: dict[str, Any], goal: float, what: str) -> None:
    peak, idle = m["peak"], m["idle"]
    res.add(f"{label}: peak PSS (sum)", peak["pss_mib"], "MiB", goal=("<", goal),
            note=f"{what}; {m['processes']} Python process(es); shared pages divided among their sharers")
    res.add(f"{label}: peak RSS (sum)", peak["rss_mib"], "MiB",
            note=f"main {peak['main_rss_mib']:.0f} + others {peak['children_rss_mib']:.0f} MiB; a page shared by "
                 f"fork counts once per process; largest process {peak['max_rss_mib']:.0f} MiB")
    res.add(f"{label}: peak USS (sum)", peak["uss_mib"], "MiB", note="pages no other process shares")
    res.add(f"{label}: idle", idle["pss_mib"], "MiB", note=f"PSS sum at start; RSS sum {idle['rss_mib']:.0f} MiB")


def run(smoke: bool = False, seconds: float | None = None, rows: int | None = None) -> BenchResult:
    seconds = seconds or (2.0 if smoke else 30.0)
    rows = rows or (2000 if smoke else 1_000_000)
    res = BenchResult(NAME, TITLE, smoke, params={"clip_seconds": seconds, "rows": rows, "sample_period_s": 0.2,
                                                   "worker": "celery worker -P prefork -c 1",
                                                   "beat": "celery worker -P solo --beat-thread -Q scheduler "
                                                           "(scheduler role)",
                                                   "goal_figure": "PSS summed over the process tree"})
    with bench_tmp(NAME) as tmp:
        (tmp / "w").mkdir()
        (tmp / "b").mkdir()
        with database("postgresql", tmp / "w") as url:
            w = worker_peak(tmp / "w", url, smoke, seconds)
        _add(res, "worker", w, 150.0, f"{w['clip']} → {'/'.join(w['ladder'])} HLS+MP4, {w['ladder_s']:.0f} s, "
                                      "ffmpeg excluded")
        with database("postgresql", tmp / "b") as url:
            b = beat_peak(tmp / "b", url, rows)
        _add(res, "beat", b, 200.0, f"{rows:,} job rows ({b['pending']:,} pending), ranked after "
                                    f"{b['ranked_after_s']:.0f} s, then 10 intervals")
    res.details = {"worker": w, "beat": b}
    return res


def main(argv: Sequence[str] | None = None) -> int:
    return cli(sys.modules[__name__], list(argv) if argv is not None else None)


if __name__ == "__main__":
    sys.exit(main())
