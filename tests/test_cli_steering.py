"""Operator steering from the CLI (issue 14, item 7): bulk restart and cancel by filter with dry-run
counts, `jobs show` with the log tail and attempt counters, `runners unregister` and `runners rm`."""

from __future__ import annotations

from datetime import timedelta

from mediarunner.models import runners
from mediarunner.models import transitions as t
from mediarunner.models.base import utcnow
from mediarunner.models.db import transaction
from mediarunner.models.enums import ErrorKind, JobState, JobType
from mediarunner.models.queries import get_job
from mediarunner.models.runners import RunnerInfo
from tests import rows
from tests.test_fleet_cli import add_runner, env, invoke  # noqa: F401  (env: the fixture)


def failed_job(job_type: JobType = JobType.NOOP, *, ago: timedelta = timedelta(0), log: str | None = None) -> str:
    at = utcnow() - ago
    (job_id,) = transaction(lambda s: rows.create_jobs(s, [t.NewJob(job_type, "cpu", {})], at))
    transaction(lambda s: rows.claim(s, job_id, 1, "w@h", None, at))
    transaction(lambda s: t.fail(s, job_id, 1, "boom", ErrorKind.PERMANENT, at, log_tail=log))
    return job_id


def pending_job() -> str:
    (job_id,) = transaction(lambda s: rows.create_jobs(s, [t.NewJob(JobType.NOOP, "cpu", {})], utcnow()))
    return job_id


def job(job_id: str):  # type: ignore[no-untyped-def]
    return transaction(lambda s: get_job(s, job_id, with_children=False))


def test_bulk_restart_and_cancel_by_filter_with_dry_run_counts(env: str) -> None:  # noqa: F811
    recent = [failed_job() for _ in range(3)]
    other_type = failed_job(JobType.TRANSCODE)
    old = failed_job(ago=timedelta(hours=3))
    waiting = [pending_job() for _ in range(2)]

    out = invoke("jobs", "restart", "--state", "failed", "--type", "noop", "--since", "2h", "--dry-run")
    assert "would restart 3 job(s)" in out and "changed within 2h" in out
    assert all(job(j).state is JobState.FAILED for j in recent)  # a dry run changes nothing

    out = invoke("jobs", "restart", "--state", "failed", "--type", "noop", "--since", "2h")
    assert "restarted 3 job(s)" in out
    for j in recent:
        assert (job(j).state, job(j).attempt, job(j).failures) == (JobState.PENDING, 2, 0)
    assert job(other_type).state is JobState.FAILED and job(old).state is JobState.FAILED
    assert "would restart 2 job(s)" in invoke("jobs", "restart", "--state", "failed", "--dry-run")

    assert "would cancel 5 job(s)" in invoke("jobs", "cancel", "--state", "pending", "--type", "noop", "--dry-run")
    assert "cancelled 5 job(s)" in invoke("jobs", "cancel", "--state", "pending", "--type", "noop")
    assert all(job(j).state is JobState.CANCELLED for j in [*recent, *waiting])
    assert "would cancel 0 job(s)" in invoke("jobs", "cancel", "--state", "pending", "--dry-run")


def test_bulk_steering_refuses_bad_filters_in_one_line_with_exit_2(env: str) -> None:  # noqa: F811
    job_id = failed_job()
    for args, says in [
        (["jobs", "restart"], "give a job id, or filters"),
        (["jobs", "restart", "--state", "running"], "cannot restart running jobs"),
        (["jobs", "cancel", "--state", "completed"], "cannot cancel completed jobs"),
        (["jobs", "cancel", "--state", "pending", "--since", "2 fortnights"], "expected a duration"),
        (["jobs", "restart", job_id, "--state", "failed"], "not both"),
    ]:
        out = invoke(*args, code=2)
        assert says in out and len(out.strip().splitlines()) == 1, out
    assert job(job_id).state is JobState.FAILED


def test_jobs_show_prints_the_log_tail_and_the_counters(env: str) -> None:  # noqa: F811
    log = "\n".join(f"ffmpeg line {i}" for i in range(1, 31))
    job_id = failed_job(log=log)
    out = invoke("jobs", "show", job_id)
    assert "log of" in out and "ffmpeg line 30" in out and "ffmpeg line 11" in out
    assert "ffmpeg line 10\n" not in out  # the last 20 lines only
    assert "failures" in out and "aborts" in out and "0/3" in out


def test_runners_unregister_releases_jobs_and_rm_forgets_a_runner(env: str) -> None:  # noqa: F811
    add_runner("cpu1@box")
    (job_id,) = transaction(lambda s: rows.create_jobs(s, [t.NewJob(JobType.NOOP, "cpu", {})], utcnow()))
    assert transaction(lambda s: rows.claim(s, job_id, 1, "cpu1@box", None, utcnow()))

    out = invoke("runners", "rm", "cpu1", code=2)  # a live worker would only register again
    assert "unregister" in out and len(out.strip().splitlines()) == 1
    out = invoke("runners", "unregister", "cpu1")
    assert "cpu1@box unregistered; 1 running job(s) back to pending" in out
    j = job(job_id)
    assert (j.state, j.attempt, j.failures, j.aborts, j.worker) == (JobState.PENDING, 2, 0, 0, None)
    assert "cpu1@box" not in invoke("runners", "ls") and "unregistered" in invoke("runners", "ls", "--all")

    assert "cpu1@box removed" in invoke("runners", "rm", "cpu1@box")
    assert "cpu1@box" not in invoke("runners", "ls", "--all")
    info = RunnerInfo(hostname="old@box", queues=("cpu",), concurrency=1, version="0.1.0")
    transaction(lambda s: runners.register(s, info, None, utcnow() - timedelta(minutes=10)))  # silent: offline
    assert "old@box removed" in invoke("runners", "rm", "old")
    for args in (["runners", "rm", "nope"], ["runners", "unregister", "nope"]):
        out = invoke(*args, code=2)
        assert "no runner 'nope'" in out and len(out.strip().splitlines()) == 1
