"""Shared benchmark plumbing: result records, the command line, services, workers, clips, environment.

Services and worker processes come from ``tests.support`` (private redis-server, PostgreSQL
databases, ``make_stack``); this module only adds what benchmarks need on top: pinned workers
(``taskset``), other Celery apps (the raw-Celery baseline), parallel start/stop, cached clips.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import platform
import re
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import Any

import psycopg

from mediarunner.workers.clock import SCHEDULER_WORKER_ARGS
from tests.support import (
    PG_ADMIN,
    ROOT,
    RedisServer,
    Stack,
    Worker,
    drop_pg_database,
    make_clip,
    pg_available,
    wait_for,
)
from tests.support import make_stack as _test_stack

__all__ = [
    "ROOT", "BenchResult", "BenchWorker", "Metric", "Stack", "Unavailable", "bench_tmp", "cached_clip", "cli",
    "database", "default_db", "environment", "make_stack", "percentile", "pg_available", "private_redis",
    "production_overrides", "render_table", "start_workers", "stop_workers", "summary", "wait_for",
]

RESULTS_ENV = "MEDIARUNNER_BENCH_RESULTS"  # where latest.json goes (default bench/results, git-ignored)
CACHE_ENV = "MEDIARUNNER_BENCH_CACHE"  # where generated clips are kept (default <results>/cache)


def results_dir() -> Path:
    return Path(os.environ.get(RESULTS_ENV) or ROOT / "bench" / "results")


def cache_dir() -> Path:
    return Path(os.environ.get(CACHE_ENV) or results_dir() / "cache")


@contextlib.contextmanager
def make_stack(tmp: Path, database_url: str, broker_url: str, **overrides: str) -> Iterator[Stack]:
    """``tests.support.make_stack`` whose input roots also hold the clip cache (by default under
    the checkout, outside the temporary directory the test stacks allow)."""
    roots = overrides.pop("MEDIARUNNER_INPUT_ROOTS", None) or json.dumps([str(tmp.parent), str(cache_dir())])
    with _test_stack(tmp, database_url, broker_url, MEDIARUNNER_INPUT_ROOTS=roots, **overrides) as stack:
        yield stack


# --------------------------------------------------------------------------- results


class Unavailable(RuntimeError):
    """A benchmark (or part of one) cannot run here: missing service, module or hardware."""


@dataclass
class Metric:
    """One number in the results table. ``goal`` is e.g. ``("<=", 1.05)``; ``ok`` is derived."""

    name: str
    value: float | None
    unit: str = ""
    goal: tuple[str, float] | None = None
    note: str = ""

    @property
    def ok(self) -> bool | None:
        if self.goal is None or self.value is None:
            return None
        op, target = self.goal
        return {"<": self.value < target, "<=": self.value <= target, ">": self.value > target,
                ">=": self.value >= target}[op]

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "value": self.value, "unit": self.unit,
                "goal": f"{self.goal[0]} {self.goal[1]:g}" if self.goal else None, "ok": self.ok,
                "note": self.note}


@dataclass
class BenchResult:
    bench: str
    title: str
    smoke: bool
    params: dict[str, Any] = field(default_factory=dict)
    metrics: list[Metric] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)  # raw samples, per-job timings
    available: bool = True
    reason: str | None = None  # why not available (or the error that stopped it)
    seconds: float = 0.0  # how long the benchmark itself took

    def add(self, name: str, value: float | None, unit: str = "", goal: tuple[str, float] | None = None,
            note: str = "") -> Metric:
        m = Metric(name, None if value is None else float(value), unit, goal, note)
        self.metrics.append(m)
        return m

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["metrics"] = [m.to_dict() for m in self.metrics]
        return d


def percentile(values: Sequence[float], p: float) -> float:
    """Linear-interpolated percentile (p in 0..100) of a non-empty sample."""
    xs = sorted(values)
    if not xs:
        raise ValueError("percentile of an empty sample")
    k = (len(xs) - 1) * p / 100
    lo, hi = math.floor(k), math.ceil(k)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)


def summary(values: Sequence[float]) -> dict[str, float]:
    return {"n": len(values), "min": min(values), "p50": percentile(values, 50), "p95": percentile(values, 95),
            "p99": percentile(values, 99), "max": max(values), "mean": statistics.fmean(values)}


def fmt_value(value: float | None) -> str:
    if value is None:
        return "-"
    if value == 0 or abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:.3g}" if abs(value) < 1 else f"{value:.2f}"


def render_table(results: Sequence[BenchResult], title: str = "mediarunner benchmarks") -> None:
    from rich.console import Console
    from rich.table import Table

    smoke = any(r.smoke for r in results)
    table = Table(title=title + ("  [bold red](SMOKE sizes: numbers are not meaningful)[/]" if smoke else ""))
    for col, justify in (("benchmark", "left"), ("metric", "left"), ("value", "right"), ("unit", "left"),
                         ("goal", "left"), ("", "center"), ("note", "left")):
        table.add_column(col, justify=justify)  # type: ignore[arg-type]
    for r in results:
        if not r.available:
            table.add_row(r.bench, "[yellow]not available[/]", "", "", "", "", r.reason or "")
            continue
        for i, m in enumerate(r.metrics):
            mark = {True: "[green]✓[/]", False: "[red]✗[/]", None: ""}[m.ok]
            goal = f"{m.goal[0]} {m.goal[1]:g}" if m.goal else ""
            table.add_row(r.bench if i == 0 else "", m.name, fmt_value(m.value), m.unit, goal, mark, m.note)
        table.add_section()
    Console(width=max(140, Console().width)).print(table)


# --------------------------------------------------------------------------- command line


def comma_list(*allowed: str) -> Callable[[str], str]:
    """An argparse ``type`` for a comma-separated subset of ``allowed`` (``--db``, ``--brokers``):
    anything else is a one-line usage error, not a traceback from inside the benchmark."""
    def check(text: str) -> str:
        items = [x.strip() for x in text.split(",") if x.strip()]
        unknown = [x for x in items if x not in allowed]
        if unknown or not items:
            raise argparse.ArgumentTypeError(f"{text!r}: choose from {', '.join(allowed)}")
        return ",".join(items)

    return check


def cli(module: ModuleType, argv: Sequence[str] | None = None) -> int:
    """``python -m bench.<name> [--smoke] [--json out.json] [options]``: run one benchmark, print, save.

    ``module`` provides ``NAME``, ``TITLE``, ``run(smoke=..., **options) -> BenchResult`` and
    optionally ``add_arguments(parser)``.
    """
    parser = argparse.ArgumentParser(prog=f"python -m bench.{module.NAME}", description=module.TITLE)
    parser.add_argument("--smoke", action="store_true", help="tiny sizes: checks the script works, not speed")
    parser.add_argument("--json", type=Path, help="write the result here as JSON")
    if hasattr(module, "add_arguments"):
        module.add_arguments(parser)
    args = vars(parser.parse_args(argv))
    out: Path | None = args.pop("json")
    result = timed_run(module, **args)
    render_table([result])
    if out is not None:
        write_json(out, {"environment": environment(), "results": [result.to_dict()]})
        print(f"wrote {out}")
    return 0


def timed_run(module: ModuleType, *, catch: bool = False, **kwargs: Any) -> BenchResult:
    """Run ``module.run(**kwargs)``; an :class:`Unavailable` becomes a "not available" result, and with
    ``catch`` any other error becomes a failed result (so one broken benchmark does not stop the rest)."""
    t0 = time.perf_counter()
    try:
        result: BenchResult = module.run(**kwargs)
    except Unavailable as exc:
        result = BenchResult(module.NAME, module.TITLE, bool(kwargs.get("smoke")), available=False,
                             reason=f"not available: {exc}")
    except Exception as exc:
        if not catch:
            raise
        result = BenchResult(module.NAME, module.TITLE, bool(kwargs.get("smoke")), available=False,
                             reason=f"ERROR {type(exc).__name__}: {exc}"[:2000])
        result.details["traceback"] = traceback.format_exc()
    result.seconds = round(time.perf_counter() - t0, 3)
    return result


def write_json(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, default=str) + "\n")
    tmp.replace(path)


# --------------------------------------------------------------------------- services


@contextlib.contextmanager
def bench_tmp(name: str) -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix=f"mr-bench-{name}-") as d:
        yield Path(d)


@contextlib.contextmanager
def private_redis(tmp: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp / "redis")
    server.start()
    try:
        yield server
    finally:
        server.stop()


@contextlib.contextmanager
def database(kind: str, tmp: Path) -> Iterator[str]:
    """A fresh, migrated database: ``sqlite`` (a file under ``tmp``) or ``postgresql`` (dropped after)."""
    from mediarunner.models.migrate import upgrade

    if kind == "sqlite":
        url = f"sqlite:///{tmp / f'bench-{uuid.uuid4().hex[:6]}.db'}"
        upgrade(url)
        yield url
        return
    if kind != "postgresql":
        raise ValueError(f"unknown database kind {kind!r}")
    if not pg_available():
        raise Unavailable(f"PostgreSQL not reachable at {PG_ADMIN} (set MEDIARUNNER_TEST_PG)")
    name = f"mr_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = PG_ADMIN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://") + f"/{name}"
    try:
        upgrade(url)
        yield url
    finally:
        drop_pg_database(url)


def default_db() -> str:
    """The job table benchmarks use unless told otherwise: PostgreSQL (production) when reachable."""
    return "postgresql" if pg_available() else "sqlite"


def production_overrides(smoke: bool) -> dict[str, str]:
    """``make_stack`` sets test-friendly knobs (ultrafast, 0.5 s heartbeats, 2 s segments); benchmarks
    use the production defaults instead, except that smoke runs keep ultrafast to stay quick."""
    return {
        "MEDIARUNNER_X264_PRESET": "ultrafast" if smoke else "veryfast",
        "MEDIARUNNER_HEARTBEAT_SECONDS": "2.0",
        "MEDIARUNNER_CANCEL_POLL_SECONDS": "0.5",
        "MEDIARUNNER_HLS_SEGMENT_SECONDS": "4",
        "MEDIARUNNER_TRANSCODE_PLANNER": "auto",
    }


# --------------------------------------------------------------------------- workers


@dataclass
class BenchWorker(Worker):
    """A ``tests.support.Worker`` that may run another Celery app, another pool, or pinned to CPUs."""

    app_module: str = "mediarunner.workers.app"
    pool: str = "prefork"
    cpus: str | None = None  # ``taskset -c`` list: the worker, its pool and every ffmpeg it starts

    def command(self) -> list[str]:
        # beat embedded as ``mediarunner beat`` runs it: one process (solo pool), beat a thread of it
        pool = [*SCHEDULER_WORKER_ARGS, "--schedule", str(self.log.with_suffix(".beat"))] if self.beat else [
            "-P", self.pool]
        cmd = [sys.executable, "-m", "celery", "-A", self.app_module, "worker", "-Q", self.queues,
               "-c", str(self.concurrency), *pool, "-n", self.hostname, "--loglevel", "INFO",
               "--without-mingle", "--without-gossip", "-E"]
        return (["taskset", "-c", self.cpus] if self.cpus else []) + cmd

    def start(self, wait: bool = True) -> None:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(self.command(), cwd=ROOT, env={**os.environ, **self.env}, stdout=out,
                                         stderr=subprocess.STDOUT, start_new_session=True)
        if wait:
            self.wait_ready()

    def wait_ready(self, timeout: float = 90) -> None:
        wait_for(lambda: b"ready." in self.log.read_bytes() or self._died(), timeout,
                 what=f"worker {self.name} to be ready")
        if self._died():
            raise RuntimeError(f"worker {self.name} died:\n{self.log.read_text()[-3000:]}")


def start_workers(stack: Stack, specs: Sequence[dict[str, Any]]) -> list[BenchWorker]:
    """Start several workers at once (each spec: BenchWorker fields; ``extra_env`` merged into the
    stack's env) and wait until all are ready. They are stopped with the stack, or by stop_workers."""
    workers = []
    for spec in specs:
        spec = dict(spec)
        extra = spec.pop("extra_env", {})
        name = spec.pop("name")
        w = BenchWorker(name=f"{name}-{uuid.uuid4().hex[:4]}", queues=spec.pop("queues", "cpu"),
                        concurrency=spec.pop("concurrency", 1), env={**stack.env, **extra},
                        log=stack.tmp / f"worker-{name}.log", **spec)
        w.start(wait=False)
        stack.workers.append(w)
        workers.append(w)
    for w in workers:
        w.wait_ready()
    return workers


def stop_workers(stack: Stack, workers: Sequence[Worker] | None = None) -> None:
    """Warm-stop workers in parallel (SIGTERM to every process group, then wait)."""
    targets = list(stack.workers if workers is None else workers)
    for w in targets:
        if w.proc and w.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(w.proc.pid, signal.SIGTERM)
    for w in targets:
        if w.proc is not None:
            try:
                w.proc.wait(20)
            except subprocess.TimeoutExpired:
                w.kill()
        if w in stack.workers:
            stack.workers.remove(w)


def distinct_cores(n: int) -> list[int] | None:
    """``n`` CPUs we may use that are not SMT siblings of each other (None if there are too few)."""
    allowed = sorted(os.sched_getaffinity(0))
    chosen: list[int] = []
    taken: set[int] = set()
    for cpu in allowed:
        if cpu in taken:
            continue
        chosen.append(cpu)
        sib = Path(f"/sys/devices/system/cpu/cpu{cpu}/topology/thread_siblings_list")
        taken |= _cpu_list(sib.read_text()) if sib.exists() else {cpu}
        if len(chosen) == n:
            return chosen
    return None


def _cpu_list(text: str) -> set[int]:
    out: set[int] = set()
    for part in text.strip().split(","):
        if "-" in part:
            a, b = part.split("-")
            out.update(range(int(a), int(b) + 1))
        elif part:
            out.add(int(part))
    return out


# --------------------------------------------------------------------------- media


def cached_clip(seconds: float, size: str = "1280x720") -> Path:
    """A synthetic clip (testsrc2 + sine, 25 fps, H.264/AAC) generated once and kept in the cache dir."""
    cache = cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    path = cache / f"clip-{size}-{seconds:g}s.mp4"
    if not path.exists():
        tmp = path.with_name(f".{path.stem}-{uuid.uuid4().hex[:6]}.mp4")
        make_clip(tmp, seconds=seconds, size=size)
        tmp.replace(path)
    return path


# --------------------------------------------------------------------------- environment


def _run(cmd: Sequence[str]) -> str:
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=20, check=False).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return ""


