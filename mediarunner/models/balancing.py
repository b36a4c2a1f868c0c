"""Which runner takes a job: runner priority, then a balancing method (``RUNNER_BALANCING``).

Workers pull messages, so the choice is made by the worker that holds a message: its claim
statement carries a guard that holds unless a *better* runner exists for the job it would claim.
A better runner is registered, enabled and heart-beating, consumes the job's queue, has idle
capacity (running jobs < concurrency), can run the job (its ``skills``) and is ahead by runner
priority (lower first) or, at equal priority, by the method:

* ``least_loaded``: fewer running jobs per slot (running / concurrency);
* ``weighted``: fewer running jobs per unit of weight (running / weight; weight defaults to the
  concurrency), so a runner of weight 3 takes three jobs for one of weight 1;
* ``round_robin``: it claimed longer ago (``last_claimed_at``; never counts as longest);
* ``priority``: strict order, by name at equal priority: the next runner only when it is full.

A worker that is not the preferred one leaves the job (its message rings the queue again after
``runner_decline_retry_seconds``); after ``runner_preference_grace_seconds`` any runner that can
run the job may take it, so a preferred runner that does not answer never strands work.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal, cast

from sqlalchemy import ColumnElement, String, Table, and_, bindparam, exists, func, or_, select, update
from sqlalchemy.orm import aliased

from mediarunner.models.base import sql_str
from mediarunner.models.capabilities import runner_can_run
from mediarunner.models.enums import JobState, RunnerStatus
from mediarunner.models.statements import RUNNERS
from mediarunner.models.tables import JobRow, RunnerRow

Method = Literal["least_loaded", "round_robin", "priority", "weighted"]


@dataclass(frozen=True)
class Balance:
    method: Method = "least_loaded"
    online_seconds: float = 30.0  # runner_offline_after_seconds
    grace_seconds: float = 5.0

    @classmethod
    def from_settings(cls, settings: Any) -> Balance:
        return cls(settings.runner_balancing, settings.runner_offline_after_seconds,
                   settings.runner_preference_grace_seconds)

    def params(self, now: datetime) -> dict[str, Any]:
        return {"online_since": now - timedelta(seconds=self.online_seconds),
                "grace_since": now - timedelta(seconds=self.grace_seconds)}


def _running(runner: Any) -> Any:
    busy = cast(Table, JobRow.__table__).alias("busy")
    # 'running' inline, not bound: with a bound state SQLite's claim took 0.2 ms more, even with
    # no runner rows to count for (it can plan the subquery only when it sees the value).
    return select(func.count()).where(busy.c.state == sql_str(JobState.RUNNING.value),
                                      busy.c.worker == runner.hostname).scalar_subquery()


def _ahead(method: Method, r: Any, me: Any) -> ColumnElement[bool]:
    """At equal runner priority, ``r`` comes before ``me`` by ``method``."""
    if method == "priority":
        return r.hostname < me.hostname
    if method == "round_robin":
        return or_(and_(r.last_claimed_at.is_(None), me.last_claimed_at.is_not(None)),
                   r.last_claimed_at < me.last_claimed_at)
    slots_r, slots_me = (r.concurrency, me.concurrency) if method == "least_loaded" else \
        (func.coalesce(r.weight, r.concurrency), func.coalesce(me.weight, me.concurrency))
    return _running(r) * slots_me < _running(me) * slots_r


def preferred(balance: Balance, job: Table) -> ColumnElement[bool]:
    """SQL guard for the ``job`` row a worker (bound as ``worker_``) is about to claim: true
    unless a better runner exists (see the module docstring) or the job waited past the grace."""
    r, me = aliased(RunnerRow, name="better"), aliased(RunnerRow, name="me")
    better = exists().where(
        me.hostname == bindparam("worker_"), r.hostname != me.hostname,
        r.unregistered_at.is_(None), r.offline_at.is_(None), r.status == sql_str(RunnerStatus.ENABLED.value),
        r.last_heartbeat_at >= bindparam("online_since", type_=RunnerRow.last_heartbeat_at.type),
        r.queues.cast(String).like(sql_str('%"') + job.c.queue + sql_str('"%')),
        _running(r) < r.concurrency, runner_can_run(r.skills, job),
        or_(r.priority < me.priority, and_(r.priority == me.priority, _ahead(balance.method, r, me))))
    waited = func.coalesce(job.c.dispatched_at, job.c.created_at) < bindparam(
        "grace_since", type_=JobRow.created_at.type)
    return or_(waited, ~better)


# round_robin: the claiming runner's last claim (bound as ``runner`` and ``now``).
STAMP_CLAIMER = update(RUNNERS).where(RUNNERS.c.hostname == bindparam("runner")).values(
    last_claimed_at=bindparam("now", type_=RUNNERS.c.last_claimed_at.type))


def stamp_claimer(done: Any) -> Any:
    """:data:`STAMP_CLAIMER` when the claim CTE ``done`` updated a row (PostgreSQL, one statement)."""
    return STAMP_CLAIMER.where(exists(select(done.c.id)))


def choose(method: Method, runners: list[tuple[str, int, int, int, int | None, datetime | None]]) -> str | None:
    """The runner a job goes to, in Python (the reference the SQL guard follows; for tests and
    docs): ``runners`` are (name, priority, running, concurrency, weight, last_claimed_at) of the
    online runners able to run it; None when all are full."""
    idle = [x for x in runners if x[2] < x[3]]
    if not idle:
        return None
    epoch = datetime.min

    def key(x: tuple[str, int, int, int, int | None, datetime | None]) -> tuple[Any, ...]:
        name, prio, running, conc, weight, last = x
        if method == "priority":
            return (prio, name)
        if method == "round_robin":
            return (prio, last.replace(tzinfo=None) if last else epoch, name)
        return (prio, running / (conc if method == "least_loaded" else (weight or conc)), name)

    return min(idle, key=key)[0]
