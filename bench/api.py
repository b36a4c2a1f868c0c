"""(7) The HTTP API beside the Python ``Client``, in the same run on the same database and broker.
Goal: API submit p50 within 2x of ``Client.submit_transcode``, >= 200 API submissions/s.

``python -m bench.api [--smoke] [--json out.json] [--requests 500] [--concurrency 8] [--workers 1]
[--db postgresql|sqlite]``

What is measured: ``POST /v1/jobs/transcode`` against the real server (``mediarunner api``, uvicorn
on loopback, keep-alive httpx clients, an API key with read+submit) vs ``Client.submit_transcode``
with the same arguments in this process; and ``GET /v1/jobs/{id}`` vs ``Client.get``. No worker
consumes the queue, so only submission is timed: each job stays pending.

* Latency: one call at a time, the two sides interleaved call by call (Client, API, API, Client,
  ...), so that a change in the machine's load hits both alike: p50/p99 of each call, and calls/s
  as the inverse of the mean latency.
* Throughput: ``--concurrency`` threads submitting at once (each API thread with its own
  keep-alive connection, the Client threads sharing one ``Client`` as the server does), the two
  sides one after the other, twice (Client, API, API, Client) and summed: submissions/s.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import threading
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
    parser.add_argument("--concurrency", type=int, help="submitting threads of the throughput part (default 8)")
    parser.add_argument("--workers", type=int, help="uvicorn worker processes of the server (default 1)")
    parser.add_argument("--db", help="postgresql or sqlite (default: postgresql when reachable)")


Samples = dict[str, tuple[list[float], list[Any]]]


def _interleaved(n: int, warmup: int, calls: dict[str, Callable[[int], Any]]) -> Samples:
    """Latencies (ms) and results of ``n`` calls of each kind after ``warmup`` unmeasured ones,
    the kinds taking turns call by call (their order reversed every other round)."""
    for i in range(warmup):
        for call in calls.values():
            call(-1 - i)
    out: Samples = {k: ([], []) for k in calls}
    names = list(calls)
    for i in range(n):
        for name in names if i % 2 == 0 else reversed(names):
            t = time.perf_counter()
            result = calls[name](i)
            out[name][0].append((time.perf_counter() - t) * 1000)
            out[name][1].append(result)
    return out


def _concurrent(total: int, threads: int, make: Callable[[], Callable[[int], Any]]) -> tuple[int, float]:
    """``total`` calls from ``threads`` threads at once (each with its own ``make()``): (calls, seconds)."""
    per = max(1, total // threads)
    callers = [make() for _ in range(threads)]
    barrier = threading.Barrier(threads + 1)

    def worker(call: Callable[[int], Any]) -> None:
        barrier.wait()
        for i in range(per):
            call(i)

    pool = [threading.Thread(target=worker, args=(c,)) for c in callers]
    for t in pool:
        t.start()
    barrier.wait()
    t0 = time.perf_counter()
    for t in pool:
        t.join()
    return per * threads, time.perf_counter() - t0


def _server(port: int, log: Path, workers: int) -> subprocess.Popen[bytes]:
    cmd = [sys.executable, "-c", "from mediarunner.cli import main; main()", "api", "--host", "127.0.0.1",
           "--port", str(port), "--workers", str(workers), "--log-level", "warning"]
    with open(log, "wb") as out:
        return subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=dict(os.environ))


def _up(url: str) -> bool:
    try:
        return httpx.get(f"{url}/healthz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


class Http:
    """Keep-alive httpx clients with the key (one per thread), closed together."""

    def __init__(self, base: str, key: str) -> None:
        self.base, self.key, self.opened = base, key, list[httpx.Client]()

    def new(self) -> httpx.Client:
        self.opened.append(httpx.Client(base_url=self.base, headers={"Authorization": f"Bearer {self.key}"},
                                        timeout=30))
        return self.opened[-1]

    def poster(self, body: dict[str, Any]) -> Callable[[int], str]:
        h = self.new()

        def post(_: int) -> str:
            r = h.post("/v1/jobs/transcode", json=body)
            if r.status_code != 201:
                raise RuntimeError(f"POST /v1/jobs/transcode: {r.status_code} {r.text[:200]}")
            return str(r.json()["id"])
        return post

    def close(self) -> None:
        for c in self.opened:
            c.close()


def measure(url: str, redis_url: str, tmp: Path, n: int, warmup: int, smoke: bool, concurrency: int,
            workers: int) -> dict[str, Any]:
    from mediarunner.api.keys import ApiKeys

    with make_stack(tmp, url, redis_url, **production_overrides(smoke)) as stack:
        src = tmp / "in.mp4"
        src.write_bytes(b"\0" * 1024)  # submission only checks that a local input exists
        out = str(stack.tmp / "outputs" / "bench")
        client = stack.client()
        port = free_port()
        http = Http(f"http://127.0.0.1:{port}", ApiKeys(stack.settings()).create("bench", ["read", "submit"])[1])
        server = _server(port, tmp / "api.log", workers)
        body = {"input": str(src), "output": out, "renditions": ["240p"]}

        def submit(_: int) -> str:
            return client.submit_transcode(str(src), out, ["240p"]).id

        try:
            wait_for(lambda: _up(http.base), 60, what="the API server to answer /healthz")
            h = http.new()

            def get(i: int) -> None:
                if h.get(f"/v1/jobs/{ids[i % len(ids)]}").status_code != 200:
                    raise RuntimeError("GET /v1/jobs/{id} failed")

            subs = _interleaved(n, warmup, {"client_submit": submit, "api_submit": http.poster(body)})
            ids = subs["client_submit"][1] + subs["api_submit"][1]
            gets = _interleaved(n, warmup, {"client_get": lambda i: client.get(ids[i % len(ids)]), "api_get": get})
            rounds = [_concurrent(n, concurrency, make) for make in
                      (lambda: submit, lambda: http.poster(body), lambda: http.poster(body), lambda: submit)]
        finally:
            http.close()
            server.terminate()
            server.wait(10)
    return _samples({**subs, **gets}, rounds)


def _samples(timed: Samples, rounds: list[tuple[int, float]]) -> dict[str, Any]:
    samples: dict[str, Any] = {k: {"ms": v[0], "per_s": 1000 / statistics.fmean(v[0])} for k, v in timed.items()}
    for name, (a, b) in (("client_concurrent", (rounds[0], rounds[3])), ("api_concurrent", (rounds[1], rounds[2]))):
        samples[name] = {"calls": a[0] + b[0], "seconds": a[1] + b[1], "per_s": (a[0] + b[0]) / (a[1] + b[1])}
    return samples


def run(smoke: bool = False, requests: int | None = None, db: str | None = None, concurrency: int | None = None,
        workers: int | None = None) -> BenchResult:
    n = requests or (20 if smoke else 500)
    warmup = 5 if smoke else 30
    kind, threads, procs = db or default_db(), concurrency or (2 if smoke else 8), workers or 1
    res = BenchResult(NAME, TITLE, smoke, params={
        "requests": n, "warmup": warmup, "db": kind, "concurrency": threads,
        "server": f"mediarunner api --workers {procs} (uvicorn, loopback)",
        "client": "httpx keep-alive; latency: one call at a time, interleaved with Client; no worker consuming"})
    with bench_tmp(NAME) as tmp, private_redis(tmp) as redis:
        try:
            with database(kind, tmp) as url:
                samples = measure(url, redis.url, tmp, n, warmup, smoke, threads, procs)
        except Unavailable as exc:
            res.add(f"{kind}: not available", None, note=str(exc))
            return res
    s = {k: summary(v["ms"]) for k, v in samples.items() if "ms" in v}
    for what, api, py in (("submit transcode", "api_submit", "client_submit"), ("get job", "api_get", "client_get")):
        res.add(f"{what}: Client p50", s[py]["p50"], "ms", note=f"p99 {s[py]['p99']:.1f} ms")
        res.add(f"{what}: API p50", s[api]["p50"], "ms", note=f"p99 {s[api]['p99']:.1f} ms")
        res.add(f"{what}: API p99", s[api]["p99"], "ms")
        res.add(f"{what}: ratio API/Client p50", s[api]["p50"] / s[py]["p50"], "x",
                goal=("<=", 2.0) if what.startswith("submit") else None)
        res.add(f"{what}: Client calls/s", samples[py]["per_s"], "/s", note="one at a time")
        res.add(f"{what}: API calls/s", samples[api]["per_s"], "/s", note="one at a time")
    res.add("submit transcode: Client submissions/s", samples["client_concurrent"]["per_s"], "/s",
            note=f"{threads} threads")
    res.add("submit transcode: API submissions/s", samples["api_concurrent"]["per_s"], "/s", goal=(">=", 200.0),
            note=f"{threads} connections")
    res.details = {"summary_ms": s, "per_s": {k: v["per_s"] for k, v in samples.items()},
                   "concurrent": {k: samples[k] for k in ("client_concurrent", "api_concurrent")}}
    return res


def main(argv: list[str] | None = None) -> int:
    return cli(sys.modules[__name__], argv)


if __name__ == "__main__":
    sys.exit(main())
