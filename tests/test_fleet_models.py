"""Fleet model, beat logic, health, stats, metrics and redaction, on SQLite and PostgreSQL
(no worker processes: every function takes ``now``)."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any

import psutil
import pytest
from celery import Celery
from prometheus_client import generate_latest
from pydantic import SecretStr
from sqlalchemy import select

from mediarunner.config import Settings
from mediarunner.config.redact import (
    MASK,
    RedactingFilter,
    is_secret_name,
    mask_broker_url,
    mask_database_url,
    mask_url,
    redact,
    scrub,
    secret_values,
    settings_view,
)
from mediarunner.metrics import registry_for
from mediarunner.models import runners, tokens
from mediarunner.models import transitions as t
from mediarunner.models.db import transaction
from mediarunner.models.enums import ErrorKind, Health, JobState, JobType, RunnerStatus
from mediarunner.models.fleet_queries import get_runner, list_runners
from mediarunner.models.health import HealthThresholds, derive_health
from mediarunner.models.queries import get_job, recent_events
from mediarunner.models.runners import RunnerInfo
from mediarunner.models.stats import completed_durations, fleet_stats
from mediarunner.models.tables import JobRow, WorkerTokenRow
from mediarunner.scheduler.dispatch import signature_for
from mediarunner.scheduler.fleet import check_runners, purge_runner_events
from mediarunner.workers import diagnostics
from tests import rows

NOW = datetime(2026, 3, 4, 12, 0, tzinfo=UTC)
TH = HealthThresholds()


def run(url: str, fn: Any, *args: Any, **kw: Any) -> Any:
    return transaction(lambda s: fn(s, *args, **kw), url=url)


def register(url: str, host: str = "cpu1@h", token_id: str | None = None, now: datetime = NOW) -> Any:
    info = RunnerInfo(hostname=host, queues=("cpu",), concurrency=2, version="0.1.0",
                      capabilities={"ffmpeg": {"version": "5.1"}})
    return run(url, runners.register, info, token_id, now)


def runner(url: str, host: str = "cpu1@h", now: datetime = NOW) -> Any:
    return run(url, get_runner, host, now, TH)


def kinds(url: str, **kw: Any) -> list[str]:
    return [e.kind for e in run(url, recent_events, limit=1000, **kw)]


def settings(url: str, **kw: Any) -> Settings:
    return Settings(database_url=url, runner_offline_after_seconds=30, **kw)


# ------------------------------------------------------------------------------ tokens

def test_tokens_are_stored_hashed_verified_and_revoked(db_url: str) -> None:
    token_id, secret = run(db_url, tokens.create_token, "site-a", NOW)
    assert secret.startswith("mrt_") and len(secret) > 40
    stored = run(db_url, lambda s: s.execute(select(WorkerTokenRow.token_hash, WorkerTokenRow.name)).all())
    assert stored == [(tokens.hash_token(secret), "site-a")] and secret not in str(stored)
    assert run(db_url, tokens.verify_token, secret, NOW) == token_id
    assert run(db_url, tokens.verify_token, secret + "x", NOW) is None
    register(db_url, "a@h", token_id)
    register(db_url, "b@h", None)
    (info,) = run(db_url, tokens.list_tokens)
    assert (info.id, info.runners, info.last_used_at) == (token_id, 1, NOW)

    assert run(db_url, tokens.revoke_token, token_id, NOW) == ["a@h"]
    assert run(db_url, tokens.revoke_token, token_id, NOW) is None  # once only
    assert run(db_url, tokens.verify_token, secret, NOW) is None
    assert runner(db_url, "a@h").unregistered_at == NOW and runner(db_url, "a@h").health is Health.OFFLINE
    assert runner(db_url, "b@h").unregistered_at is None  # no token, not affected
    assert "token_revoked" in kinds(db_url) and "runner_unregistered" in kinds(db_url, runner="a@h")
    # an unregistered runner's heartbeats are answered "unregistered" and change nothing
    d = run(db_url, runners.heartbeat, "a@h", {"x": 1}, 2, NOW + timedelta(seconds=1))
    assert d.unregistered and not d.consume and runner(db_url, "a@h").last_heartbeat_at == NOW
    assert [r.hostname for r in run(db_url, list_runners, NOW, TH)] == ["b@h"]
    # registering again (with a new valid token) brings it back
    new_id, _ = run(db_url, tokens.create_token, "site-a2", NOW)
    register(db_url, "a@h", new_id)
    assert runner(db_url, "a@h").unregistered_at is None and runner(db_url, "a@h").token_id == new_id


# ------------------------------------------------------------------------------ runner state

def test_register_heartbeat_and_status_changes(db_url: str) -> None:
    d = register(db_url)
    assert d.status is RunnerStatus.ENABLED and d.consume and d.generation == 0
    assert run(db_url, runners.set_status, "cpu1@h", RunnerStatus.MAINTENANCE, NOW)
    assert not run(db_url, runners.set_status, "cpu1@h", RunnerStatus.MAINTENANCE, NOW)  # already
    assert not run(db_url, runners.set_status, "nobody@h", RunnerStatus.ENABLED, NOW)
    d = run(db_url, runners.heartbeat, "cpu1@h", {"load_1m": 0.5, "cpu_count": 2}, 3, NOW + timedelta(seconds=5))
    assert d.status is RunnerStatus.MAINTENANCE and not d.consume and d.generation == 1
    r = runner(db_url, now=NOW + timedelta(seconds=5))
    assert r.concurrency == 3 and r.diagnostics["load_1m"] == 0.5 and r.health is Health.HEALTHY
    # status and max concurrency survive a restart (re-registration)
    assert run(db_url, runners.set_desired_concurrency, "cpu1@h", 4, NOW)
    d = register(db_url, now=NOW + timedelta(seconds=9))
    assert (d.status, d.desired_concurrency, d.generation) == (RunnerStatus.MAINTENANCE, 4, 1)
    with pytest.raises(ValueError):
        run(db_url, runners.set_desired_concurrency, "cpu1@h", 0, NOW)
    assert run(db_url, runners.heartbeat, "ghost@h", {}, 1, NOW) is None
    assert kinds(db_url, runner="cpu1@h") == ["runner_registered", "status_changed", "concurrency_changed",
                                              "runner_registered"]


def test_beat_marks_silent_runner_offline_and_fails_over_its_jobs(db_url: str) -> None:
    register(db_url, "a@h")
    register(db_url, "b@h")
    (job_a,) = run(db_url, rows.create_jobs, [t.NewJob(JobType.NOOP, "cpu", {})], NOW)
    (job_b,) = run(db_url, rows.create_jobs, [t.NewJob(JobType.NOOP, "cpu", {}, max_attempts=1)], NOW)
    (job_c,) = run(db_url, rows.create_jobs, [t.NewJob(JobType.NOOP, "cpu", {})], NOW)
    assert run(db_url, rows.claim, job_a, 1, "a@h", None, NOW)
    assert run(db_url, rows.claim, job_b, 1, "x@h", None, NOW)  # b lost a worker once already
    assert run(db_url, t.release, job_b, 1, "lost", NOW, aborted=True)
    assert run(db_url, rows.claim, job_b, 2, "a@h", None, NOW)
    assert run(db_url, rows.claim, job_c, 1, "b@h", None, NOW)
    s = settings(db_url, max_aborts=2)
    later = NOW + timedelta(seconds=20)
    run(db_url, runners.heartbeat, "b@h", {}, 2, later)  # b keeps beating, a went silent at NOW
    assert run(db_url, check_runners, later, s).offline == []  # 20 s < 30 s
    assert runner(db_url, "a@h", later).health is Health.WARNING  # heartbeat 20 s old

    at = NOW + timedelta(seconds=31)
    res = run(db_url, check_runners, at, s)
    assert res.offline == ["a@h"] and res.requeued == [job_a] and res.failed == [job_b]
    assert run(db_url, check_runners, at + timedelta(seconds=1), s).offline == []  # once
    job = run(db_url, get_job, job_a)
    assert (job.state, job.attempt, job.worker, job.failures, job.aborts) == (JobState.PENDING, 2, None, 0, 1)
    poison = run(db_url, get_job, job_b)  # its second lost worker: MAX_ABORTS=2
    assert poison.state is JobState.FAILED and "poison job" in (poison.error or "")
    assert run(db_url, get_job, job_c).state is JobState.RUNNING  # b is alive
    assert runner(db_url, "a@h", at).health is Health.OFFLINE
    assert kinds(db_url, runner="a@h")[-3:] == ["heartbeat_lost", "job_failed_over", "job_failed"]
    # the heartbeat fence: a runner that beat after the cutoff is never marked offline
    assert not run(db_url, runners.mark_offline, "b@h", later - timedelta(seconds=1), at)
    # a late heartbeat brings the runner back
    run(db_url, runners.heartbeat, "a@h", {}, 2, at + timedelta(seconds=2))
    assert runner(db_url, "a@h", at + timedelta(seconds=2)).health is Health.HEALTHY
    assert kinds(db_url, runner="a@h")[-1] == "heartbeat_restored"
    # clean stop: offline at once, a stopped event
    assert run(db_url, runners.mark_stopped, "b@h", at)
    assert runner(db_url, "b@h", at).health is Health.OFFLINE and kinds(db_url, runner="b@h")[-1] == "runner_stopped"


def test_job_events_carry_the_runner_and_counters_count(db_url: str) -> None:
    register(db_url, "w@h")
    ok, bad, retry = (run(db_url, rows.create_jobs, [t.NewJob(JobType.NOOP, "cpu", {})], NOW)[0] for _ in range(3))
    for j in (ok, bad, retry):
        run(db_url, rows.claim, j, 1, "w@h", None, NOW)
    run(db_url, t.complete, ok, 1, {}, NOW)
    run(db_url, t.fail, bad, 1, "boom", ErrorKind.PERMANENT, NOW)
    run(db_url, t.requeue, retry, 1, "io", None, NOW)
    for done in (True, False, False):
        run(db_url, runners.count_outcome, "w@h", completed=done)
    events = run(db_url, recent_events, runner="w@h", limit=100)
    assert [(e.kind, e.job_id) for e in events if e.kind != "job_assigned"] == [
        ("runner_registered", None), ("job_completed", ok), ("job_failed", bad), ("job_retried", retry)]
    r = runner(db_url, "w@h")
    assert (r.jobs_completed, r.jobs_failed, r.jobs_running) == (1, 2, 0)


def test_purge_runner_events(db_url: str) -> None:
    register(db_url, now=NOW - timedelta(days=40))
    register(db_url, now=NOW)
    assert run(db_url, purge_runner_events, NOW, settings(db_url)) == 1
    assert kinds(db_url) == ["runner_registered"]


# ------------------------------------------------------------------------------ health (pure)

@pytest.mark.parametrize("age, diag, kw, health, reason", [
    (1, {"load_1m": 0.5, "cpu_count": 2, "disk_free_mb": 10_000, "ffmpeg_ok": True}, {}, Health.HEALTHY, None),
    (16, {}, {}, Health.WARNING, "heartbeat 16s old"),
    (31, {}, {}, Health.OFFLINE, "no heartbeat for 31s"),
    (1, {"load_1m": 4.5, "cpu_count": 2}, {}, Health.WARNING, "load 4.50 on 2 CPU(s)"),
    (1, {"load_1m": 3.9, "cpu_count": 2}, {}, Health.HEALTHY, None),
    (1, {"disk_free_mb": 100}, {}, Health.WARNING, "only 100 MB free scratch"),
    (1, {"ffmpeg_ok": False}, {}, Health.WARNING, "ffmpeg not runnable"),
    (1, {}, {"offline_at": NOW}, Health.OFFLINE, "offline since"),
    (1, {}, {"unregistered_at": NOW}, Health.OFFLINE, "unregistered"),
    (None, {}, {}, Health.OFFLINE, "no heartbeat yet"),
])
def test_health_thresholds(age: float | None, diag: dict[str, Any], kw: dict[str, Any], health: Health,
                           reason: str | None) -> None:
    last = None if age is None else NOW - timedelta(seconds=age)
    report = derive_health(NOW, last, diag, TH, **kw)
    assert report.health is health
    assert (reason is None and report.reasons == ()) or (reason and any(reason in r for r in report.reasons))


def test_health_thresholds_follow_settings() -> None:
    th = HealthThresholds.from_settings(Settings(runner_warning_after_seconds=1, runner_offline_after_seconds=2,
                                                 runner_warning_load_per_cpu=0.1, runner_warning_free_disk_mb=5))
    assert derive_health(NOW, NOW - timedelta(seconds=3), {}, th).health is Health.OFFLINE
    assert derive_health(NOW, NOW, {"load_1m": 0.3, "cpu_count": 1}, th).health is Health.WARNING
    assert derive_health(NOW, NOW, {"disk_free_mb": 6}, th).health is Health.HEALTHY


# ------------------------------------------------------------------------------ stats

def _job(url: str, created: datetime, started: datetime | None = None, finished: datetime | None = None,
         outcome: str = "completed", worker: str = "w@h") -> str:
    (job_id,) = run(url, rows.create_jobs, [t.NewJob(JobType.NOOP, "cpu", {})], created)
    run(url, t.mark_dispatched, [job_id], created + timedelta(seconds=1))
    if started is None:
        return job_id
    assert run(url, rows.claim, job_id, 1, worker, None, started)
    if finished is not None:
        if outcome == "completed":
            assert run(url, t.complete, job_id, 1, {}, finished)
        elif outcome == "timeout":
            assert run(url, t.time_out, job_id, 1, finished, "too long")
        else:
            assert run(url, t.fail, job_id, 1, "x", ErrorKind.PERMANENT, finished)
    return job_id


def test_stats_match_the_rows(db_url: str) -> None:
    now = NOW
    h = timedelta(hours=1)
    s = timedelta(seconds=1)
    _job(db_url, now - 30 * h, now - 29 * h, now - 28 * h)  # finished yesterday: not today
    _job(db_url, now - 3 * h, now - 3 * h + 11 * s, now - 3 * h + 71 * s)  # today, outside the hour
    _job(db_url, now - 40 * 60 * s, now - 40 * 60 * s + 5 * s, now - 30 * 60 * s)  # today, in the hour
    _job(db_url, now - 2 * h, now - 2 * h + 3 * s, now - h, outcome="failed")
    _job(db_url, now - 2 * h, now - 2 * h + 3 * s, now - h, outcome="timeout")
    _job(db_url, now - 60 * s, now - 10 * s)  # running
    _job(db_url, now - 5 * s)  # pending
    _job(db_url, now - 6 * s)  # pending
    register(db_url, "on@h", now=now - 5 * s)
    register(db_url, "late@h", now=now - 31 * s)  # silent: not online
    register(db_url, "gone@h", now=now)
    run(db_url, runners.mark_stopped, "gone@h", now)
    tok, _ = run(db_url, tokens.create_token, "x", now)
    register(db_url, "unreg@h", tok, now=now)
    run(db_url, tokens.revoke_token, tok, now)  # unregistered: not counted at all

    st = run(db_url, fleet_stats, now, 30)
    assert (st.runners_online, st.runners_total) == (1, 3)
    assert (st.jobs_pending, st.jobs_running, st.completed_today, st.failed_today) == (2, 1, 2, 2)
    assert st.throughput_last_hour == 1
    # recompute from the rows
    rows = run(db_url, lambda ses: ses.scalars(select(JobRow)).all())
    today = now.replace(hour=0, minute=0, second=0, microsecond=0)
    waits = [(r.started_at - (r.dispatched_at or r.created_at)).total_seconds() for r in rows
             if r.started_at and r.started_at >= today]
    procs = [(r.finished_at - r.started_at).total_seconds() for r in rows
             if r.state is JobState.COMPLETED and r.finished_at >= today]
    assert st.avg_wait_seconds == pytest.approx(sum(waits) / len(waits), abs=0.01)
    assert st.avg_processing_seconds == pytest.approx(sum(procs) / len(procs), abs=0.01)
    assert st.avg_processing_seconds == pytest.approx((60 + 595) / 2, abs=0.01)


def test_stats_on_an_empty_database(db_url: str) -> None:
    st = run(db_url, fleet_stats, NOW, 30)
    assert (st.runners_online, st.runners_total, st.jobs_pending, st.avg_wait_seconds) == (0, 0, 0, None)


def test_prometheus_metrics(db_url: str) -> None:
    _job(db_url, NOW - timedelta(seconds=100), NOW - timedelta(seconds=90), NOW - timedelta(seconds=80))
    _job(db_url, NOW - timedelta(seconds=100), NOW - timedelta(seconds=90), NOW - timedelta(seconds=88),
         outcome="failed")
    _job(db_url, NOW)
    register(db_url, "w@h", now=NOW)
    run(db_url, runners.heartbeat, "w@h", {"load_1m": 0.25, "cpu_count": 2, "disk_free_mb": 1000}, 2, NOW)
    (hist,) = run(db_url, completed_durations)
    assert hist.count == 1 and hist.sum == pytest.approx(10, abs=0.01)
    assert dict(hist.buckets)[5.0] == 0 and dict(hist.buckets)[15.0] == 1
    text = generate_latest(registry_for(Settings(database_url=db_url, broker_url="memory://"))).decode()
    assert 'mediarunner_queue_depth{queue="cpu"} 1.0' in text
    assert 'mediarunner_jobs{queue="cpu",state="completed",type="noop"} 1.0' in text
    assert 'mediarunner_failed_jobs{queue="cpu",state="failed",type="noop"} 1.0' in text  # a gauge: purges lower it
    assert 'mediarunner_job_duration_seconds_bucket{le="15.0",type="noop"} 1.0' in text
    assert 'mediarunner_job_duration_seconds_gcount{type="noop"} 1.0' in text  # a gauge histogram: purge lowers it
    assert 'mediarunner_runner_load1{runner="w@h"} 0.25' in text
    assert 'mediarunner_runner_disk_free_bytes{runner="w@h"} 1.048576e+09' in text
    assert 'mediarunner_runners{health="offline",status="enabled"} 1.0' in text  # NOW is long ago


# ------------------------------------------------------------------------------ secrets

def test_mask_url_and_redact() -> None:
    assert mask_url("redis://:pw@h:6379/0") == f"redis://:{MASK}@h:6379/0"
    assert mask_url("postgresql+psycopg://u:p%40ss@db/x") == f"postgresql+psycopg://u:{MASK}@db/x"
    assert mask_url("https://h/x?X-Amz-Signature=abc&part=1") == "https://h/x?X-Amz-Signature=***&part=1"
    assert mask_url("redis://h/0") == "redis://h/0"
    payload = {"input": "sftp://bob:hunter2@h/in.mov", "access_key": "AKIA", "aws_secret": "s3cr3t",
               "ladder": [{"name": "720p", "video_bitrate_k": 2800}], "auth": {"password": "x"}, "n": 1}
    safe = redact(payload)
    assert "hunter2" not in str(safe) and "s3cr3t" not in str(safe) and "AKIA" not in str(safe)
    assert safe["ladder"] == payload["ladder"] and safe["n"] == 1 and safe["input"].startswith("sftp://bob:***@")


def test_urls_keep_their_shape_and_only_real_secrets_are_masked() -> None:
    assert mask_url("sqlite:////srv/x.db") == "sqlite:////srv/x.db"  # was sqlite://srv/x.db
    assert mask_url("sftp://bob:pw@h:22//abs/path?x=1") == f"sftp://bob:{MASK}@h:22//abs/path?x=1"
    assert mask_database_url("sqlite:////srv/x.db") == "sqlite:////srv/x.db"
    assert mask_database_url("postgresql+psycopg://u:p%40ss@db/x") == f"postgresql+psycopg://u:{MASK}@db/x"
    assert mask_broker_url("redis://:pw@h:6379/0") == f"redis://:{MASK}@h:6379/0"
    assert mask_broker_url("sentinel://:pw@h1:26379;sentinel://:pw@h2:26379") == (
        f"sentinel://:{MASK}@h1:26379/;sentinel://:{MASK}@h2:26379/")  # kombu's rendering, each URL masked
    for name in ("sftp_host_key_policy", "private_key_path", "token_id", "require_worker_token", "max_attempts"):
        assert not is_secret_name(name), name
    for name in ("worker_token", "s3_secret_access_key", "s3_access_key_id", "password", "private_key_passphrase",
                 "flower_basic_auth", "X-Amz-Signature", "X-Amz-Credential"):
        assert is_secret_name(name), name
    view = settings_view(Settings(database_url="sqlite:////srv/x.db", sftp_host_key_policy="auto_add"))
    assert view["database_url"] == "sqlite:////srv/x.db" and view["sftp_host_key_policy"] == "auto_add"


def test_log_filter_masks_secrets_and_urls(caplog: pytest.LogCaptureFixture) -> None:
    s = Settings(broker_url="redis://:brokerpw@h/0", worker_token=SecretStr("mrt_tokenvalue"),
                 database_url="postgresql://u:dbpass@h/x")
    secrets = secret_values(s, {"MEDIARUNNER_S3_SECRET_KEY": "storagekey", "HOME": "/root"})
    assert {"brokerpw", "mrt_tokenvalue", "dbpass", "storagekey"} <= secrets and "/root" not in secrets
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "token %s url %s key %s",
                               ("mrt_tokenvalue", "ftp://a:other@h/x", "storagekey"), None)
    assert RedactingFilter(secrets).filter(record)
    assert record.getMessage() == f"token {MASK} url ftp://a:{MASK}@h/x key {MASK}"
    try:
        raise RuntimeError("failed with dbpass")
    except RuntimeError:
        import sys

        rec = logging.LogRecord("x", logging.ERROR, __file__, 1, "boom", None, sys.exc_info())
    RedactingFilter(secrets).filter(rec)
    assert "dbpass" not in (rec.exc_text or "") and "RuntimeError" in (rec.exc_text or "")
    assert scrub("nothing here", secrets) == "nothing here"


def test_settings_view_masks_secrets() -> None:
    view = settings_view(Settings(broker_url="redis://:brokerpw@h/0", worker_token=SecretStr("mrt_x123"),
                                  flower_basic_auth=SecretStr("admin:pw123")))
    text = str(view)
    assert "brokerpw" not in text and "mrt_x123" not in text and "pw123" not in text
    assert view["worker_token"] == MASK and view["broker_url"] == f"redis://:{MASK}@h/0"
    assert view["require_worker_token"] == "false" and view["max_attempts"] == "3"


def test_task_message_carries_no_secret(db_url: str) -> None:
    (job_id,) = run(db_url, rows.create_jobs, [t.NewJob(JobType.NOOP, "cpu", {
        "duration": 0, "output": "s3://AKIA:topsecret@bucket/x"})], NOW)
    job = run(db_url, get_job, job_id)
    sig = signature_for(Celery("t", broker="memory://"), job)
    assert "topsecret" not in repr(sig.args) and sig.args[:2] == (job_id, 1)
    assert sig.options["argsrepr"] == repr((job_id, 1))  # what events (and Flower) show


# ------------------------------------------------------------------------------ diagnostics (no workers)

class FakeNVMLError(Exception):
    pass


def fake_pynvml(*, driver: bool = True) -> ModuleType:
    """nvidia-ml-py's calls as a driver with an H100 and a T4 (whose memory NVML cannot report) answers."""
    boards = [("NVIDIA H100 80GB HBM3", SimpleNamespace(total=81559 * 2**20, used=1024 * 2**20), 37),
              ("Tesla T4", None, 0)]

    def init() -> None:
        if not driver:
            raise FakeNVMLError("NVML Shared Library Not Found")

    def memory(i: int) -> Any:
        if boards[i][1] is None:
            raise FakeNVMLError("Not Supported")
        return boards[i][1]

    nvml = ModuleType("pynvml")
    nvml.__dict__.update(
        NVMLError=FakeNVMLError, nvmlInit=init, nvmlDeviceGetCount=lambda: len(boards),
        nvmlDeviceGetHandleByIndex=lambda i: i, nvmlDeviceGetName=lambda i: boards[i][0],
        nvmlDeviceGetMemoryInfo=memory, nvmlDeviceGetUtilizationRates=lambda i: SimpleNamespace(gpu=boards[i][2]))
    return nvml