def _version(dist: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(dist)
    except PackageNotFoundError:
        return None


def environment() -> dict[str, Any]:
    """The machine, software versions and command line, recorded beside every result."""
    cpu = ""
    with contextlib.suppress(OSError):
        m = re.search(r"^model name\s*:\s*(.+)$", Path("/proc/cpuinfo").read_text(), re.M)
        cpu = m.group(1) if m else ""
    mem_gib = None
    with contextlib.suppress(OSError, AttributeError, ValueError):
        m2 = re.search(r"^MemTotal:\s+(\d+) kB", Path("/proc/meminfo").read_text(), re.M)
        mem_gib = round(int(m2.group(1)) / 2**20, 1) if m2 else None
    pg = None
    if pg_available():
        with contextlib.suppress(psycopg.Error), psycopg.connect(PG_ADMIN, connect_timeout=3) as conn:
            row = conn.execute("SHOW server_version").fetchone()
            pg = row[0] if row else None
    ffmpeg_line = _run(["ffmpeg", "-hide_banner", "-version"]).splitlines()
    return {
        "timestamp": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": _command_line(),
        "git_commit": _run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"]) or None,
        "git_dirty": bool(_run(["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no"])),
        "machine": {"cpu": cpu, "logical_cpus": os.cpu_count(), "usable_cpus": len(os.sched_getaffinity(0)),
                    "memory_gib": mem_gib, "kernel": platform.release(), "arch": platform.machine(),
                    "loadavg": os.getloadavg()},
        "versions": {
            "python": platform.python_version(), "celery": _version("celery"), "kombu": _version("kombu"),
            "sqlalchemy": _version("sqlalchemy"), "psycopg": _version("psycopg"), "redis-py": _version("redis"),
            "redis-server": (re.findall(r"v=(\S+)", _run(["redis-server", "--version"])) or [None])[0],
            "postgresql": pg, "sqlite": sqlite3.sqlite_version,
            "ffmpeg": ffmpeg_line[0].split()[2] if ffmpeg_line and len(ffmpeg_line[0].split()) > 2 else None,
            "mediarunner": _version("mediarunner"),
        },
    }


def _command_line() -> str:
    spec = getattr(sys.modules.get("__main__"), "__spec__", None)
    if spec is not None and spec.name.startswith("bench."):
        return " ".join(["python", "-m", spec.name, *sys.argv[1:]])
    return " ".join(sys.argv)
