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
(preset, threads); the worker also probes the input, measures each variant (ffprobe) and
publishes atomically: that is overhead too.
"""

from __future__ import annotations

import argparse
import statistics
import sys
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
    a: list[dict[str, Any]] = []
    b: list[float] = []
    c: list[float] = []
    with bench_tmp(NAME) as tmp, private_redis(tmp) as redis, database(db, tmp) as url, \
            make_stack(tmp, url, redis.url, **production_overrides(smoke)) as stack:
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
                if side == "a":
                    a.append(run_ladders(client, src, [outputs / f"run{i}"], timeout))
                elif side == "b":
                    b.append(run_commands(cmds))
                else:
                    c.append(run_commands(one))
        stop_workers(stack)
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
    res.add("  of which inside jobs", busy - c_s, "s", note="probe, ffprobe per variant, DB, publish")
    res.details = {"a": a, "b_s": b, "c_s": c, "ffmpeg_commands": [" ".join(x) for x in cmds],
                   "one_invocation": [" ".join(x) for x in one]}
    return res


def main(argv: list[str] | None = None) -> int:
    return cli(sys.modules[__name__], argv)


if __name__ == "__main__":
    sys.exit(main())
