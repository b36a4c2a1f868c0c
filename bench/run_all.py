"""Run every benchmark in one process, print one combined table, write ``bench/results/latest.json``.

``python -m bench.run_all [--smoke] [--only a,b] [--skip c] [--json extra-copy.json]`` (``make bench``)

A benchmark that cannot run here (no PostgreSQL, no second core, module missing) is listed as
"not available"; one that fails is listed with its error and the others still run (exit status 1).
Goals are shown (✓/✗) but never change the exit status: these are measurements, not tests.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from bench.common import BenchResult, environment, render_table, results_dir, timed_run, write_json

# Cheapest first, so a broken setup shows up early.
BENCHMARKS = ("transcription", "scheduler_scale", "db_scale", "api", "admin", "dispatch_latency", "rank_fidelity",
              "throughput", "overhead", "memory", "scaleout", "codecs", "remote_runner")


def run_all(names: Sequence[str], smoke: bool, progress: bool = True) -> list[BenchResult]:
    results = []
    for name in names:
        module = importlib.import_module(f"bench.{name}")
        if progress:
            print(f"== {name}{' (smoke)' if smoke else ''}: {module.TITLE}", flush=True)
        result = timed_run(module, catch=True, smoke=smoke)
        if progress:
            state = "ok" if result.available else result.reason
            print(f"   {result.seconds:.1f} s: {state}", flush=True)
        results.append(result)
    return results


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.run_all", description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="tiny sizes: checks the scripts work, not speed")
    parser.add_argument("--only", help=f"comma-separated subset of: {','.join(BENCHMARKS)}")
    parser.add_argument("--skip", default="", help="comma-separated benchmarks to leave out")
    parser.add_argument("--json", type=Path, help="also write a copy here (latest.json is always written)")
    args = parser.parse_args(argv)
    names = [n.strip() for n in args.only.split(",")] if args.only else list(BENCHMARKS)
    skip = {n.strip() for n in args.skip.split(",") if n.strip()}
    unknown = [n for n in [*names, *skip] if n not in BENCHMARKS]
    if unknown:
        parser.error(f"unknown benchmark(s) {unknown}; choose from {', '.join(BENCHMARKS)}")
    names = [n for n in names if n not in skip]

    env_before = environment()
    t0 = time.perf_counter()
    results = run_all(names, args.smoke)
    env_before["total_seconds"] = round(time.perf_counter() - t0, 1)
    env_before["loadavg_after"] = environment()["machine"]["loadavg"]
    render_table(results)
    data = {"environment": env_before, "smoke": args.smoke, "results": [r.to_dict() for r in results]}
    for path in {results_dir() / "latest.json", *([args.json] if args.json else [])}:
        write_json(path, data)
        print(f"wrote {path}")
    failed = [r.bench for r in results if not r.available and not (r.reason or "").startswith("not available")]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
