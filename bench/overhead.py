"""(1) Orchestration overhead: a 30 s 720p clip into the 720p/480p/360p HLS ladder,
(a) through mediarunner end to end (submit -> every job completed; one warm worker, ``-c 1``) vs
(b) the per-rung ffmpeg command lines run directly one after the other, and vs the anchor
(c) one ffmpeg invocation that decodes the source once and encodes every rung (``split`` +
``scale`` per rung, the same encoder settings), then HLS packaging of each MP4 by stream copy:
what a careful operator runs on one machine. Goal: a/c <= 1.05 (a/b is shown beside it).

``python -m bench.overhead [--smoke] [--json out.json] [--seconds 30] [--repeats 3] [--db postgresql]``

(a) is measured from the job table: submit call start -> the last job's ``finished_at`` (the same
host clock), so the client's polling interval does not count. The three sides run in a rotating
order (a b c, b c a, c a b, ...) and the medians are compared. All sides use the worker's settings
(preset, threads); the worker also probes the input, describes each variant and publishes
atomically: that is overhead too.

"Inside jobs, outside ffmpeg" is measured directly, so that a busy machine (whose ffmpeg times
move by more than the whole overhead between runs) does not drown it: every side runs ffmpeg
through a bash wrapper that logs ``$EPOCHREALTIME`` around it (no process of its own), and the
time the ffmpeg processes ran is subtracted from the jobs' run times (claim -> completion).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
from pathlib import Path
from typing import Any

from bench.common import (
    BenchResult,
    bench_tmp,
    cached_clip,
    cli,
    database,
    default_db,
    make_stack,
    private_redis,
    production_overrides,
    start_workers,
    stop_workers,
)
from bench.ladder import LADDER, ffmpeg_commands, one_command, run_commands, run_ladders

NAME = "overhead"
TITLE = "Orchestration overhead: HLS ladder through mediarunner vs plain ffmpeg"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--seconds", type=float, help="clip length (default 30, smoke 1)")
    parser.add_argument("--repeats", type=int, help="measurements of each side (default 3, smoke 1)")
    parser.add_argument("--db", choices=["postgresql", "sqlite"], help="job table (default: PostgreSQL if up)")


WRAPPER = """#!/bin/bash
s=$EPOCHREALTIME
{ffmpeg} "$@"
rc=$?
echo "$s $EPOCHREALTIME" >> "$MEDIARUNNER_BENCH_FFMPEG_LOG"
exit $rc
"""


def ffmpeg_wrapper(tmp: Path, ffmpeg: str = "ffmpeg") -> tuple[Path, Path]:
    """A bash script that runs ``ffmpeg`` and appends its start and end (``$EPOCHREALTIME``: no
    ``date`` process) to the file named by ``MEDIARUNNER_BENCH_FFMPEG_LOG``; and that file."""
    script, log = tmp / "ffmpeg-timed", tmp / "ffmpeg-times.log"
    script.write_text(WRAPPER.format(ffmpeg=ffmpeg))
    script.chmod(0o755)
    log.touch()
    return script, log


def ffmpeg_seconds(log: Path) -> tuple[float, int]:
    """Seconds the logged ffmpeg runs took, and how many there were; the log is emptied."""
    lines = log.read_text().splitlines()
    log.write_text("")
    spans = [float(b) - float(a) for a, b in (line.split()[:2] for line in lines if line.strip())]
    return sum(spans), len(spans)


def run(smoke: bool = False, seconds: float | None = None, repeats: int | None = None,
        db: str | None = None) -> BenchResult:
    seconds = seconds or (1.0 if smoke else 30.0)
    repeats = repeats or (1 if smoke else 3)
    db = db or default_db()
    res = BenchResult(NAME, TITLE, smoke, params={
        "clip": f"{seconds:g} s 1280x720 25 fps H.264/AAC (testsrc2)", "ladder": list(LADDER), "formats": ["hls"],
        "repeats": repeats, "db": db, "worker": "1 prefork worker, -c 1, not pinned",
        "x264_preset": production_overrides(smoke)["MEDIARUNNER_X264_PRESET"]})
    src = cached_clip(seconds)
    warm = cached_clip(1.0)
    timeout = max(120.0, seconds * 20)
    with bench_tmp(NAME) as tmp:
        wrapper, log = ffmpeg_wrapper(tmp)
        env = {"MEDIARUNNER_FFMPEG_PATH": str(wrapper), "MEDIARUNNER_BENCH_FFMPEG_LOG": str(log)}
        saved = os.environ.get("MEDIARUNNER_BENCH_FFMPEG_LOG")
        os.environ["MEDIARUNNER_BENCH_FFMPEG_LOG"] = str(log)  # the direct side's runs log there too
        try:
            a, b, c, cmds, one = _measure(tmp, db, src, warm, timeout, repeats, smoke, env, log)
        finally:
            if saved is None:
                os.environ.pop("MEDIARUNNER_BENCH_FFMPEG_LOG", None)
            else:
                os.environ["MEDIARUNNER_BENCH_FFMPEG_LOG"] = saved
    inside_ff = statistics.median(r["busy_s"] - r["ffmpeg_s"] for r in a)
    a_s = statistics.median(r["e2e_s"] for r in a)
    busy = statistics.median(r["busy_s"] for r in a)
    b_s, c_s = statistics.median(b), statistics.median(c)
    layouts = sorted({str(f.get("layout")) for r in a for f in r["families"]})
    res.add("mediarunner, submit → completed (a)", a_s, "s", note=f"median of {repeats}; layout {', '.join(layouts)}")
    res.add("plain ffmpeg, one command per rung (b)", b_s, "s", note=f"median of {repeats}")
    res.add("plain ffmpeg, one invocation for the ladder (c)", c_s, "s",
            note=f"median of {repeats}; one decode, split + scale per rung")
    res.add("ratio a/c (anchor: one invocation)", a_s / c_s, "x", goal=("<=", 1.05))
    res.add("ratio a/b", a_s / b_s, "x")
    res.add("overhead a - c", a_s - c_s, "s")
    res.add("  of which between jobs", a_s - busy, "s", note="queueing: submit → claim, parent → children")
    res.add("  of which inside jobs", busy - c_s, "s", note="probe, variants, DB, publish (and layout vs c)")
    res.add("  inside jobs, outside ffmpeg", inside_ff, "s", goal=("<=", 0.205),
            note="jobs' run time minus their ffmpeg processes' (median): half of 0.41 s")
    res.details = {"a": a, "b_s": b, "c_s": c, "ffmpeg_commands": [" ".join(x) for x in cmds],
                   "one_invocation": [" ".join(x) for x in one]}
    return res


def _measure(tmp: Path, db: str, src: Path, warm: Path, timeout: float, repeats: int, smoke: bool,
             env: dict[str, str], log: Path
             ) -> tuple[list[dict[str, Any]], list[float], list[float], list[list[str]], list[list[str]]]:
    a: list[dict[str, Any]] = []
    b: list[float] = []
    c: list[float] = []
    with private_redis(tmp) as redis, database(db, tmp) as url, \
            make_stack(tmp, url, redis.url, **production_overrides(smoke), **env) as stack:
        start_workers(stack, [{"name": "overhead", "concurrency": 1}])
        client = stack.client()
        outputs = tmp / "outputs"
        if not smoke:
            run_ladders(client, warm, [outputs / "warmup"], timeout)  # a warm worker: imports, connections
        cmds = ffmpeg_commands(src, tmp / "direct", stack.settings())
        one = one_command(src, tmp / "one", stack.settings())
        run_commands(cmds[:1])  # and a warm page cache for the direct side too
        for i in range(repeats):
            for side in ("abc" * 2)[i % 3:i % 3 + 3]:
                ffmpeg_seconds(log)
                if side == "a":
                    ladder = run_ladders(client, src, [outputs / f"run{i}"], timeout)
                    ladder["ffmpeg_s"], ladder["ffmpeg_runs"] = ffmpeg_seconds(log)
                    a.append(ladder)
                elif side == "b":
                    b.append(run_commands(cmds))
                else:
                    c.append(run_commands(one))
        stop_workers(stack)
    return a, b, c, cmds, one


def main(argv: list[str] | None = None) -> int:
    return cli(sys.modules[__name__], argv)


if __name__ == "__main__":
    sys.exit(main())