@pytest.fixture
def nvml(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[ModuleType | None], None]]:
    """Install a (fake) pynvml for diagnostics; None: the package is not installed."""
    def install(module: ModuleType | None) -> None:
        monkeypatch.setitem(sys.modules, "pynvml", module)
        diagnostics._nvml.cache_clear()

    yield install
    diagnostics._nvml.cache_clear()


def test_gpu_detection_with_nvml(tmp_path: Path, nvml: Callable[[ModuleType | None], None]) -> None:
    nvml(fake_pynvml())
    found = diagnostics.gpus()
    assert found[0] == {"index": 0, "name": "NVIDIA H100 80GB HBM3", "memory_total_mb": 81559,
                        "memory_used_mb": 1024, "utilization_percent": 37}
    assert found[1]["memory_total_mb"] is None and found[1]["name"] == "Tesla T4"
    d = diagnostics.diagnostics(Settings(scratch_dir=tmp_path / "nope" / "scratch"))
    assert d["gpus"][0]["utilization_percent"] == 37 and d["disk_free_mb"] > 0
    assert diagnostics.capabilities(Settings())["gpus"][0] == {"index": 0, "name": "NVIDIA H100 80GB HBM3",
                                                               "memory_total_mb": 81559}
    nvml(fake_pynvml(driver=False))  # nvidia-ml-py installed, no NVIDIA driver (this test machine)
    assert diagnostics.gpus() == []
    nvml(None)  # nvidia-ml-py not installed
    assert diagnostics.gpus() == [] and "gpus" not in diagnostics.diagnostics(Settings(scratch_dir=tmp_path))


