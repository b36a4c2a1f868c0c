"""Celery's picture of a job is the job's: what Flower shows comes from these task events.

A real worker runs jobs while a receiver records the task events on the broker (as Flower does):
a completed job is SUCCESS, a failed one FAILURE with its error, a retried one RETRY, a
cancelled one REVOKED; and revoking a job's task cancels the job."""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from mediarunner.models.db import transaction
from mediarunner.models.enums import JobState
from mediarunner.models.tables import EventRow
from tests.support import RedisServer, Stack, make_stack, wait_for


class Events:
    """Task events by the job each task ran, recorded from the broker. A message is a doorbell for
    its queue (the task may run another job than the one it was published for): the job a task
    ran is the one whose ``job_assigned`` event names the task."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.by_task: dict[str, list[dict[str, Any]]] = defaultdict(list)
        self.job_of: dict[str, str] = {}
        self._recv: Any = None
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._ready = threading.Event()
        self.seen = 0

    def _on(self, event: dict[str, Any]) -> None:
        self.seen += 1
        uuid = event.get("uuid")
        if uuid:
            self.by_task[uuid].append(event)

    def _assigned(self) -> None:
        """Which job each task ran, from the activity log (``job_assigned``: "attempt N, task T")."""
        rows = transaction(lambda s: s.execute(select(EventRow.job_id, EventRow.message).where(
            EventRow.kind == "job_assigned")).all())
        for job_id, message in rows:
            if ", task " in message:
                self.job_of[message.split(", task ", 1)[1]] = job_id

    def _run(self) -> None:
        with self.app.connection() as conn:
            self._recv = self.app.events.Receiver(conn, handlers={"*": self._on})
            self._ready.set()
            self._recv.capture(limit=None, timeout=None, wakeup=False)

    def __enter__(self) -> Events:
        """Returns once the receiver gets events (a worker's heartbeat): none sent later is missed."""
        self._thread.start()
        self._ready.wait(10)
        wait_for(lambda: self.seen > 0, 30, what="the event receiver to be consuming")
        return self

    def __exit__(self, *_: object) -> None:
        if self._recv is not None:
            self._recv.should_stop = True
        self._thread.join(5)

    def types(self, job_id: str) -> list[str]:
        self._assigned()
        return [e["type"] for uuid, job in list(self.job_of.items()) if job == job_id
                for e in list(self.by_task[uuid])]


@pytest.fixture
def stack(tmp_path: Path, pg_url: str, redis_server: RedisServer) -> Iterator[Stack]:
    import redis

    redis.Redis.from_url(redis_server.url).flushdb()
    with make_stack(tmp_path, pg_url, redis_server.url, MEDIARUNNER_RETRY_BASE_SECONDS="0.2",
                    MEDIARUNNER_BEAT_INTERVAL_SECONDS="0.5") as s:
        yield s


def test_task_states_tell_the_truth(stack: Stack) -> None:
    stack.worker("a", concurrency=2)  # the long job must not hold up the others
    stack.worker("sched", queues="scheduler", beat=True)
    client = stack.client()
    with Events(client.app) as events:
        ok = client.submit_noop()
        retried = client.submit_noop(fail_attempts=1)
        failed = client.submit_noop(fail_attempts=10)  # more than max_attempts (3): fails for good
        long = client.submit_noop(duration=60)
        for job in (ok, retried, failed):
            client.wait(job.id, timeout=60)
        wait_for(lambda: client.get(long.id).state is JobState.RUNNING, 30, what="the long job to run")
        client.cancel(long.id)
        wait_for(lambda: "task-revoked" in events.types(long.id), 30, what="the cancelled task to be revoked")
        wait_for(lambda: events.types(failed.id).count("task-failed") == 1, 30, what="the failure event")
        assert "task-succeeded" in events.types(ok.id)
        assert "task-retried" in events.types(retried.id) and "task-succeeded" in events.types(retried.id)
        assert events.types(failed.id).count("task-retried") == 2
        failure = next(e for uuid, j in events.job_of.items() if j == failed.id
                       for e in events.by_task[uuid] if e["type"] == "task-failed")
        assert "simulated transient failure" in failure["exception"]
        assert "task-succeeded" not in events.types(failed.id) + events.types(long.id)
    assert client.get(failed.id).state is JobState.FAILED


def test_revoking_a_jobs_task_cancels_the_job(stack: Stack) -> None:
    stack.worker("a")
    client = stack.client()
    job = client.submit_noop(duration=60)
    running = wait_for(lambda: (j := client.get(job.id)).state is JobState.RUNNING and j.celery_task_id and j,
                       30, what="the job to run")
    client.app.control.revoke(running.celery_task_id, terminate=True)
    done = wait_for(lambda: (j := client.get(job.id)).state is JobState.CANCELLED and j, 30,
                    what="the job to be cancelled")
    assert done.finished_at is not None
