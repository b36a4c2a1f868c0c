"""Beat logic with time as a parameter: no sleeping, no broker."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from mediarunner.config import Settings
from mediarunner.errors import InvalidInputError, ProcessingError, StorageError
from mediarunner.models import transitions as t
from mediarunner.models.db import session_scope, transaction
from mediarunner.models.enums import ErrorKind, JobState, JobType
from mediarunner.models.queries import get_job, list_jobs
from mediarunner.models.retry import RetryPolicy, decide, decide_abort
from mediarunner.models.tables import JobRow, RankRow
from mediarunner.models.transitions import NewJob
from mediarunner.scheduler import lease, ticks
from tests import rows as fixtures

T0 = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)
S = JobState


def settings(**kw: object) -> Settings:
    base: dict[str, object] = dict(failover_after_seconds=30, job_time_limit_seconds=3600,
                                   redispatch_after_seconds=300, purge_after_days=7, purge_batch_size=2)
    base.update(kw)
    return Settings(**base)  # type: ignore[arg-type]


def new(url: str, *, now: datetime = T0, children: int = 0, queue: str = "cpu", priority: int = 0,
        cls: str = "default", max_attempts: int = 3) -> list[str]:
    jobs = [NewJob(JobType.NOOP, queue, {}, priority=priority, priority_class=cls, max_attempts=max_attempts)]
    jobs += [NewJob(JobType.NOOP, queue, {}, parent=0) for _ in range(children)]
    return transaction(lambda s: fixtures.create_jobs(s, jobs, now), url=url)


def job(url: str, job_id: str):  # type: ignore[no-untyped-def]
    return transaction(lambda s: get_job(s, job_id, with_children=False), url=url)


def tx(url: str, fn, *a, **kw):  # type: ignore[no-untyped-def]
    return transaction(lambda s: fn(s, *a, **kw), url=url)


# --------------------------------------------------------------------------- retry policy (pure)

def _job(failures: int = 0, max_attempts: int = 3, aborts: int = 0):  # type: ignore[no-untyped-def]
    from mediarunner.models.schemas import Job

    return Job(id="j", type=JobType.NOOP, state=S.RUNNING, stage=None, progress=0, queue="cpu", routing_reason=None,
               priority=0, priority_class="default", rank=None, parent_id=None, root_id="j", attempt=failures + 1,
               failures=failures, max_attempts=max_attempts, payload={}, meta={}, result=None, error=None,
               error_kind=None, log_tail=None, worker=None, celery_task_id=None, created_at=T0, started_at=None,
               heartbeat_at=None, finished_at=None, run_after=None, aborts=aborts)


def test_abort_policy_is_pure_and_apart_from_failures() -> None:
    d = decide_abort(_job(failures=2, max_attempts=3, aborts=8), max_aborts=10)
    assert d.retry and d.delay == 0.0  # failures do not matter: losing a worker is not the job's error
    d = decide_abort(_job(aborts=9), max_aborts=10)
    assert not d.retry and d.kind is ErrorKind.PERMANENT and "poison" in d.reason


def test_retry_policy_is_pure_and_classifies() -> None:
    p = RetryPolicy(base_seconds=5, max_seconds=60, jitter=0.0)
    assert not decide(InvalidInputError("corrupt"), _job(), p).retry
    assert decide(InvalidInputError("corrupt"), _job(), p).kind is ErrorKind.PERMANENT
    assert not decide(ValueError("bad payload"), _job(), p).retry
    d = [decide(StorageError("reset"), _job(f), p) for f in range(2)]
    assert [x.retry for x in d] == [True, True] and [x.delay for x in d] == [5, 10]
    assert not decide(ProcessingError("killed"), _job(2), p).retry  # third failure of three
    assert decide(OSError("io"), _job(0, max_attempts=1), p).retry is False
    assert decide(StorageError("x"), _job(10, 99), p).delay == 60  # capped
    jittered = {decide(StorageError("x"), _job(1), RetryPolicy(5, 60, 0.25), random.Random(i)).delay
                for i in range(20)}
    assert len(jittered) > 1 and all(7.5 <= x <= 12.5 for x in jittered)


# --------------------------------------------------------------------------- outbox

def test_outbox_finds_unpublished_due_and_stuck_jobs(db_url: str) -> None:
    s = settings()
    a, = new(db_url)  # never published
    b, = new(db_url)
    tx(db_url, t.mark_dispatched, [b], T0)  # published just now
    c, = new(db_url)
    tx(db_url, fixtures.claim, c, 1, "w", None, T0)
    tx(db_url, t.requeue, c, 1, "io", T0 + timedelta(seconds=60), T0)  # backoff not over
    assert set(tx(db_url, ticks.due_for_dispatch, T0, s)) == {a}
    later = T0 + timedelta(seconds=301)
    assert set(tx(db_url, ticks.due_for_dispatch, later, s)) == {a, b, c}  # b stuck, c due


def test_children_are_not_dispatched_until_released(db_url: str) -> None:
    root, _kid = new(db_url, children=1)
    assert tx(db_url, ticks.due_for_dispatch, T0, settings()) == [root]


# --------------------------------------------------------------------------- failover and timeouts

def test_silent_running_job_is_failed_over_without_a_failure_then_fails_as_poison_after_max_aborts(
        db_url: str) -> None:
    s = settings(max_aborts=3)
    jid, = new(db_url, max_attempts=1)  # one attempt: a single counted failure would fail it
    tx(db_url, fixtures.claim, jid, 1, "w1", None, T0)
    assert tx(db_url, ticks.fail_over, T0 + timedelta(seconds=10), s).requeued == []
    r = tx(db_url, ticks.fail_over, T0 + timedelta(seconds=31), s)
    assert r.requeued == [jid]
    j = job(db_url, jid)
    assert (j.state, j.attempt, j.failures, j.aborts, j.run_after) == (S.PENDING, 2, 0, 1, None)
    assert "w1" in (j.error or "") and j.created_at == T0  # keeps its age: its rank
    tx(db_url, fixtures.claim, jid, 2, "w2", None, T0 + timedelta(seconds=32))
    assert tx(db_url, ticks.fail_over, T0 + timedelta(seconds=70), s).requeued == [jid]
    tx(db_url, fixtures.claim, jid, 3, "w3", None, T0 + timedelta(seconds=71))
    r = tx(db_url, ticks.fail_over, T0 + timedelta(seconds=110), s)
    assert r.failed == [jid]
    j = job(db_url, jid)
    assert (j.state, j.failures, j.aborts, j.error_kind) == (S.FAILED, 0, 2, "permanent")
    assert "poison job" in (j.error or "") and "MAX_ABORTS=3" in (j.error or "")


def test_a_released_job_counts_neither_a_failure_nor_an_abort(db_url: str) -> None:
    jid, = new(db_url, max_attempts=1)
    tx(db_url, fixtures.claim, jid, 1, "w1", None, T0)
    assert tx(db_url, t.release, jid, 1, "worker warm shutdown", T0, aborted=False)
    assert not tx(db_url, t.release, jid, 1, "again", T0, aborted=False)  # fenced: once only
    j = job(db_url, jid)
    assert (j.state, j.attempt, j.failures, j.aborts, j.worker) == (S.PENDING, 2, 0, 0, None)
    tx(db_url, fixtures.claim, jid, 2, "w2", None, T0)
    assert tx(db_url, t.complete, jid, 2, {}, T0)


def test_restart_forgets_aborts(db_url: str) -> None:
    s = settings(max_aborts=1)
    jid, = new(db_url)
    tx(db_url, fixtures.claim, jid, 1, "w1", None, T0)
    assert tx(db_url, ticks.fail_over, T0 + timedelta(seconds=31), s).failed == [jid]  # the first abort is the last
    assert tx(db_url, t.restart, jid, T0 + timedelta(seconds=40))
    assert (job(db_url, jid).aborts, job(db_url, jid).state) == (0, S.PENDING)


def test_heartbeat_keeps_job_alive(db_url: str) -> None:
    jid, = new(db_url)
    tx(db_url, fixtures.claim, jid, 1, "w1", None, T0)
    tx(db_url, t.touch, jid, 1, T0 + timedelta(seconds=25))
    assert tx(db_url, ticks.fail_over, T0 + timedelta(seconds=40), settings()).requeued == []


def test_overlong_job_times_out_and_children_fail(db_url: str) -> None:
    root, kid = new(db_url, children=1)
    tx(db_url, fixtures.claim, root, 1, "w", None, T0)
    tx(db_url, t.touch, root, 1, T0 + timedelta(seconds=3601))
    r = tx(db_url, ticks.fail_over, T0 + timedelta(seconds=3602), settings())
    assert r.timed_out == [root]
    assert job(db_url, root).state is S.TIMEOUT and job(db_url, kid).state is S.PARENT_FAILED


def test_live_jobs_have_their_own_time_limit(db_url: str) -> None:
    s = settings(live_time_limit_seconds=7200)
    live, = transaction(lambda ss: fixtures.create_jobs(ss, [NewJob(JobType.LIVE, "cpu", {})], T0), url=db_url)
    vod, = new(db_url)
    for jid in (live, vod):
        tx(db_url, fixtures.claim, jid, 1, "w", None, T0)
        tx(db_url, t.touch, jid, 1, T0 + timedelta(seconds=3601), result={"seconds_processed": 3601.0})
    assert tx(db_url, ticks.fail_over, T0 + timedelta(seconds=3602), s).timed_out == [vod]
    assert job(db_url, live).state is S.RUNNING and job(db_url, live).result == {"seconds_processed": 3601.0}
    tx(db_url, t.touch, live, 1, T0 + timedelta(seconds=7201))
    assert tx(db_url, ticks.fail_over, T0 + timedelta(seconds=7202), s).timed_out == [live]


# --------------------------------------------------------------------------- ranks

@pytest.mark.parametrize("classes", [
    {"staff": 0, "default": 10, "batch": 20},  # a rank per class: numbered in index order, no sort
    {"staff": 0, "default": 10, "batch": 10},  # default and batch interleave: one sort of all jobs
])
def test_ranks_match_the_documented_order_on_a_random_table(db_url: str, classes: dict[str, int]) -> None:
    rng = random.Random(7)
    rows = []
    for _ in range(300):
        cls = rng.choice(["staff", "default", "default", "batch", "retired"])  # "retired": no longer configured
        rows.append(NewJob(JobType.NOOP, rng.choice(["cpu", "gpu", "cpu"]), {}, priority=rng.randint(-2, 2),
                           priority_class=cls))
        created = T0 + timedelta(seconds=rng.randint(0, 50))  # many ties on age: the id decides
        tx(db_url, fixtures.create_jobs, rows[-1:], created)
    claimed = [r.id for r in rows[::17]]
    for job_id in claimed:
        tx(db_url, fixtures.claim, job_id, 1, "w", None, T0)
    s = settings(priority_classes=classes)
    tx(db_url, ticks.update_ranks, s)
    with session_scope(db_url) as session:
        got = dict(session.execute(select(RankRow.job_id, RankRow.rank)).tuples().all())
        pending = session.execute(select(JobRow.id, JobRow.queue, JobRow.priority_class, JobRow.priority,
                                         JobRow.created_at).where(JobRow.state == S.PENDING)).all()
    last = max(classes.values()) + 1
    expected: dict[str, int] = {}
    for queue in {p.queue for p in pending}:
        mine = sorted((p for p in pending if p.queue == queue), key=lambda p: (
            classes.get(p.priority_class, last), -p.priority, p.created_at, p.id))
        expected.update({p.id: n for n, p in enumerate(mine, 1)})
    assert len(expected) == 300 - len(claimed) and got == expected


def test_ranks_order_by_class_priority_age_per_queue(db_url: str) -> None:
    s = settings(priority_classes={"staff": 0, "default": 10})
    old, = new(db_url, now=T0)
    young, = new(db_url, now=T0 + timedelta(seconds=5))
    urgent, = new(db_url, now=T0 + timedelta(seconds=9), priority=5)
    staff, = new(db_url, now=T0 + timedelta(seconds=10), cls="staff")
    gpu, = new(db_url, queue="gpu")
    running, = new(db_url)
    tx(db_url, fixtures.claim, running, 1, "w", None, T0)
    assert tx(db_url, ticks.update_ranks, s) == 5
    ranks = {k: job(db_url, k).rank for k in (old, young, urgent, staff, gpu, running)}
    assert ranks == {staff: 1, urgent: 2, old: 3, young: 4, gpu: 1, running: None}
    assert tx(db_url, ticks.update_ranks, s) == 0  # nothing moved: nothing written
    tx(db_url, fixtures.claim, staff, 1, "w", None, T0)  # the head of the cpu queue starts: the rest move up
    assert job(db_url, staff).rank is None
    assert tx(db_url, ticks.update_ranks, s) == 3
    assert {k: job(db_url, k).rank for k in (urgent, old, young, gpu)} == {urgent: 1, old: 2, young: 3, gpu: 1}
    assert [j.rank for j in tx(db_url, list_jobs, state=S.PENDING) if j.id == young] == [3]
    with session_scope(db_url) as session:  # the claimed job's rank row is gone, not just hidden
        assert session.get(RankRow, staff) is None


# --------------------------------------------------------------------------- purge

def test_purge_deletes_old_completed_families_in_batches(db_url: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    s = settings(scratch_dir=tmp_path)
    fams = []
    for _ in range(3):
        root, kid = new(db_url, children=1)
        tx(db_url, fixtures.claim, root, 1, "w", None, T0)
        tx(db_url, t.complete, root, 1, {}, T0)
        tx(db_url, fixtures.claim, kid, 1, "w", None, T0)
        tx(db_url, t.complete, kid, 1, {}, T0)
        fams.append((root, kid))
    (tmp_path / f"{fams[0][1]}-1").mkdir()  # scratch left behind by a killed worker
    active_root, active_kid = new(db_url, children=1)  # completed parent, child still pending
    tx(db_url, fixtures.claim, active_root, 1, "w", None, T0)
    tx(db_url, t.complete, active_root, 1, {}, T0)
    fresh, = new(db_url, now=T0 + timedelta(days=6))

    now = T0 + timedelta(days=8)
    assert len(tx(db_url, ticks.purge, now, s, dry_run=True)) == 2
    first = tx(db_url, ticks.purge, now, s)
    second = tx(db_url, ticks.purge, now, s)
    assert len(first) == 2 and len(second) == 1 and tx(db_url, ticks.purge, now, s) == []
    remaining = tx(db_url, lambda sess: set(sess.scalars(select(JobRow.id))))
    assert remaining == {active_root, active_kid, fresh}
    assert not (tmp_path / f"{fams[0][1]}-1").exists()
    assert tx(db_url, ticks.purge, now, settings(purge_after_days=0)) == []


def test_purge_keeps_a_family_restarted_after_it_was_selected(db_url: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """The purge re-checks in its deletes: a child restarted between selection and deletion stays."""
    root, kid = new(db_url, children=1)
    tx(db_url, fixtures.claim, root, 1, "w", None, T0)
    tx(db_url, t.complete, root, 1, {}, T0)
    tx(db_url, fixtures.claim, kid, 1, "w", None, T0)
    tx(db_url, t.fail, kid, 1, "boom", "permanent", T0)
    now = T0 + timedelta(days=8)
    s = settings(scratch_dir=tmp_path)
    assert tx(db_url, ticks.purge, now, s, dry_run=True) == [root]  # selected...
    assert tx(db_url, t.restart, kid, now)  # ...then an operator restarts the failed child
    cutoff = now - timedelta(days=s.purge_after_days)
    assert tx(db_url, ticks.delete_families, [root], cutoff, tmp_path) == []
    remaining = tx(db_url, lambda sess: set(sess.scalars(select(JobRow.id))))
    assert remaining == {root, kid}


# --------------------------------------------------------------------------- lease

def test_only_one_scheduler_holds_the_lease(db_url: str) -> None:
    assert tx(db_url, lease.acquire, "scheduler", "beat-a", T0, 10)
    assert not tx(db_url, lease.acquire, "scheduler", "beat-b", T0 + timedelta(seconds=5), 10)
    assert tx(db_url, lease.acquire, "scheduler", "beat-a", T0 + timedelta(seconds=5), 10)  # renew
    assert tx(db_url, lease.acquire, "scheduler", "beat-b", T0 + timedelta(seconds=16), 10)  # a died
    assert not tx(db_url, lease.acquire, "scheduler", "beat-a", T0 + timedelta(seconds=17), 10)
    n = tx(db_url, lambda sess: sess.scalar(select(func.count()).select_from(JobRow)))
    assert n == 0


def test_auto_gpu_transcriptions_fall_back_to_cpu_when_no_gpu_worker(db_url: str) -> None:
    s = settings(reroute_after_seconds=30)
    jobs = [NewJob(JobType.TRANSCRIBE, "gpu", {"device": "auto"}),
            NewJob(JobType.TRANSCRIBE, "gpu", {"device": "gpu"})]
    auto = tx(db_url, fixtures.create_jobs, [jobs[0]], T0)[0]
    forced = tx(db_url, fixtures.create_jobs, [jobs[1]], T0)[0]
    later = T0 + timedelta(seconds=31)
    assert tx(db_url, ticks.has_stranded_candidates, later, s)
    assert tx(db_url, ticks.reroute_stranded, later, s, {"gpu", "cpu"}) == []  # a gpu worker is up
    assert tx(db_url, ticks.reroute_stranded, T0 + timedelta(seconds=5), s, {"cpu"}) == []  # not yet
    assert tx(db_url, ticks.reroute_stranded, later, s, {"cpu"}) == [auto]
    j = job(db_url, auto)
    assert (j.queue, j.attempt, j.routing_reason) == ("cpu", 2, "no gpu worker online: cpu fallback")
    assert job(db_url, forced).queue == "gpu"  # explicitly asked for a GPU: it waits
