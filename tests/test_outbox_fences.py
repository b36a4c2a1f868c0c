"""The outbox re-publishes only what is lost, and failover does not punish a database outage
(issue 13, items 10 and 12): beat logic with ``now`` as a parameter."""

from __future__ import annotations

import functools
import itertools
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import redis

from mediarunner.metrics import broker_queue_lengths
from mediarunner.models import transitions as t
from mediarunner.models.enums import JobState
from mediarunner.scheduler import ticks
from tests import rows as fixtures
from tests.support import create_pg_database, drop_pg_database, empty_broker, make_stack
from tests.test_scheduler_ticks import job, new, settings, tx

T0 = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)


def queued(r: Any, queue: str) -> int:
    """Messages in a Redis queue, every priority level (kombu keeps one list per level)."""
    levels = [queue] + [f"{queue}{sep}{n}" for sep in (":", "\x06\x16") for n in range(10)]
    return sum(int(r.llen(k)) for k in levels)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def redispatch_times(url: str, job_id: str, until: float, step: float = 10.0, **kw: object) -> list[float]:
    """Simulate beat every ``step`` s up to ``until``: when was ``job_id`` published again?"""
    s = settings(**kw)
    times = []
    clock = 0.0
    while clock <= until:
        if job_id in tx(url, ticks.take_due, at(clock), s):
            times.append(clock)
            tx(url, t.mark_dispatched, [job_id], at(clock))
        clock += step
    return times


def test_redispatch_backs_off_exponentially_up_to_a_cap(db_url: str) -> None:
    a, = new(db_url)
    tx(db_url, t.mark_dispatched, [a], T0)
    times = redispatch_times(db_url, a, 6000, redispatch_after_seconds=300, redispatch_max_seconds=1200)
    # 300 s, then 600 s, then 1200 s (the cap) between re-publications; never more often.
    assert times[:4] == [310, 920, 2130, 3340]
    assert all(b - a >= 1200 for a, b in itertools.pairwise(times[2:]))
    assert job(db_url, a).state is JobState.PENDING


def test_never_published_and_retried_jobs_are_due_at_once(db_url: str) -> None:
    s = settings()
    a, = new(db_url)
    tx(db_url, t.mark_dispatched, [a], T0)
    assert tx(db_url, ticks.take_due, at(301), s) == [a]
    tx(db_url, t.mark_dispatched, [a], at(301))
    tx(db_url, fixtures.claim, a, 1, "w", None, at(302))
    tx(db_url, t.requeue, a, 1, "io", None, at(303))  # a new attempt: its message is owed at once
    assert tx(db_url, ticks.take_due, at(303), s) == [a]
    tx(db_url, t.mark_dispatched, [a], at(303))
    assert tx(db_url, ticks.due_for_dispatch, at(604), s) == [a]  # the count started again at 0


def test_a_queue_holding_every_message_lost_nothing(db_url: str) -> None:
    s = settings()
    a, b = new(db_url)[0], new(db_url, queue="gpu")[0]
    never, = new(db_url)
    tx(db_url, t.mark_dispatched, [a, b], T0)
    later = at(400)
    # cpu holds a message for its one published job: not lost. gpu holds none: lost.
    assert set(tx(db_url, ticks.due_for_dispatch, later, s, backlog=lambda qs: {"cpu": 1, "gpu": 0})) == {b, never}
    asked: list[list[str]] = []
    assert set(tx(db_url, ticks.due_for_dispatch, later, s,
                  backlog=lambda qs: asked.append(list(qs)) or {"cpu": 5, "gpu": 1})) == {never}
    assert asked == [["cpu", "gpu"]]
    # The broker cannot say: back to re-publishing by age.
    assert set(tx(db_url, ticks.due_for_dispatch, later, s, backlog=lambda qs: None)) == {a, b, never}


def test_failover_waits_after_a_database_outage(db_url: str) -> None:
    s = settings(failover_after_seconds=30)
    a, = new(db_url)
    tx(db_url, fixtures.claim, a, 1, "w", None, T0)  # heartbeat at T0, then the database went down
    # Beat reached the database again at T0+50: silence before that is not the worker's fault.
    assert tx(db_url, ticks.fail_over, at(60), s, steady_since=at(50)).requeued == []
    assert job(db_url, a).state is JobState.RUNNING
    assert tx(db_url, ticks.fail_over, at(81), s, steady_since=at(50)).requeued == [a]


