"""(7) The HTTP API beside the Python ``Client``, in the same run on the same database and broker.
Goal: API submit p50 within 2x of ``Client.submit_transcode``, >= 200 API submissions/s.

``python -m bench.api [--smoke] [--json out.json] [--requests 500] [--db postgresql|sqlite]``

What is measured: ``POST /v1/jobs/transcode`` against the real server (``mediarunner api``, one
uvicorn process on loopback, keep-alive httpx client, an API key with read+submit) vs
``Client.submit_transcode`` with the same arguments in this process; and ``GET /v1/jobs/{id}`` vs
``Client.get``. One request at a time (latency p50/p99 of each call, and calls/s over the whole
sequence). No worker consumes the queue, so only submission is timed: each job stays pending.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from bench.common import (
    BenchResult,
    Unavailable,
    bench_tmp,
    cli,
    database,
    default_db,
    make_stack,
    private_redis,
    production_overrides,
    summary,
    wait_for,
)
from tests.support import free_port

NAME = "api"
TITLE = "HTTP API vs Client: submit and get, one call at a time"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--requests", type=int, help="measured calls per kind (default 500, smoke 20)")
    parser.add_argument("--db", help="postgresql or sqlite (default: postgresql when reachable)")


def _timed(n: int, warmup: int, call: Callable[[int], Any]) -> tuple[list[float], float, list[Any]]:
    """Latencies (ms) of ``n`` calls after ``warmup`` unmeasured ones, calls/s, and the results."""
    for i in range(warmup):
        call(-1 - i)
    ms, out = [], []
    t0 = time.perf_counter()
    for i in range(n):
        t = time.perf_counter()
        out.append(call(i))
        ms.append((time.perf_counter() - t) * 1000)
    return ms, n / (time.perf_counter() - t0), out


def _server(port: int, log: Path) -> subprocess.Popen[bytes]:
    cmd = [sys.executable, "-c", "from mediarunner.cli import main; main()", "api", "--host", "127.0.0.1",
           "--port", str(port), "--log-level", "warning"]
    with open(log, "wb") as out:
        return subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=dict(os.environ))


def _up(url: str) -> bool:
    try:
        return httpx.get(f"{url}/healthz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def measure(url: str, redis_url: str, tmp: Path, n: int, warmup: int, smoke: bool) -> dict[str, Any]:
    from mediarunner.api.keys import ApiKeys

    with make_stack(tmp, url, redis_url, **production_overrides(smoke)) as stack:
        src = tmp / "in.mp4"
        src.write_bytes(b"\0" * 1024)  # submission only checks that a local input exists
        out = str(stack.tmp / "outputs" / "bench")
        client = stack.client()
        key = ApiKeys(stack.settings()).create("bench", ["read", "submit"])[1]
        port = free_port()
        server = _server(port, tmp / "api.log")
        base = f"http://127.0.0.1:{port}"
        try:
            wait_for(lambda: _up(base), 60, what="the API server to answer /healthz")
            body = {"input": str(src), "output": out, "renditions": ["240p"]}
            with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {key}"}, timeout=30) as http:
                def post(_: int) -> str:
                    r = http.post("/v1/jobs/transcode", json=body)
                    if r.status_code != 201:
                        raise RuntimeError(f"POST /v1/jobs/transcode: {r.status_code} {r.text[:200]}")
                    return str(r.json()["id"])

                def get(i: int) -> None:
                    if http.get(f"/v1/jobs/{ids[i % len(ids)]}").status_code != 200:
                        raise RuntimeError("GET /v1/jobs/{id} failed")

                c_submit = _timed(n, warmup, lambda _: client.submit_transcode(str(src), out, ["240p"]).id)
                a_submit = _timed(n, warmup, post)
                ids = a_submit[2] + c_submit[2]
                c_get = _timed(n, warmup, lambda i: client.get(ids[i % len(ids)]))
                a_get = _timed(n, warmup, get)
        finally:
            server.terminate()
            server.wait(10)
    return {name: {"ms": s[0], "per_s": s[1]} for name, s in
            {"client_submit": c_submit, "api_submit": a_submit, "client_get": c_get, "api_get": a_get}.items()}


def run(smoke: bool = False, requests: int | None = None, db: str | None = None) -> BenchResult:
    n = requests or (20 if smoke else 500)
    warmup = 5 if smoke else 30
    kind = db or default_db()
    res = BenchResult(NAME, TITLE, smoke, params={
        "requests": n, "warmup": warmup, "db": kind, "server": "mediarunner api (1 uvicorn process, loopback)",
        "client": "httpx keep-alive, one call at a time; no worker consuming"})
    with bench_tmp(NAME) as tmp, private_redis(tmp) as redis:
        try:
            with database(kind, tmp) as url:
                samples = measure(url, redis.url, tmp, n, warmup, smoke)
        except Unavailable as exc:
            res.add(f"{kind}: not available", None, note=str(exc))
            return res
    s = {k: summary(v["ms"]) for k, v in samples.items()}
    for what, api, py in (("submit transcode", "api_submit", "client_submit"), ("get job", "api_get", "client_get")):
        res.add(f"{what}: Client p50", s[py]["p50"], "ms", note=f"p99 {s[py]['p99']:.1f} ms")
        res.add(f"{what}: API p50", s[api]["p50"], "ms", note=f"p99 {s[api]['p99']:.1f} ms")
        res.add(f"{what}: API p99", s[api]["p99"], "ms")
        res.add(f"{what}: ratio API/Client p50", s[api]["p50"] / s[py]["p50"], "x",
                goal=("<=", 2.0) if what.startswith("submit") else None)
        res.add(f"{what}: Client calls/s", samples[py]["per_s"], "/s")
        res.add(f"{what}: API calls/s", samples[api]["per_s"], "/s",
                goal=(">=", 200.0) if what.startswith("submit") else None)
    res.details = {"summary_ms": s, "per_s": {k: v["per_s"] for k, v in samples.items()}}
    return res


def main(argv: list[str] | None = None) -> int:
    return cli(sys.modules[__name__], argv)


if __name__ == "__main__":
    sys.exit(main())