def test_machine_figures_come_from_psutil(tmp_path: Path) -> None:
    d = diagnostics.diagnostics(Settings(scratch_dir=tmp_path))
    mem, disk = psutil.virtual_memory(), psutil.disk_usage(str(tmp_path))
    assert d["mem_total_mb"] == mem.total // 2**20 and 0 < d["mem_available_mb"] <= d["mem_total_mb"]
    assert d["disk_total_mb"] == disk.total // 2**20 and d["cpu_count"] == psutil.cpu_count()
    assert d["load_1m"] >= 0 and d["pid"] == os.getpid()


def test_capabilities_without_ffmpeg_still_register(tmp_path: Path) -> None:
    caps = diagnostics.capabilities(Settings(ffmpeg_path=str(tmp_path / "no-ffmpeg")))
    assert "error" in caps["ffmpeg"] and caps["cpu_count"] >= 1
    d = diagnostics.diagnostics(Settings(ffmpeg_path=str(tmp_path / "no-ffmpeg"), scratch_dir=tmp_path))
    assert d["ffmpeg_ok"] is False


def test_whisper_models_found_in_model_dir(tmp_path: Path) -> None:
    model = tmp_path / "faster-whisper-small"
    model.mkdir()
    (model / "model.bin").write_bytes(b"x")
    (model / "config.json").write_text("{}")
    (tmp_path / "junk").mkdir()
    caps = diagnostics.whisper_capabilities(Settings(whisper_model_dir=tmp_path, whisper_engine="whisperx"))
    assert "small" in caps["models"] and "junk" not in caps["models"]
    assert caps["configured"]["engine"] == "whisperx" and isinstance(caps["engines"], list)
