"""Rank order is execution order: the displayed queue rank is exactly the order in which a worker
claims jobs (priority class, priority higher first, age; a retried or failed-over job keeps its
age), on SQLite and PostgreSQL, with Redis and RabbitMQ (the end-to-end tests take their stack from
``ordered_stack``: conftest's ``matrix_stack``)."""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from mediarunner.config import Settings, get_settings
from mediarunner.models import transitions as t
from mediarunner.models.base import utcnow
from mediarunner.models.db import transaction
from mediarunner.models.enums import JobState, JobType
from mediarunner.models.ordering import RankOrder
from mediarunner.models.queries import get_job
from mediarunner.models.transitions import NewJob
from mediarunner.scheduler import ticks
from tests import rows
from tests.support import Stack, wait_for

T0 = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)
CLASSES = {"staff": 0, "default": 10, "student": 20}


def _mixed(rng: random.Random, n: int) -> list[tuple[str, int]]:
    """(class, priority) pairs: every class, small and large priorities, many ties."""
    return [(rng.choice(list(CLASSES)), rng.choice([-500, -3, -1, 0, 0, 1, 2, 7, 999])) for _ in range(n)]


def _rank_order(url: str, ids: list[str], settings: Settings, now: datetime | None = None) -> list[str]:
    """The displayed ranks, from a rank tick, lowest (next) first; every id must be ranked."""
    transaction(lambda s: ticks.update_ranks(s, settings, now), url=url)
    ranked = {i: transaction(lambda s, i=i: get_job(s, i, with_children=False), url=url).rank for i in ids}
    assert None not in ranked.values(), ranked
    return sorted(ids, key=lambda i: ranked[i] or 0)


# ------------------------------------------------------------------------------ the claim (no broker)

