"""The in-process worker (``stack.inproc_worker``) runs the real path: claim -> handler -> complete,
job heartbeats and cancel polling, runner registration and heartbeats; several run side by side
and each stops on its own."""

from __future__ import annotations

import pytest

from mediarunner.config import get_settings
from mediarunner.models.base import utcnow
from mediarunner.models.db import transaction
from mediarunner.models.enums import JobState, RunnerStatus
from mediarunner.models.fleet_queries import get_runner
from mediarunner.models.health import HealthThresholds
from tests.support import Stack, wait_for


def _runner(hostname: str) -> object:
    thresholds = HealthThresholds.from_settings(get_settings())
    return transaction(lambda s: get_runner(s, hostname, utcnow(), thresholds))


def test_runs_jobs_registers_and_heartbeats(stack: Stack) -> None:
    w = stack.inproc_worker("ip1", extra_env={"MEDIARUNNER_RUNNER_HEARTBEAT_SECONDS": "0.5"})
    client = stack.client()
    job = client.submit_noop(duration=0.3)
    done = client.wait(job.id, timeout=30)
    assert done.state is JobState.COMPLETED and done.worker == w.hostname and done.result == {"noop": True}
    r = wait_for(lambda: (x := _runner(w.hostname)) and "disk_free_mb" in x.diagnostics and x, 15,  # type: ignore[attr-defined]
                 what="a heartbeat with diagnostics")
    assert r.status is RunnerStatus.ENABLED and r.queues == ("cpu",) and r.jobs_completed == 1  # type: ignore[attr-defined]
    assert f"job {job.id}: completed" in w.log.read_text()


def test_cancel_reaches_a_running_job(stack: Stack) -> None:
    stack.inproc_worker("ip1")
    client = stack.client()
    job = client.submit_noop(duration=30)
    wait_for(lambda: client.get(job.id).state is JobState.RUNNING, 30, what="job running")
    client.cancel(job.id)
    wait_for(lambda: "cancelled; stopped" in (stack.tmp / "worker-ip1.log").read_text(), 5,
             what="the handler to notice the cancel")
    assert client.get(job.id).state is JobState.CANCELLED


def test_two_workers_side_by_side_and_one_stops_alone(stack: Stack) -> None:
    a = stack.inproc_worker("ipa")
    b = stack.inproc_worker("ipb", queues="gpu")
    client = stack.client()
    on_gpu = client.submit_noop(duration=0, queue="gpu")
    assert client.wait(on_gpu.id, timeout=30).worker == b.hostname
    b.stop()
    assert (r := _runner(b.hostname)) is not None and r.offline_at is not None  # type: ignore[attr-defined]
    on_cpu = client.submit_noop(duration=0)
    assert client.wait(on_cpu.id, timeout=30).worker == a.hostname


def test_a_refused_start_fails_the_test_not_the_session(stack: Stack) -> None:
    with pytest.raises(AssertionError, match="refused to start"):
        stack.inproc_worker("notoken", extra_env={"MEDIARUNNER_REQUIRE_WORKER_TOKEN": "true"})
    assert _runner(stack.inproc_workers[0].hostname) is None
