"""(8) A remote (HTTP) runner beside a Celery worker, in the same run on the same database.
Goals: the same ladder on one HTTP runner within 1.10x of one Celery worker; an idle HTTP
runner starts a job p50 < 100 ms after it is submitted.

``python -m bench.remote_runner [--smoke] [--json out.json] [--seconds 30] [--jobs 50] [--db postgresql|sqlite]``

What is measured: ``mediarunner api`` (one uvicorn process on loopback) and ``mediarunner runner
serve --concurrency 1`` (a real process with no database or broker settings: inputs and results
go through the API) against one Celery worker (``-c 1``). Each runs the same ladder of the same
clip (submit → completed, families in turn, alternating who goes first); then no-op jobs one at a
time to the idle runner: ``started_at - created_at`` (request→start latency: submit, the API's
long-poll watcher noticing, accept).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from bench.api import _server, _up
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
    summary,
    wait_for,
)
from tests.support import ROOT, free_port

NAME = "remote_runner"
TITLE = "HTTP runner vs Celery worker: the same ladder; request→start latency of an idle runner"
LADDER = ("720p", "480p", "360p")
QUEUE = "remote"
RUNNER_KEEPS = ("MEDIARUNNER_X264_PRESET", "MEDIARUNNER_HEARTBEAT_SECONDS", "MEDIARUNNER_CANCEL_POLL_SECONDS",
                "MEDIARUNNER_HLS_SEGMENT_SECONDS")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--seconds", type=float, help="clip length (default 30, smoke 1)")
    parser.add_argument("--jobs", type=int, help="no-op jobs for the latency (default 50, smoke 5)")
    parser.add_argument("--db", choices=["postgresql", "sqlite"], help="job table (default: PostgreSQL if up)")


def _runner(base: str, stack_env: dict[str, str], tmp: Path) -> subprocess.Popen[bytes]:
    """Register (the API on ``base``) and start ``mediarunner runner serve`` without database or broker settings."""
    from mediarunner.fleet import FleetService
    from mediarunner.runner import config

    token = FleetService().create_token("bench")
    got = httpx.post(f"{base}/v1/runner/register", json={"registration_token": token.secret, "name": "bench"}).json()
    home = tmp / "runner-home"
    config.save(home / "bench.json", config.Registration(base, got["id"], "bench", got["runner_token"]))
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEDIARUNNER_")}
    env.update({k: stack_env[k] for k in RUNNER_KEEPS if k in stack_env})
    env.update(MEDIARUNNER_RUNNER_HOME=str(home), MEDIARUNNER_SCRATCH_DIR=str(tmp / "runner-scratch"),
               PYTHONPATH=str(ROOT))
    cmd = [sys.executable, "-c", "from mediarunner.cli import main; main()", "runner", "serve", "--name", "bench"]
    with open(tmp / "runner.log", "wb") as out:
        return subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=tmp)


def _ladder(client: Any, src: Path, out: Path, queue: str, timeout: float) -> float:
    t0 = time.perf_counter()
    job = client.wait(client.submit_transcode(str(src), str(out), list(LADDER), queue=queue).id, timeout=timeout)
    if any(j.state != "completed" for j in job.family):
        raise RuntimeError(f"ladder on {queue}: {[(j.state, j.error) for j in job.family]}")
    return time.perf_counter() - t0


def measure(url: str, redis_url: str, tmp: Path, src: Path, jobs: int, smoke: bool) -> dict[str, Any]:
    overrides = {**production_overrides(smoke), "MEDIARUNNER_JOB_QUEUES": f'["cpu", "gpu", "{QUEUE}"]',
                 "MEDIARUNNER_REMOTE_QUEUES": f'["{QUEUE}"]'}
    timeout = 600.0
    with make_stack(tmp, url, redis_url, **overrides) as stack:
        client = stack.client()
        port = free_port()
        server = _server(port, tmp / "api.log", workers=1)
        base = f"http://127.0.0.1:{port}"
        runner = None
        try:
            wait_for(lambda: _up(base), 60, what="the API server to answer /healthz")
            runner = _runner(base, stack.env, tmp)
            start_workers(stack, [{"name": "celery", "concurrency": 1}])
            warm = tmp / "warm.mp4"
            shutil.copyfile(cached_clip(1.0), warm)
            for q in ("cpu", QUEUE):  # warm both: imports, connections, page cache
                _ladder(client, warm, tmp / "outputs" / f"warm-{q}", q, timeout)
            times: dict[str, list[float]] = {"cpu": [], QUEUE: []}
            for i, q in enumerate(("cpu", QUEUE, QUEUE, "cpu") if not smoke else ("cpu", QUEUE)):
                times[q].append(_ladder(client, src, tmp / "outputs" / f"run{i}", q, timeout))
            latency = []
            for _ in range(jobs):
                job = client.wait(client.submit_noop(queue=QUEUE).id, timeout=60)
                latency.append((job.started_at - job.created_at).total_seconds() * 1000)
        finally:
            if runner is not None:
                runner.terminate()
                runner.wait(30)
            server.terminate()
            server.wait(10)
    return {"celery_s": min(times["cpu"]), "runner_s": min(times[QUEUE]), "latency_ms": latency}


def run(smoke: bool = False, seconds: float | None = None, jobs: int | None = None,
        db: str | None = None) -> BenchResult:
    seconds = seconds or (1.0 if smoke else 30.0)
    jobs = jobs or (5 if smoke else 50)
    kind = db or default_db()
    res = BenchResult(NAME, TITLE, smoke, params={
        "clip": f"{seconds:g} s 1280x720 (testsrc2)", "ladder": list(LADDER), "latency jobs": jobs, "db": kind,
        "runner": "mediarunner runner serve --concurrency 1 (no database/broker settings)",
        "worker": "1 prefork Celery worker, -c 1", "server": "mediarunner api (1 uvicorn process, loopback)"})
    with bench_tmp(NAME) as tmp, private_redis(tmp) as redis, database(kind, tmp) as url:
        src = tmp / "in.mp4"  # inside the stack's input roots
        shutil.copyfile(cached_clip(seconds), src)
        m = measure(url, redis.url, tmp, src, jobs, smoke)
    lat = summary(m["latency_ms"])
    res.add("ladder: Celery worker", m["celery_s"], "s", note="submit → family completed, best run")
    res.add("ladder: HTTP runner", m["runner_s"], "s", note="submit → family completed, best run")
    res.add("ladder: ratio runner/worker", m["runner_s"] / m["celery_s"], "x", goal=("<=", 1.10))
    res.add("idle runner: p50 request→start", lat["p50"], "ms", goal=("<", 100.0))
    res.add("idle runner: p95 request→start", lat["p95"], "ms")
    res.details = {"latency_ms": m["latency_ms"]}
    return res


def main(argv: list[str] | None = None) -> int:
    return cli(sys.modules[__name__], argv)


if __name__ == "__main__":
    sys.exit(main())