@pytest.fixture
def own_pg() -> Iterator[str]:
    """A database of this test's own: the session's shared one holds other tests' pending jobs."""
    url = create_pg_database()
    yield url
    drop_pg_database(url)


def waiting(broker_url: str, queue: str) -> int:
    """Messages waiting in ``queue``, as the broker-queue metric reads them (on Redis also
    checked against the lists themselves)."""
    n = broker_queue_lengths(broker_url, [queue])
    assert n is not None, "the broker did not answer"
    if not broker_url.startswith("amqp"):
        assert n[queue] == queued(redis.Redis.from_url(broker_url), queue)
    return n[queue]


def test_an_unconsumed_queue_does_not_grow(tmp_path: Path, own_pg: str, broker_url: str) -> None:
    """No worker consumes ``cpu``: over many simulated redispatch periods the queue keeps one
    message per job; a message really lost (the broker flushed) is published once more."""
    pg_url = own_pg

    from mediarunner.scheduler.dispatch import dispatch

    with make_stack(tmp_path, pg_url, broker_url, MEDIARUNNER_REDISPATCH_AFTER_SECONDS="300") as st:
        from mediarunner.workers import beat

        client = st.client()
        backlog = functools.partial(beat.broker_backlog, celery=client.app)
        ids = [client.submit_noop().id for _ in range(3)]
        s = st.settings()
        assert waiting(broker_url, "cpu") == 3
        start = datetime.now(UTC)
        for period in range(1, 9):
            now = start + timedelta(seconds=301 * period)
            for job_id in tx(pg_url, ticks.take_due, now, s, backlog=backlog):
                dispatch(job_id, app=client.app)
            assert waiting(broker_url, "cpu") == 3, f"period {period}"
        empty_broker(broker_url)  # the broker lost its messages
        assert backlog(["cpu", "gpu"]) == {"cpu": 0, "gpu": 0}
        now = start + timedelta(seconds=301 * 20)
        due = tx(pg_url, ticks.take_due, now, s, backlog=backlog)
        assert sorted(due) == sorted(ids)
        for job_id in due:
            dispatch(job_id, app=client.app)
        assert waiting(broker_url, "cpu") == 3


@pytest.mark.parametrize("gap", [0.5, 20.0])
def test_beat_steadiness_restarts_after_a_gap(gap: float) -> None:
    from mediarunner.workers.beat import _Steadiness

    st = _Steadiness()
    st.reached(T0, T0, 1.0)
    st.reached(at(1), at(1), 1.0)
    st.reached(at(2), at(2 + gap), 1.0)  # a lease that took `gap` seconds: the database stalled
    assert st.steady_for(2, at(2 + gap)) is (gap < 1)
    st.reached(at(60), at(60), 1.0)  # no tick reached the database for a long while
    assert not st.steady_for(2, at(60))
    st.failed()
    assert not st.steady_for(0, at(100))


def test_submissions_skip_a_broker_that_just_failed(tmp_path: Path, own_pg: str) -> None:
    """After one failed publish a client stops trying the broker for ``PUBLISH_PAUSE_SECONDS``:
    the next submissions return at once, pending and unpublished, for the outbox to publish."""
    from mediarunner.models.db import transaction
    from mediarunner.models.tables import JobRow
    from tests.support import free_port

    dead_broker = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    with make_stack(tmp_path, own_pg, dead_broker, MEDIARUNNER_PUBLISH_PAUSE_SECONDS="600") as st:
        client = st.client()
        first = client.submit_noop()
        started = time.monotonic()
        later = [client.submit_noop() for _ in range(5)]
        assert time.monotonic() - started < 2.0, "submissions kept trying a broker known to be down"
        ids = [first.id] + [j.id for j in later]
        stamps = transaction(lambda s: [s.get(JobRow, i).dispatched_at for i in ids], url=own_pg)
        assert stamps == [None] * 6  # the outbox's next tick publishes every one of them
        assert all(client.get(i).state is JobState.PENDING for i in ids)
        due = tx(own_pg, ticks.take_due, datetime.now(UTC), st.settings())
        assert sorted(due) == sorted(ids)
