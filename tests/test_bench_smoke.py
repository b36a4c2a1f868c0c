"""The benchmark scripts at their ``--smoke`` sizes, so they do not rot between benchmark runs.

Checks that each one runs and that its result (as written to JSON) has the expected shape: the
headline metrics present, numbers finite and positive. Never asserts anything about speed.
"""

from __future__ import annotations

import importlib
import json
import math
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bench import brokers as brokers_mod
from bench import report, run_all
from bench.common import timed_run
from tests.support import rabbitmq_available

# Metrics every available result must contain (prefix match on the metric name).
HEADLINES: dict[str, list[str]] = {
    "overhead": ["mediarunner, submit", "plain ffmpeg", "ratio a/c", "ratio a/b", "inside jobs, outside ffmpeg"],
    "scaleout": ["single: speedup", "single: efficiency", "minute: efficiency", "batch: efficiency",
                 "long: efficiency"],
    "dispatch_latency": [": p50 created", ": p95 created", ": p99 created"],
    "throughput": ["raw Celery", ": mediarunner no-op jobs", ": ratio vs raw Celery"],
    "scheduler_scale": ["500 rows: rank update", "2,000 rows: failover scan", "2,000 rows: purge tick",
                        "growth exponent rank update"],
    "rank_fidelity": [": pairs run out of rank order", ": pairs claimed out of rank order",
                      ": pairs started out of rank order", ": drain rate"],
    "api": ["submit transcode: Client p50", "submit transcode: API p50", "submit transcode: ratio API/Client p50",
            "submit transcode: API calls/s", "submit transcode: API submissions/s", "get job: Client p50",
            "get job: API p50"],
    "codecs": ["h264: speed", "hevc: bitrate at equal PSNR", "av1: bitrate vs x264", "vp9: speed"],
    "admin": ["dashboard: p95", "runners: p95", "jobs: p95", "job (family of 3): p95", "activity: p95"],
    "transcription": [": realtime factor", "worker: RSS idle", "worker: RSS peak under load", "worker: model loads"],
    "memory": ["worker: peak PSS (sum)", "worker: peak RSS (sum)", "worker: peak USS", "beat: peak PSS (sum)",
               "beat: peak RSS (sum)", "beat: peak USS"],
    "db_scale": ["10 workers: heartbeat writes/s sustained", "50 workers: heartbeat p99", "per job: statements",
                 "per job: database ms"],
    "remote_runner": ["ladder: Celery worker", "ladder: HTTP runner", "ladder: ratio runner/worker",
                      "idle runner: p50 request→start"],
}
NEEDS_PG = {"scheduler_scale", "admin", "memory", "db_scale"}
# Differences and exponents may be negative (noise, or a cost that does not grow); the rest may not.
SIGNED = ("growth exponent", "overhead a - c", "of which", "out of rank order")  # a fraction may be 0


@pytest.fixture(scope="module", autouse=True)
def bench_dirs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Keep generated clips and latest.json out of the checkout."""
    root = tmp_path_factory.mktemp("bench")
    saved = {k: os.environ.get(k) for k in ("MEDIARUNNER_BENCH_CACHE", "MEDIARUNNER_BENCH_RESULTS")}
    os.environ["MEDIARUNNER_BENCH_CACHE"] = str(root / "cache")
    os.environ["MEDIARUNNER_BENCH_RESULTS"] = str(root / "results")
    yield root
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


def check_result(d: dict[str, Any], name: str) -> None:
    assert d["bench"] == name and d["smoke"] is True and d["title"]
    assert isinstance(d["params"], dict)
    assert d["seconds"] >= 0
    if not d["available"]:
        assert d["reason"].startswith("not available"), d["reason"]
        assert not (name in NEEDS_PG and os.environ.get("MEDIARUNNER_REQUIRE_PG")), d["reason"]
        return
    metrics = d["metrics"]
    assert metrics
    for m in metrics:
        assert isinstance(m["name"], str) and isinstance(m["unit"], str)
        assert m["ok"] in (True, False, None)
        if m["value"] is None:  # a part that could not run here says so
            assert "not available" in m["name"], m
            continue
        assert isinstance(m["value"], float) and math.isfinite(m["value"]), m
        if not any(s in m["name"] for s in SIGNED):
            assert m["value"] > 0, m
        if m["goal"] is not None:
            assert m["goal"].split()[0] in ("<", "<=", ">", ">=") and m["ok"] is not None
    names = [m["name"] for m in metrics if m["value"] is not None]
    for headline in HEADLINES[name]:
        assert any(headline in n for n in names), (headline, names)


# Benchmarks measured per broker (``--brokers``): their smoke run is on Redis, and again on RabbitMQ.
ON_BROKERS = ("dispatch_latency", "throughput")


@pytest.mark.parametrize(("name", "brokers"), [*(pytest.param(n, None, id=n) for n in run_all.BENCHMARKS),
                                               *(pytest.param(n, "rabbitmq", id=f"{n}-rabbitmq") for n in ON_BROKERS)])
def test_benchmark_smoke(name: str, brokers: str | None) -> None:
    options: dict[str, Any] = {"brokers": brokers} if brokers else {}
    if brokers == "rabbitmq" and not rabbitmq_available():
        if os.environ.get("MEDIARUNNER_REQUIRE_RABBITMQ"):
            raise RuntimeError("RabbitMQ is required (MEDIARUNNER_REQUIRE_RABBITMQ) but not reachable")
        pytest.skip("RabbitMQ not reachable (set MEDIARUNNER_TEST_RABBITMQ)")
    result = timed_run(importlib.import_module(f"bench.{name}"), smoke=True, **options)
    d = json.loads(json.dumps(result.to_dict(), default=str))
    check_result(d, name)
    if brokers == "rabbitmq":  # measured there, named for it, and its queues gone
        assert d["available"] and d["params"]["brokers"] == ["rabbitmq"], d["reason"]
        measured = [m["name"] for m in d["metrics"] if m["value"] is not None and not m["name"].startswith("anchor")]
        assert measured and all(n.startswith("rabbitmq") for n in measured), measured
        queues = d["details"]["queues"]["rabbitmq"]
        assert queues and all(q.endswith(queues[0].rsplit("-", 1)[1]) for q in queues), queues
        assert not any(brokers_mod.queue_exists(brokers_mod.RABBITMQ_URL, q) for q in queues), queues


def test_run_all_writes_latest_json_and_table(bench_dirs: Path, capsys: pytest.CaptureFixture[str]) -> None:
    copy = bench_dirs / "copy.json"
    assert run_all.main(["--smoke", "--only", "transcription,scheduler_scale", "--json", str(copy)]) == 0
    latest = json.loads((bench_dirs / "results" / "latest.json").read_text())
    assert latest == json.loads(copy.read_text())
    assert latest["smoke"] is True
    env = latest["environment"]
    assert env["machine"]["logical_cpus"] >= 1 and env["versions"]["celery"] and env["versions"]["python"]
    assert [r["bench"] for r in latest["results"]] == ["transcription", "scheduler_scale"]
    for r in latest["results"]:
        check_result(r, r["bench"])
    out = capsys.readouterr().out
    assert "mediarunner benchmarks" in out and "SMOKE" in out
    markdown = report.render(latest)
    assert "| benchmark | metric |" in markdown and "SMOKE RUN" in markdown and "| scheduler_scale |" in markdown


def test_unknown_benchmark_is_refused() -> None:
    with pytest.raises(SystemExit):
        run_all.main(["--only", "nope"])
