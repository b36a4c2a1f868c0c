"""Fleet CLI through typer's CliRunner (rows written directly; the worker tests steer live workers)."""

from __future__ import annotations

import json
import stat
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr
from rich.console import Console
from typer.testing import CliRunner

from mediarunner.cli import app as cli
from mediarunner.cli import processes, ui
from mediarunner.config import Settings, get_settings
from mediarunner.models import runners, tokens
from mediarunner.models import transitions as t
from mediarunner.models.base import utcnow
from mediarunner.models.db import transaction
from mediarunner.models.enums import ErrorKind, JobType, RunnerStatus
from mediarunner.models.runners import RunnerInfo
from mediarunner.models.tables import RunnerRow
from tests import rows
from tests.support import RedisServer


@pytest.fixture
def env(db_url: str, redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    monkeypatch.setenv("MEDIARUNNER_DATABASE_URL", db_url)
    monkeypatch.setenv("MEDIARUNNER_BROKER_URL", redis_server.url)
    get_settings.cache_clear()
    monkeypatch.setattr(ui, "console", Console(width=250))
    monkeypatch.setattr(ui, "REPLY_TIMEOUT", 0.3)  # no live workers here: don't wait long for replies
    yield db_url
    get_settings.cache_clear()


def invoke(*args: str, code: int = 0) -> str:
    result = CliRunner().invoke(cli, list(args))
    assert result.exit_code == code, (result.output, result.exception)
    return result.output


def add_runner(host: str, token_id: str | None = None, **diag: Any) -> None:
    info = RunnerInfo(hostname=host, queues=("cpu",), concurrency=2, version="0.1.0",
                      capabilities={"ffmpeg": {"version": "5.1.6", "encoders": ["libx264", "aac", "h264_nvenc", "zlib"],
                                               "hwaccels": ["cuda"]},
                                    "gpus": [{"index": 0, "name": "NVIDIA H100", "memory_total_mb": 81559}],
                                    "whisper": {"engines": ["faster-whisper"], "models": ["tiny.en"]}})
    transaction(lambda s: runners.register(s, info, token_id, utcnow()))
    if diag:
        transaction(lambda s: runners.heartbeat(s, host, diag, 2, utcnow()))


def test_tokens_create_ls_revoke(env: str, tmp_path: Path) -> None:
    out = invoke("tokens", "create", "site-a")
    secret = out.strip().splitlines()[-1]
    assert secret.startswith("mrt_") and "shown only this once" in out
    token_file = tmp_path / "token"
    out = invoke("tokens", "create", "site-b", "--output", str(token_file))
    assert "mrt_" not in out and token_file.read_text().startswith("mrt_")
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    (a, b) = transaction(tokens.list_tokens)
    add_runner("w1@h", a.id)
    listing = invoke("tokens", "ls")
    assert a.id in listing and "site-a" in listing and "site-b" in listing and "mrt_" not in listing
    # revoking unregisters the runner (the worker is not running here: nothing to answer)
    assert "unregistered 1 runner(s): w1@h" in invoke("tokens", "revoke", a.id)
    assert "no active token" in invoke("tokens", "revoke", a.id, code=2)
    assert "revoked" in invoke("tokens", "ls")
    assert "w1@h" not in invoke("runners", "ls") and "unregistered" in invoke("runners", "ls", "--all")
    assert b.id


def test_runners_ls_show_and_steering_without_a_live_worker(env: str) -> None:
    add_runner("cpu1@box", load_1m=0.5, cpu_count=4, disk_free_mb=50_000, disk_total_mb=100_000, ffmpeg_ok=True,
               mem_total_mb=8000, mem_available_mb=4000,
               gpus=[{"index": 0, "memory_used_mb": 10, "memory_total_mb": 81559, "utilization_percent": 3}])
    add_runner("cpu2@box")
    listing = invoke("runners", "ls")
    assert "cpu1@box" in listing and "healthy" in listing and "0.50/4" in listing and "48.8 GB" in listing
    shown = invoke("runners", "show", "cpu1")  # a unique prefix is enough
    for text in ("cpu1@box", "5.1.6", "libx264, aac, h264_nvenc", "cuda", "NVIDIA H100 (81559 MB)",
                 "faster-whisper", "tiny.en", "0.5", "50000 MB free", "gpu 0", "3% busy", "runner_registered"):
        assert text in shown, text
    assert "zlib" not in shown  # only notable encoders are listed
    assert "ambiguous" in invoke("runners", "show", "cpu", code=2)
    assert "no runner" in invoke("runners", "show", "nope", code=2)
    # the stored status changes even if the worker is down; it applies it when it comes back
    out = invoke("runners", "maintenance", "cpu2@box")
    assert "in maintenance" in out and "did not answer" in out
    assert "(already)" in invoke("runners", "maintenance", "cpu2@box")
    status = transaction(lambda s: s.get(RunnerRow, "cpu2@box").status)
    assert status is RunnerStatus.MAINTENANCE
    assert "stored max 3" in invoke("runners", "set-concurrency", "cpu2@box", "3")
    assert "no reply" in invoke("runners", "ping", "cpu2@box", "--timeout", "0.5", code=1)


def test_logs_filters_and_colours(env: str, monkeypatch: pytest.MonkeyPatch) -> None:
    add_runner("w@h")
    now = utcnow()
    ok, bad = (transaction(lambda s: rows.create_jobs(s, [t.NewJob(JobType.NOOP, "cpu", {})], now))[0]
               for _ in range(2))
    for j in (ok, bad):
        transaction(lambda s, j=j: rows.claim(s, j, 1, "w@h", None, now))
    transaction(lambda s: t.complete(s, ok, 1, {}, now))
    transaction(lambda s: t.fail(s, bad, 1, "could not read ftp://u:pw9999@h/x", ErrorKind.PERMANENT, now))
    out = invoke("logs", "--runner", "w", "--type", "job_failed")
    assert "job_failed" in out and bad[:8] in out and "job_completed" not in out
    assert "pw9999" not in out and "ftp://u:***@h/x" in out  # URLs in messages are masked
    assert "job_" not in invoke("logs", "--runner", "ghost@gone")  # unknown names just match nothing
    out = invoke("logs", "-n", "2")
    assert len([line for line in out.splitlines() if "job_" in line]) == 2
    monkeypatch.setattr(ui, "console", Console(width=250, force_terminal=True, color_system="standard"))
    out = invoke("logs", "--runner", "w@h")
    assert "\x1b[31mjob_failed" in out and "\x1b[32mjob_completed" in out and "\x1b[36mjob_assigned" in out


def test_stats_and_metrics_textfile(env: str, tmp_path: Path) -> None:
    add_runner("w@h", load_1m=0.1, cpu_count=1)
    now = utcnow()
    (job,) = transaction(lambda s: rows.create_jobs(s, [t.NewJob(JobType.NOOP, "cpu", {})], now - timedelta(seconds=5)))
    transaction(lambda s: rows.claim(s, job, 1, "w@h", None, now - timedelta(seconds=4)))
    transaction(lambda s: t.complete(s, job, 1, {}, now - timedelta(seconds=1)))
    data = json.loads(invoke("stats", "--json"))
    assert data["runners_online"] == data["runners_total"] == 1 and data["completed_today"] == 1
    assert data["throughput_last_hour"] == 1 and data["avg_processing_seconds"] == pytest.approx(3, abs=0.01)
    out = invoke("stats")
    for label in ("runners online 1/1", "pending", "running", "completed today 1", "failed today 0", "avg wait",
                  "avg processing 3.0s", "throughput 1/h"):
        assert label in out, label
    prom = tmp_path / "mediarunner.prom"
    invoke("metrics", "--textfile", str(prom))
    text = prom.read_text()
    assert 'mediarunner_runner_up{runner="w@h"} 1.0' in text
    assert 'mediarunner_jobs{queue="cpu",state="completed",type="noop"} 1.0' in text
    assert "mediarunner_broker_queue_messages" in text  # the private redis answered


def test_settings_and_demo_mode(env: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MEDIARUNNER_BROKER_URL", "redis://:brokerpw@127.0.0.1:1/0")
    monkeypatch.setenv("MEDIARUNNER_WORKER_TOKEN", "mrt_demo_secret")
    monkeypatch.setenv("MEDIARUNNER_DEMO_MODE", "true")
    get_settings.cache_clear()
    out = invoke("settings")
    assert "brokerpw" not in out and "mrt_demo_secret" not in out and "redis://:***@127.0.0.1:1/0" in out
    assert "MEDIARUNNER_WORKER_TOKEN" in out and "***" in out
    add_runner("w@h")
    for cmd in (("tokens", "create", "x"), ("tokens", "revoke", "abc"), ("runners", "maintenance", "w@h"),
                ("runners", "enable", "w@h"), ("runners", "disable", "w@h"),
                ("runners", "set-concurrency", "w@h", "2")):
        assert "read-only" in invoke(*cmd, code=2), cmd
    invoke("runners", "ls")  # reading is fine
    invoke("stats")


def test_flower_basic_auth_travels_in_the_environment(env: str) -> None:
    settings = Settings(flower_basic_auth=SecretStr("admin:s3cret"))
    argv, extra = processes.flower_command(settings, 5555, "127.0.0.1")
    assert extra == {"FLOWER_BASIC_AUTH": "admin:s3cret"} and "s3cret" not in " ".join(argv)
    assert "flower" in argv and "--port=5555" in argv
    with pytest.raises(ValueError, match="MEDIARUNNER_FLOWER_BASIC_AUTH"):
        processes.flower_command(Settings(), 5555, "127.0.0.1")
    assert processes.flower_command(Settings(), 5555, "127.0.0.1", auth=False)[1] == {}
    assert "MEDIARUNNER_FLOWER_BASIC_AUTH" in invoke("flower", code=2)  # refuses to start without auth
