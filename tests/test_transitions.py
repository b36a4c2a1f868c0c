"""State machine: every transition is a guarded compare-and-set with attempt fencing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from mediarunner.models import transitions as t
from mediarunner.models.db import transaction
from mediarunner.models.enums import ErrorKind, JobState, JobType, Stage
from mediarunner.models.queries import get_job
from mediarunner.models.transitions import NewJob
from tests import rows

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
S = JobState


def family(url: str, children: int = 2) -> list[str]:
    jobs = [NewJob(JobType.TRANSCODE, "cpu", {"k": "parent"})]
    jobs += [NewJob(JobType.TRANSCODE_RENDITION, "cpu", {"k": i}, parent=0) for i in range(children)]
    return transaction(lambda s: rows.create_jobs(s, jobs, NOW), url=url)


def state(url: str, job_id: str) -> JobState:
    return transaction(lambda s: get_job(s, job_id, with_children=False).state, url=url)


def run(url: str, fn, *args, **kw):  # type: ignore[no-untyped-def]
    return transaction(lambda s: fn(s, *args, **kw), url=url)


def test_create_family_states(db_url: str) -> None:
    root, a, b = family(db_url)
    job = transaction(lambda s: get_job(s, root), url=db_url)
    assert job.state is S.PENDING and job.attempt == 1 and job.root_id == root
    assert [c.state for c in job.children] == [S.WAITING_FOR_PARENT] * 2
    assert {c.id for c in job.children} == {a, b} and all(c.root_id == root for c in job.children)


def test_claim_only_once_and_only_current_attempt(db_url: str) -> None:
    root, *_ = family(db_url, 0)
    assert not run(db_url, rows.claim, root, 2, "w2", None, NOW)  # wrong attempt
    assert run(db_url, rows.claim, root, 1, "w1", "task-1", NOW)
    assert not run(db_url, rows.claim, root, 1, "w2", "task-2", NOW)  # duplicate message loses
    assert state(db_url, root) is S.RUNNING


def test_children_wait_for_parent_and_are_released_on_completion(db_url: str) -> None:
    root, a, _b = family(db_url)
    assert not run(db_url, rows.claim, a, 1, "w", None, NOW)  # waiting child cannot be claimed
    run(db_url, rows.claim, root, 1, "w", None, NOW)
    assert run(db_url, t.complete, root, 1, {"ok": True}, NOW)
    assert state(db_url, a) is S.PENDING
    assert run(db_url, rows.claim, a, 1, "w", None, NOW)


def test_illegal_moves_are_rejected(db_url: str) -> None:
    root, a, _ = family(db_url)
    assert not run(db_url, t.complete, root, 1, {}, NOW)  # pending -> completed skips running
    assert not run(db_url, t.fail, a, 1, "x", ErrorKind.PERMANENT, NOW)  # waiting -> failed
    assert not run(db_url, t.restart, root, NOW)  # pending is not restartable
    run(db_url, rows.claim, root, 1, "w", None, NOW)
    run(db_url, t.complete, root, 1, {}, NOW)
    assert not run(db_url, t.cancel, root, NOW) or state(db_url, root) is S.COMPLETED
    assert not run(db_url, t.requeue, root, 1, "late", None, NOW)  # completed stays completed
    assert state(db_url, root) is S.COMPLETED


def test_failure_cascades_parent_failed(db_url: str) -> None:
    root, a, b = family(db_url)
    run(db_url, rows.claim, root, 1, "w", None, NOW)
    assert run(db_url, t.fail, root, 1, "corrupt input", ErrorKind.PERMANENT, NOW)
    assert state(db_url, root) is S.FAILED
    assert state(db_url, a) is S.PARENT_FAILED and state(db_url, b) is S.PARENT_FAILED


def test_cancel_cascades_to_active_descendants(db_url: str) -> None:
    root, a, b = family(db_url)
    run(db_url, rows.claim, root, 1, "w", None, NOW)
    assert run(db_url, t.cancel, root, NOW)
    assert state(db_url, root) is S.CANCELLED
    assert state(db_url, a) is S.PARENT_CANCELLED and state(db_url, b) is S.PARENT_CANCELLED
    # the running worker's heartbeat now fails: it must stop
    assert not run(db_url, t.touch, root, 1, NOW)


def test_zombie_attempt_is_fenced(db_url: str) -> None:
    root, *_ = family(db_url, 0)
    run(db_url, rows.claim, root, 1, "old", None, NOW)
    assert run(db_url, t.requeue, root, 1, "worker lost", None, NOW, event="job_failed_over")
    job = transaction(lambda s: get_job(s, root), url=db_url)
    assert (job.state, job.attempt, job.failures) == (S.PENDING, 2, 1)
    assert run(db_url, rows.claim, root, 2, "new", None, NOW)
    # the old worker wakes up: heartbeat, completion and failure are all discarded
    assert not run(db_url, t.touch, root, 1, NOW)
    assert not run(db_url, t.complete, root, 1, {"zombie": True}, NOW)
    assert not run(db_url, t.fail, root, 1, "zombie", ErrorKind.TRANSIENT, NOW)
    assert run(db_url, t.complete, root, 2, {"fresh": True}, NOW)
    assert transaction(lambda s: get_job(s, root).result, url=db_url) == {"fresh": True}


def test_retry_backoff_blocks_claim_until_due(db_url: str) -> None:
    root, *_ = family(db_url, 0)
    run(db_url, rows.claim, root, 1, "w", None, NOW)
    run(db_url, t.requeue, root, 1, "io", NOW + timedelta(seconds=30), NOW)
    assert not run(db_url, rows.claim, root, 2, "w", None, NOW + timedelta(seconds=10))
    assert run(db_url, rows.claim, root, 2, "w", None, NOW + timedelta(seconds=31))


def test_restart_gives_family_a_fresh_attempt(db_url: str) -> None:
    root, _a, _b = family(db_url)
    run(db_url, rows.claim, root, 1, "w", None, NOW)
    run(db_url, t.fail, root, 1, "boom", ErrorKind.TRANSIENT, NOW)
    assert run(db_url, t.restart, root, NOW)
    job = transaction(lambda s: get_job(s, root), url=db_url)
    assert (job.state, job.attempt, job.failures, job.error) == (S.PENDING, 2, 0, None)
    assert [c.state for c in job.children] == [S.WAITING_FOR_PARENT] * 2


def test_prune_children_only_by_running_parent(db_url: str) -> None:
    root, a, b = family(db_url)
    assert run(db_url, t.prune_children, root, 1, {a}) == []  # parent not running: nothing
    run(db_url, rows.claim, root, 1, "w", None, NOW)
    assert run(db_url, t.prune_children, root, 1, {a}) == [b]
    job = transaction(lambda s: get_job(s, root), url=db_url)
    assert [c.id for c in job.children] == [a]


def test_events_are_recorded(db_url: str) -> None:
    from mediarunner.models.queries import recent_events

    root, *_ = family(db_url, 0)
    run(db_url, rows.claim, root, 1, "w1", None, NOW)
    run(db_url, t.complete, root, 1, {}, NOW)
    kinds = [e.kind for e in transaction(lambda s: recent_events(s, job_id=root), url=db_url)]
    assert kinds == ["job_submitted", "job_assigned", "job_completed"]


def test_claim_job_returns_the_job_as_written_with_its_family(db_url: str) -> None:
    from mediarunner.models.queries import recent_events

    root, a, b = family(db_url)
    job = run(db_url, t.claim_job, root, 1, "w1@h", "task-1", NOW)
    assert job.state is S.RUNNING and job.worker == "w1@h" and job.celery_task_id == "task-1"
    assert job.started_at == NOW and job.heartbeat_at == NOW and job.attempt == 1
    assert {c.id for c in job.children} == {a, b} and all(c.state is S.WAITING_FOR_PARENT for c in job.children)
    assert run(db_url, t.claim_job, root, 1, "w2@h", "task-2", NOW) is None  # a duplicate loses, no event
    events = transaction(lambda s: recent_events(s, job_id=root, kind="job_assigned"), url=db_url)
    assert [(e.runner, e.message) for e in events] == [("w1@h", "attempt 1")]
    run(db_url, t.complete, root, 1, {}, NOW)
    leaf = run(db_url, t.claim_job, a, 1, "w1@h", None, NOW)
    assert leaf.id == a and leaf.children == () and leaf.parent_id == root


def test_complete_logs_the_runner_and_counts_it_in_the_same_transaction(db_url: str) -> None:
    from mediarunner.models import runners
    from mediarunner.models.queries import recent_events
    from mediarunner.models.tables import RunnerRow

    info = runners.RunnerInfo(hostname="w1@h", queues=("cpu",), concurrency=1, version="0")
    run(db_url, runners.register, info, None, NOW)
    root, a, _b = family(db_url)
    run(db_url, rows.claim, root, 1, "w1@h", None, NOW)
    assert not run(db_url, t.complete, root, 2, {}, NOW, worker="w1@h", count=True)  # stale attempt: nothing
    assert run(db_url, t.complete, root, 1, {"x": 1}, NOW, worker="w1@h", stage=Stage.UPLOADING, count=True)
    job = transaction(lambda s: get_job(s, root), url=db_url)
    assert job.state is S.COMPLETED and job.result == {"x": 1} and job.stage is Stage.UPLOADING
    assert job.progress == 100.0 and job.finished_at == NOW and state(db_url, a) is S.PENDING
    completed = transaction(lambda s: s.get(RunnerRow, "w1@h").jobs_completed, url=db_url)
    assert completed == 1
    events = transaction(lambda s: recent_events(s, job_id=root, kind="job_completed"), url=db_url)
    assert [(e.runner, e.message) for e in events] == [("w1@h", "attempt 1")]


def test_submitted_rows_are_stamped_and_a_failed_publish_hands_them_to_the_outbox(db_url: str) -> None:
    from mediarunner.config import Settings
    from mediarunner.scheduler.ticks import due_for_dispatch

    jobs = [NewJob(JobType.TRANSCODE, "cpu", {}), NewJob(JobType.TRANSCODE_RENDITION, "cpu", {}, parent=0)]
    job = run(db_url, t.insert_jobs, jobs, NOW, publishing=True)
    assert job.id == jobs[0].id and [c.id for c in job.children] == [jobs[1].id]
    settings = Settings(redispatch_after_seconds=300)
    assert run(db_url, due_for_dispatch, NOW + timedelta(seconds=1), settings) == []  # its message is on the way
    # The submitter died before publishing: the outbox re-publishes once the stamp is stale.
    assert run(db_url, due_for_dispatch, NOW + timedelta(seconds=301), settings) == [job.id]
    run(db_url, t.clear_dispatched, [c.id for c in job.family])  # a failed publish: at the next tick
    assert run(db_url, due_for_dispatch, NOW + timedelta(seconds=1), settings) == [job.id]
