"""Runner fleet with real worker processes: tokens, steering, offline detection, diagnostics,
secrets. Jobs are short noop jobs; heartbeats are fast (0.5 s) so nothing waits long."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console
from typer.testing import CliRunner

from mediarunner.cli import app as cli
from mediarunner.cli import ui
from mediarunner.config import get_settings
from mediarunner.media.ffmpeg import ffmpeg_version
from mediarunner.metrics import broker_queue_lengths
from mediarunner.models import tokens
from mediarunner.models import transitions as t
from mediarunner.models.base import utcnow
from mediarunner.models.db import transaction
from mediarunner.models.enums import Health, JobState, JobType, RunnerStatus
from mediarunner.models.fleet_queries import Runner, get_runner, list_runners
from mediarunner.models.health import HealthThresholds
from mediarunner.models.queries import recent_events
from mediarunner.scheduler.dispatch import dispatch
from tests import rows
from tests.support import Stack, Worker, free_port, make_stack, wait_for

FAST = {
    "MEDIARUNNER_RUNNER_HEARTBEAT_SECONDS": "0.5",
    "MEDIARUNNER_RUNNER_WARNING_AFTER_SECONDS": "2",
    "MEDIARUNNER_RUNNER_OFFLINE_AFTER_SECONDS": "3",
    "MEDIARUNNER_BEAT_INTERVAL_SECONDS": "0.5",
}


@pytest.fixture
def fleet(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> Iterator[Stack]:
    for k, v in FAST.items():
        monkeypatch.setenv(k, v)
        stack.env[k] = v
    get_settings.cache_clear()
    monkeypatch.setattr(ui, "console", Console(width=250))
    yield stack
    get_settings.cache_clear()


def invoke(*args: str) -> Any:
    result = CliRunner().invoke(cli, list(args))
    assert result.exit_code == 0, (result.output, result.exception)
    return result


def runner(hostname: str) -> Runner | None:
    thresholds = HealthThresholds.from_settings(get_settings())
    return transaction(lambda s: get_runner(s, hostname, utcnow(), thresholds))


def make_token(name: str = "site-a") -> tuple[str, str]:
    return transaction(lambda s: tokens.create_token(s, name, utcnow()))


def consuming(stack: Stack, hostname: str) -> list[str]:
    """The queues the live worker consumes (waits for its answer: no answer is not "none")."""
    app = stack.client().app

    def ask() -> dict[str, Any] | None:
        replies = app.control.inspect(destination=[hostname], timeout=1).active_queues() or {}
        return replies if hostname in replies else None

    replies = wait_for(ask, 20, what=f"{hostname} to answer remote control")
    return sorted(q["name"] for q in replies[hostname])


def job_state(stack: Stack, job_id: str) -> tuple[JobState, int, str | None]:
    job = stack.client().get(job_id)
    return job.state, job.attempt, job.worker


def events(**kw: Any) -> list[tuple[str, str | None, str | None]]:
    return transaction(lambda s: [(e.kind, e.runner, e.job_id) for e in recent_events(s, limit=500, **kw)])


# ------------------------------------------------------------------------------ tokens

def test_worker_without_or_with_bad_token_refuses_to_start(fleet: Stack) -> None:
    env = {**fleet.env, "MEDIARUNNER_REQUIRE_WORKER_TOKEN": "true"}
    workers = [Worker(name=name, queues="cpu", concurrency=1, env={**env, **extra}, log=fleet.tmp / f"{name}.log")
               for name, extra in (("notoken", {}), ("badtoken", {"MEDIARUNNER_WORKER_TOKEN": "mrt_not-a-real-token"}))]
    for w in workers:  # both at once
        w.start(wait=False)
    for w in workers:
        assert w.proc is not None
        assert w.proc.wait(60) == 78
        log = w.log.read_text()
        assert "refused to start" in log and "MEDIARUNNER_WORKER_TOKEN" in log, log
        assert "mrt_not-a-real-token" not in log  # the presented secret is never echoed
        assert "ready." not in log
        assert runner(w.hostname) is None


def test_valid_token_registers_and_heartbeats_with_sane_diagnostics(fleet: Stack) -> None:
    token_id, secret = make_token()
    w = fleet.inproc_worker("tok", extra_env={"MEDIARUNNER_REQUIRE_WORKER_TOKEN": "true",
                                              "MEDIARUNNER_WORKER_TOKEN": secret})
    r = wait_for(lambda: (x := runner(w.hostname)) and "disk_free_mb" in x.diagnostics and x, 30,
                 what="first heartbeat with diagnostics")
    assert r.token_id == token_id and r.status is RunnerStatus.ENABLED and r.queues == ("cpu",)
    assert r.concurrency == 1 and r.version
    assert r.health in (Health.HEALTHY, Health.WARNING)  # the shared test machine may be loaded
    # capabilities: the same ffmpeg the tests use
    ff = r.capabilities["ffmpeg"]
    assert ff["version"] == ffmpeg_version() and {"libx264", "aac"} <= set(ff["encoders"])
    assert r.capabilities["cpu_count"] == os.cpu_count()
    assert isinstance(r.capabilities["gpus"], list) and isinstance(r.capabilities["whisper"]["engines"], list)
    # diagnostics: match what this machine reports now
    d = r.diagnostics
    assert d["cpu_count"] == os.cpu_count() and 0 <= d["load_1m"] < 100 * d["cpu_count"]
    usage = shutil.disk_usage(fleet.tmp)
    assert 0 < d["disk_free_mb"] <= d["disk_total_mb"] == usage.total // 2**20
    assert abs(d["disk_free_mb"] - usage.free // 2**20) < 2048  # other processes write too
    assert d["ffmpeg_ok"] is True and d["active_jobs"] == 0 and 0 < d["mem_available_mb"] <= d["mem_total_mb"]
    first = r.last_heartbeat_at
    wait_for(lambda: (x := runner(w.hostname)) and x.last_heartbeat_at > first, 10, what="a later heartbeat")
    assert ("runner_registered", w.hostname, None) in events(runner=w.hostname)
    assert secret not in w.log.read_text()


def test_revoking_a_token_stops_consumption_and_fails_over_jobs(fleet: Stack) -> None:
    token_id, secret = make_token()
    w = fleet.inproc_worker("rev", extra_env={"MEDIARUNNER_WORKER_TOKEN": secret})
    client = fleet.client()
    job = client.submit_noop(duration=30)
    wait_for(lambda: job_state(fleet, job.id) == (JobState.RUNNING, 1, w.hostname), 30, what="job running")
    assert consuming(fleet, w.hostname) == ["cpu"]

    out = invoke("tokens", "revoke", token_id).output
    assert "unregistered 1 runner" in out and w.hostname in out
    # the job failed over at once (attempt 2, back to pending) and the worker stopped consuming
    state, attempt, _ = job_state(fleet, job.id)
    assert (state, attempt) == (JobState.PENDING, 2)
    wait_for(lambda: consuming(fleet, w.hostname) == [], 10, what="worker to stop consuming")
    r = runner(w.hostname)
    assert r is not None and r.unregistered_at is not None and r.health is Health.OFFLINE
    # the zombie attempt noticed and stopped; nothing re-claims the job on the unregistered runner
    # released, not failed over: no failure and no abort counted (the operator let the runner go)
    wait_for(lambda: ("job_released", w.hostname, job.id) in events(job_id=job.id), 5, what="release event")
    released = fleet.client().get(job.id)
    assert (released.failures, released.aborts) == (0, 0)
    wait_for(lambda: "superseded" in w.log.read_text() or "cancelled" in w.log.read_text(), 10,
             what="the running attempt to stop")
    assert job_state(fleet, job.id)[:2] == (JobState.PENDING, 2)
    kinds = [k for k, _, _ in events()]
    assert "token_revoked" in kinds and "runner_unregistered" in kinds
    assert "revoked" in invoke("tokens", "ls").output
    # restarting with the revoked token is refused
    w.stop()
    again = Worker(name="rev", queues="cpu", concurrency=1, env={**fleet.env, "MEDIARUNNER_WORKER_TOKEN": secret},
                   log=fleet.tmp / "rev-again.log")
    again.start(wait=False)
    assert again.proc is not None and again.proc.wait(60) == 78
    assert "invalid or revoked" in again.log.read_text()
    client.cancel(job.id)


# ------------------------------------------------------------------------------ steering

def test_maintenance_finishes_running_job_and_takes_no_new_one(fleet: Stack) -> None:
    w = fleet.inproc_worker("maint")
    client = fleet.client()
    first = client.submit_noop(duration=2.0)
    wait_for(lambda: job_state(fleet, first.id)[0] is JobState.RUNNING, 30, what="first job running")

    assert "in maintenance" in invoke("runners", "maintenance", "maint").output
    assert consuming(fleet, w.hostname) == []
    second = client.submit_noop(duration=0)
    done = client.wait(first.id, timeout=30)
    assert done.state is JobState.COMPLETED  # the running job finished
    # heartbeats for a while after the first job finished (a consuming worker would have taken the
    # second job within milliseconds), and the second job still waits in the broker
    later = done.finished_at + timedelta(seconds=1.5)  # type: ignore[operator]
    wait_for(lambda: (r := runner(w.hostname)) and r.last_heartbeat_at > later and r.jobs_running == 0
             and r.diagnostics.get("active_jobs") == 0, 10, what="idle heartbeats after the first job")
    assert broker_queue_lengths(fleet.env["MEDIARUNNER_BROKER_URL"], ["cpu"]) == {"cpu": 1}
    assert job_state(fleet, second.id)[0] is JobState.PENDING
    r = runner(w.hostname)
    assert r is not None and r.status is RunnerStatus.MAINTENANCE and r.jobs_completed == 1

    assert "enabled" in invoke("runners", "enable", w.hostname).output
    assert client.wait(second.id, timeout=30).state is JobState.COMPLETED
    assert consuming(fleet, w.hostname) == ["cpu"]
    kinds = [k for k, _, _ in events(runner=w.hostname)]
    assert kinds.count("status_changed") == 2 and "job_assigned" in kinds and "job_completed" in kinds


def test_disabled_status_and_concurrency_survive_restart(fleet: Stack) -> None:
    w = fleet.worker("dis")
    wait_for(lambda: runner(w.hostname), 10, what="registration")
    invoke("runners", "disable", "dis")
    invoke("runners", "set-concurrency", "dis", "2")
    w.stop()
    assert (r := runner(w.hostname)) is not None and r.health is Health.OFFLINE  # clean stop: offline at once
    w.start()
    wait_for(lambda: (x := runner(w.hostname)) and x.offline_at is None, 10, what="re-registration")
    assert consuming(fleet, w.hostname) == []  # cancelled before the event loop ran
    wait_for(lambda: (x := runner(w.hostname)) and x.concurrency == 2, 10, what="the stored pool size applied")
    job = fleet.client().submit_noop(duration=0)
    invoke("runners", "enable", "dis")
    assert fleet.client().wait(job.id, timeout=30).state is JobState.COMPLETED


def test_set_concurrency_and_ping(fleet: Stack) -> None:
    w = fleet.worker("conc")
    wait_for(lambda: runner(w.hostname), 10, what="registration")
    assert "pool 1 -> 2" in invoke("runners", "set-concurrency", "conc", "2").output
    wait_for(lambda: (r := runner(w.hostname)) and r.concurrency == 2, 15, what="pool of 2 in the heartbeat")
    assert "pool 2 -> 1" in invoke("runners", "set-concurrency", "conc", "1").output
    wait_for(lambda: (r := runner(w.hostname)) and r.concurrency == 1, 15, what="pool of 1 in the heartbeat")
    assert runner(w.hostname).desired_concurrency == 1  # type: ignore[union-attr]
    out = invoke("runners", "ping").output
    assert w.hostname in out and "pong" in out and " ms" in out
    out = invoke("runners", "ls").output
    assert w.hostname in out and "enabled" in out
    out = invoke("runners", "show", "conc").output
    assert "libx264" in out and "concurrency_changed" in out


def test_unregistering_one_runner_lets_it_leave_cleanly(fleet: Stack) -> None:
    """`runners unregister`: the live worker stops consuming, its running job is back to pending
    at once with nothing counted, and the zombie attempt stops."""
    w = fleet.inproc_worker("leaver")
    client = fleet.client()
    job = client.submit_noop(duration=30)
    wait_for(lambda: job_state(fleet, job.id) == (JobState.RUNNING, 1, w.hostname), 30, what="job running")
    out = invoke("runners", "unregister", "leaver").output
    assert f"{w.hostname} unregistered; 1 running job(s) back to pending" in out
    released = client.get(job.id)
    assert (released.state, released.attempt, released.failures, released.aborts) == (JobState.PENDING, 2, 0, 0)
    wait_for(lambda: consuming(fleet, w.hostname) == [], 10, what="worker to stop consuming")
    wait_for(lambda: "superseded" in w.log.read_text(), 10, what="the running attempt to stop")
    assert ("job_released", w.hostname, job.id) in events(job_id=job.id)
    assert job_state(fleet, job.id)[:2] == (JobState.PENDING, 2)  # nothing re-claims it on the leaver
    client.cancel(job.id)


# ------------------------------------------------------------------------------ offline detection

def test_killed_worker_goes_offline_and_its_job_fails_over(fleet: Stack) -> None:
    fleet.worker("sched", queues="scheduler", beat=True, wait=False)
    w = fleet.worker("doomed", wait=False)
    fleet.ready()
    client = fleet.client()
    job = client.submit_noop(duration=60)
    wait_for(lambda: job_state(fleet, job.id) == (JobState.RUNNING, 1, w.hostname), 30, what="job running")
    w.kill()
    # beat notices the silent runner (3 s) long before the job's own failover (60 s)
    wait_for(lambda: (r := runner(w.hostname)) and r.health is Health.OFFLINE, 20, what="runner offline")
    wait_for(lambda: job_state(fleet, job.id)[1] == 2, 10, what="job failed over")
    kinds = [(k, j) for k, _, j in events(runner=w.hostname)]
    assert ("heartbeat_lost", None) in kinds and ("job_failed_over", job.id) in kinds
    # the dashboard agrees with the runner rows (the database is shared with earlier tests)
    stats = json.loads(invoke("stats", "--json").output)
    fleet_now = transaction(lambda s: list_runners(s, utcnow(), HealthThresholds.from_settings(get_settings())))
    assert stats["runners_total"] == len(fleet_now) >= 2
    assert stats["runners_online"] == sum(r.health is not Health.OFFLINE for r in fleet_now) >= 1
    client.cancel(job.id)


# ------------------------------------------------------------------------------ secrets

class PasswordRedis:
    def __init__(self, tmp: Path, password: str) -> None:
        self.port, self.password = free_port(), password
        self.proc = subprocess.Popen(["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                                      "--appendonly", "no", "--dir", str(tmp), "--requirepass", password],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        import redis

        wait_for(lambda: self._ping(redis), 10, what="password redis")

    def _ping(self, redis: Any) -> bool:
        try:
            return bool(redis.Redis(port=self.port, password=self.password, socket_connect_timeout=0.2).ping())
        except redis.RedisError:
            return False

    @property
    def url(self) -> str:
        return f"redis://:{self.password}@127.0.0.1:{self.port}/0"

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


def test_secrets_absent_from_logs_messages_and_flower_events(tmp_path: Path, pg_url: str) -> None:
    broker_pw, db_pw, storage_key = "brokerSecret-7f3a", "dbSecret-91c2", "storageKey-55aa"
    (tmp_path / "redis").mkdir()
    server = PasswordRedis(tmp_path / "redis", broker_pw)
    db_url = pg_url.replace("postgresql+psycopg://postgres@", f"postgresql+psycopg://postgres:{db_pw}@")
    try:
        with make_stack(tmp_path, db_url, server.url, MEDIARUNNER_S3_SECRET_KEY=storage_key, **FAST) as stack:
            _, secret = make_token()
            w = stack.worker("sec", extra_env={"MEDIARUNNER_WORKER_TOKEN": secret})
            client = stack.client()
            app = client.app
            captured: list[dict[str, Any]] = []
            with app.connection_for_read() as conn:
                recv = app.events.Receiver(conn, handlers={"*": captured.append})
                thread = threading.Thread(target=lambda: recv.capture(limit=None, timeout=None), daemon=True)
                thread.start()
                try:
                    wait_for(lambda: any(e["type"] == "worker-heartbeat" for e in captured), 10, what="events")
                    # a payload carrying a storage credential in a URL, as a remote input/output would
                    leaky = f"s3://AKIAEXAMPLE:{storage_key}@bucket/out.txt"
                    (job_id,) = transaction(lambda s: rows.create_jobs(s, [t.NewJob(JobType.NOOP, "cpu", {
                        "duration": 0.1, "output": leaky})], utcnow()))
                    assert dispatch(job_id, app=app)
                    done = client.wait(job_id, timeout=30)
                    # The secret is in the job's own data (its payload), so the checks below test something;
                    # the error no longer echoes the URL at all (credentials in URLs are refused by name).
                    assert done.state is JobState.FAILED and storage_key in repr(done.payload)
                    assert "credentials must not be embedded" in (done.error or "")
                    wait_for(lambda: {"task-sent", "task-received"} <= {
                        e["type"] for e in captured if e.get("uuid") == done.celery_task_id}, 10, what="task events")
                finally:
                    recv.should_stop = True
                    thread.join(5)
            state = app.events.State()
            for e in captured:
                state.event(e)
            shown = [e for e in captured if e["type"] in ("task-sent", "task-received")]
            assert {e["type"] for e in shown} == {"task-sent", "task-received"}
            assert all(e["args"] == repr((job_id, 1)) for e in shown), shown  # what Flower shows as args
            assert state.tasks[done.celery_task_id].args == repr((job_id, 1))
            cli_out = "".join(invoke(*cmd).output for cmd in (
                ("settings",), ("runners", "ls"), ("runners", "show", "sec"), ("logs", "-n", "100"), ("stats",)))
            assert "***" in cli_out and "failed" in cli_out
            text = w.log.read_text() + repr(captured) + cli_out
            # The failure was logged (naming the refused credentials, never echoing the URL)...
            assert "job " + job_id in w.log.read_text() and "credentials must not be embedded" in w.log.read_text()
            for s in (secret, broker_pw, db_pw, storage_key):
                assert s not in text, s  # ...masked
    finally:
        server.stop()
