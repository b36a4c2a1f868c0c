"""(9) Web admin page times: each admin page rendered by the real app (in process, through ASGI)
with a 100k-row job table in PostgreSQL. Goal: every page < 200 ms server time (p95).

``python -m bench.admin [--smoke] [--json out.json] [--rows 100000] [--repeats 20]``

The table is filled as ``bench.scheduler_scale`` fills it (COPY, then VACUUM ANALYZE: 10 % pending,
1 % running, the rest completed families of 3), plus 20 registered runners with heartbeats. Pages:
the dashboard (eight cards, the hour's series, unserved queues), runners, one runner's diagnostics,
the jobs list (unfiltered and filtered by state), a job page (a family of 3), activity, tokens.
"""

from __future__ import annotations

import argparse
import random
import re
import time
from typing import Any

from bench.common import BenchResult, bench_tmp, cli, database, percentile, summary
from bench.scheduler_scale import _grow
from mediarunner.config import Settings
from mediarunner.models.base import utcnow

NAME = "admin"
TITLE = "Web admin: page server time with a 100k-row job table (PostgreSQL)"
GOAL_MS = 200.0
RUNNERS = 20


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--rows", type=int, help="job rows (default 100000; smoke 2000)")
    parser.add_argument("--repeats", type=int, help="requests per page (default 20; smoke 3)")


def _runners(settings: Settings) -> None:
    from mediarunner.models import runners
    from mediarunner.models.db import transaction
    from mediarunner.models.runners import RunnerInfo

    for i in range(RUNNERS):
        info = RunnerInfo(hostname=f"cpu{i}@bench", queues=("cpu",), concurrency=4, version="0.1.0",
                          capabilities={"ffmpeg": {"version": "5.1", "encoders": ["libx264", "aac"]}})
        transaction(lambda s, info=info: runners.register(s, info, None, utcnow()), url=settings.database_url)
        diag = {"cpu_count": 8, "load_1m": 1.0, "disk_free_mb": 50_000, "mem_available_mb": 8000}
        transaction(lambda s, h=info.hostname, d=diag: runners.heartbeat(s, h, d, 4, utcnow()),
                    url=settings.database_url)


def _login(http: Any, key: str) -> None:
    page = http.get("/admin/login").text
    token = re.search(r'name="csrf" value="([^"]+)"', page)
    assert token, "no CSRF field on the login page"
    r = http.post("/admin/login", data={"api_key": key, "csrf": token.group(1)}, follow_redirects=False)
    assert r.status_code == 303, r.text


def _pages(url: str) -> dict[str, str]:
    import psycopg

    with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://")) as conn:
        row = conn.execute("SELECT root_id FROM jobs WHERE parent_id IS NOT NULL LIMIT 1").fetchone()
    family = row[0] if row else ""
    return {"dashboard": "/admin/", "runners": "/admin/runners", "runner diagnostics": "/admin/runners/cpu0@bench",
            "jobs": "/admin/jobs", "jobs state=pending": "/admin/jobs?state=pending",
            "job (family of 3)": f"/admin/jobs/{family}", "activity": "/admin/activity", "tokens": "/admin/tokens"}


def _measure(http: Any, pages: dict[str, str], repeats: int) -> dict[str, list[float]]:
    samples: dict[str, list[float]] = {}
    for name, path in pages.items():
        assert http.get(path).status_code == 200, path  # warm: first-use costs are not page costs
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            r = http.get(path)
            times.append((time.perf_counter() - t0) * 1000)
            assert r.status_code == 200, (path, r.status_code)
        samples[name] = times
    return samples


def run(smoke: bool = False, rows: int | None = None, repeats: int | None = None) -> BenchResult:
    from fastapi.testclient import TestClient

    from mediarunner.api.keys import ApiKeys
    from mediarunner.web import create_app

    rows = rows or (2000 if smoke else 100_000)
    repeats = repeats or (3 if smoke else 20)
    res = BenchResult(NAME, TITLE, smoke, params={"rows": rows, "repeats": repeats, "runners": RUNNERS,
                                                  "measured": "in-process ASGI request (TestClient), p95"})
    with bench_tmp(NAME) as tmp, database("postgresql", tmp) as url:
        _grow(url.replace("postgresql+psycopg://", "postgresql://"), rows, utcnow(), random.Random(7), True)
        settings = Settings(database_url=url, broker_url="memory://", output_roots=[tmp], input_roots=[tmp])
        _runners(settings)
        key = ApiKeys(settings).create("bench", ["read"])[1]
        with TestClient(create_app(settings)) as http:
            _login(http, key)
            samples = _measure(http, _pages(url), repeats)
    for name, times in samples.items():
        res.add(f"{name}: p95", percentile(times, 95), "ms", ("<", GOAL_MS))
    res.add("slowest page p50", max(percentile(t, 50) for t in samples.values()), "ms")
    res.details["ms"] = {name: summary(t) for name, t in samples.items()}
    return res


def main(argv: list[str] | None = None) -> int:
    import sys

    return cli(sys.modules[__name__], argv)


if __name__ == "__main__":
    raise SystemExit(main())