def test_claims_follow_the_displayed_rank_exactly(db_url: str) -> None:
    settings = Settings(priority_classes=CLASSES)
    order = RankOrder.from_settings(settings)
    rng = random.Random(7)
    jobs = [NewJob(JobType.NOOP, "cpu", {}, priority=p, priority_class=c) for c, p in _mixed(rng, 40)]
    for i, j in enumerate(jobs):  # a few share a creation time: ties go by id, in both places
        transaction(lambda s, j=j, i=i: rows.create_jobs(s, [j], T0 + timedelta(seconds=i // 3)), url=db_url)
    transaction(lambda s: rows.create_jobs(s, [NewJob(JobType.NOOP, "gpu", {})], T0), url=db_url)  # other queue
    ids = [j.id for j in jobs]
    expected = _rank_order(db_url, ids, settings, T0)
    by_key = sorted(jobs, key=lambda j: order.key(SimpleJob(j, T0 + timedelta(seconds=ids.index(j.id) // 3)), T0))
    assert expected == [j.id for j in by_key]
    claimed = []
    while (got := transaction(lambda s: t.claim_next(s, "cpu", "w@h", None, T0, order=order), url=db_url)):
        job, owed = got
        assert owed  # inserted without a publish: the outbox would have published them
        assert job.state is JobState.RUNNING and job.queue == "cpu" and job.worker == "w@h"
        claimed.append(job.id)
    assert claimed == expected


class SimpleJob:
    def __init__(self, job: NewJob, created_at: datetime) -> None:
        self.id, self.priority, self.priority_class, self.created_at = (job.id, job.priority, job.priority_class,
                                                                         created_at)


def test_a_job_in_backoff_is_neither_ranked_nor_claimed_and_keeps_its_age(db_url: str) -> None:
    settings = Settings(priority_classes=CLASSES)
    order = RankOrder.from_settings(settings)
    old, young = (transaction(lambda s, i=i: rows.create_jobs(s, [NewJob(JobType.NOOP, "cpu", {})], T0 + i),
                              url=db_url)[0] for i in (timedelta(0), timedelta(seconds=5)))
    assert transaction(lambda s: rows.claim(s, old, 1, "w@h", None, T0), url=db_url)
    now = T0 + timedelta(seconds=10)
    assert transaction(lambda s: t.requeue(s, old, 1, "boom", now + timedelta(seconds=30), now), url=db_url)
    transaction(lambda s: ticks.update_ranks(s, settings, now), url=db_url)
    assert transaction(lambda s: get_job(s, old), url=db_url).rank is None  # not due: no place shown
    got = transaction(lambda s: t.claim_next(s, "cpu", "w@h", None, now, order=order), url=db_url)
    assert got is not None and got[0].id == young
    later = now + timedelta(seconds=31)
    transaction(lambda s: rows.create_jobs(s, [NewJob(JobType.NOOP, "cpu", {})], later), url=db_url)
    assert _rank_order(db_url, [old], settings, later) == [old]
    got = transaction(lambda s: t.claim_next(s, "cpu", "w@h", None, later, order=order), url=db_url)
    assert got is not None and got[0].id == old and got[0].attempt == 2  # due again: its original age wins
    assert got[1]  # requeued for a retry, its message was not published yet: the claimer owes one


# ------------------------------------------------------------------------------ end to end

@pytest.fixture
def ordered_stack(matrix_stack: Stack) -> Iterator[Stack]:
    """The stack the ordering tests run on: each database on each broker (conftest's matrix_stack)."""
    yield matrix_stack


def _submit_mixed(stack: Stack, n: int, seed: int) -> list[str]:
    client = stack.client()
    return [client.submit_noop(priority=p, priority_class=c).id for c, p in _mixed(random.Random(seed), n)]


def _started_order(stack: Stack, ids: list[str]) -> list[str]:
    client = stack.client()
    jobs = [wait_for(lambda i=i: (j := client.get(i)).state is JobState.COMPLETED and j, 60, what=f"job {i}")
            for i in ids]
    return [j.id for j in sorted(jobs, key=lambda j: j.started_at)]


def _classes(monkeypatch: pytest.MonkeyPatch) -> None:
    """Three classes for the test's client and in-process worker (restored after the test)."""
    monkeypatch.setenv("MEDIARUNNER_PRIORITY_CLASSES", json.dumps(CLASSES))
    get_settings.cache_clear()


def test_one_worker_runs_a_mixed_backlog_in_rank_order(ordered_stack: Stack, monkeypatch: pytest.MonkeyPatch) -> None:
    _classes(monkeypatch)
    settings = ordered_stack.settings()
    ids = _submit_mixed(ordered_stack, 36, seed=11)  # no worker yet: the whole backlog waits
    expected = _rank_order(settings.database_url, ids, settings)
    ordered_stack.inproc_worker("one", concurrency=1)
    assert _started_order(ordered_stack, ids) == expected


def test_retried_and_failed_over_jobs_keep_their_place(ordered_stack: Stack, monkeypatch: pytest.MonkeyPatch) -> None:
    _classes(monkeypatch)
    settings = ordered_stack.settings()
    url = settings.database_url
    ids = _submit_mixed(ordered_stack, 24, seed=5)
    rng = random.Random(3)
    retried, lost, backoff = ids[0:4], ids[4:8], ids[8]
    now = utcnow()
    for job_id in [*retried, *lost, backoff]:  # a worker took them (their messages are still queued)
        assert transaction(lambda s, j=job_id: rows.claim(s, j, 1, "gone@h", None, now - timedelta(minutes=5)),
                           url=url)
    for job_id in retried:  # a transient error; its backoff is over
        assert transaction(lambda s, j=job_id: t.requeue(s, j, 1, "boom", now - timedelta(seconds=rng.random()),
                                                         now), url=url)
    assert transaction(lambda s: t.requeue(s, backoff, 1, "boom", now + timedelta(hours=1), now), url=url)
    # The worker of the others went silent: beat's failover puts them back (attempt 2).
    failed_over = transaction(lambda s: ticks.fail_over(s, now, settings), url=url)
    assert sorted(failed_over.requeued) == sorted(lost)
    runnable = [i for i in ids if i != backoff]
    expected = _rank_order(url, runnable, settings)
    ordered_stack.inproc_worker("one", concurrency=1)
    assert _started_order(ordered_stack, runnable) == expected
    held = transaction(lambda s: get_job(s, backoff), url=url)
    assert held.state is JobState.PENDING and held.attempt == 2  # its backoff has not expired
    for job_id in [*retried, *lost]:
        assert transaction(lambda s, j=job_id: get_job(s, j), url=url).attempt == 2


# ------------------------------------------------------------------------------ fairness (aging)

def test_aging_moves_a_job_up_one_class_per_step() -> None:
    off = RankOrder.from_settings(Settings(priority_classes=CLASSES))
    on = RankOrder.from_settings(Settings(priority_classes=CLASSES, priority_aging_minutes=10))
    assert off.aging_seconds == 0 and off.effective_class("student", T0, T0 + timedelta(hours=5)) == 2
    assert [on.effective_class("student", T0, T0 + timedelta(minutes=m)) for m in (0, 9, 10, 19, 20, 90)] == \
        [2, 2, 1, 1, 0, 0]  # never past the best class
    assert on.effective_class("staff", T0, T0 + timedelta(hours=1)) == 0
    assert on.effective_class("gone", T0, T0) == 3  # a class no longer configured comes last
    young_staff = SimpleJobKey("s", "staff", 0, T0 + timedelta(minutes=25))
    old_student = SimpleJobKey("o", "student", 0, T0)
    now = T0 + timedelta(minutes=25)
    assert sorted([young_staff, old_student], key=lambda j: off.key(j, now))[0] is young_staff
    assert sorted([young_staff, old_student], key=lambda j: on.key(j, now))[0] is old_student  # aged to staff


class SimpleJobKey:
    def __init__(self, id: str, priority_class: str, priority: int, created_at: datetime) -> None:
        self.id, self.priority_class, self.priority, self.created_at = id, priority_class, priority, created_at


def test_the_claim_and_the_ranks_respect_aging(db_url: str) -> None:
    settings = Settings(priority_classes=CLASSES, priority_aging_minutes=10)
    order = RankOrder.from_settings(settings)
    specs = [("student", 0, 0), ("default", 5, 12), ("staff", 0, 21), ("student", 9, 24), ("default", 0, 25)]
    ids = []
    for cls, prio, minute in specs:
        job = NewJob(JobType.NOOP, "cpu", {}, priority=prio, priority_class=cls)
        transaction(lambda s, j=job, m=minute: rows.create_jobs(s, [j], T0 + timedelta(minutes=m)), url=db_url)
        ids.append(job.id)
    now = T0 + timedelta(minutes=26)
    # Effective classes at 26 min: student@0 -> staff (2 steps), default@12 -> staff, staff@21 staff,
    # student@24 student, default@25 default. Staff level by priority then age: default@12 (prio 5), then
    # student@0, staff@21; then default@25; then student@24.
    expected = [ids[1], ids[0], ids[2], ids[4], ids[3]]
    assert _rank_order(db_url, ids, settings, now) == expected
    claimed = []
    while (got := transaction(lambda s: t.claim_next(s, "cpu", "w@h", None, now, order=order), url=db_url)):
        claimed.append(got[0].id)
    assert claimed == expected
