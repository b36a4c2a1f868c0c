"""The claim statements (SQL only): pending -> running for one job's message (:data:`CLAIM`) or for
the best due job of a queue (:func:`claim_next_statement`). The state changes that run them are
``transitions.claim_job`` and ``transitions.claim_next``."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from sqlalchemy import String, bindparam, exists, func, literal, literal_column, or_, select, update

from mediarunner.models.balancing import Balance, preferred, stamp_claimer
from mediarunner.models.base import sql_str
from mediarunner.models.capabilities import claimable
from mediarunner.models.direct import Direct
from mediarunner.models.enums import JobState
from mediarunner.models.ordering import RankOrder
from mediarunner.models.queries import JOB_COLUMNS
from mediarunner.models.statements import JOBS, logged

S = JobState
J = JOBS.c

CHILD = JOBS.alias("child")
CLAIM_VALUES: dict[str, Any] = dict(
    state=S.RUNNING, worker=bindparam("worker_"), worker_instance=bindparam("instance_"),
    celery_task_id=bindparam("task_id"), started_at=bindparam("now", type_=J.started_at.type),
    heartbeat_at=bindparam("now"), updated_at=bindparam("now"), stage=None, progress=0.0, error=None,
    error_kind=None)
# Whether the claimed job has children: a job without them needs no second read. The claimed row
# is named in full: SQLite's RETURNING renders columns unqualified (`id` would be the child's).
HAS_CHILDREN = exists().where(CHILD.c.parent_id == literal_column("jobs.id")).label("has_children")
CLAIM = (
    update(JOBS)
    .where(J.id == bindparam("job_id"), J.state == S.PENDING, J.attempt == bindparam("attempt_"),
           or_(J.run_after.is_(None), J.run_after <= bindparam("now", type_=J.run_after.type)))
    .values(**CLAIM_VALUES)
    .returning(*JOB_COLUMNS, HAS_CHILDREN)
)
CLAIM_LOGGED = Direct(logged(CLAIM, "job_assigned"))  # PostgreSQL; elsewhere CLAIM_ONE and its event
CLAIM_ONE = Direct(CLAIM)


@lru_cache(maxsize=32)
def claim_next_statement(order: RankOrder, postgres: bool, live: bool, balance: Balance | None) -> Any:
    """UPDATE the best due pending job of a queue (by :class:`RankOrder`) to running, RETURNING it,
    unless a better runner should take it (``balance``). A :class:`Direct` statement."""
    def pick(*where: Any, order_by: Any) -> Any:
        best = select(J.id).where(*claimable(live), *where).order_by(*order_by).limit(1)
        # Concurrent claims skip the row another claim holds instead of queueing behind it.
        return (best.with_for_update(skip_locked=True) if postgres else best).scalar_subquery()

    ranks = [rank for _, rank in order.classes]
    if order.aging_seconds > 0 or len(set(ranks)) != len(ranks):  # classes interleave: one sort
        best = pick(order_by=order.sql_order())
    else:  # the first of each class in turn, by `ix_jobs_pending_order` (no sort); evaluated lazily
        names = [name for name, _ in sorted(order.classes, key=lambda c: c[1])]
        best = func.coalesce(*(pick(J.priority_class == n, order_by=order.sql_order()[1:]) for n in names),
                             # the classes inline, not an expanding parameter re-rendered at each claim
                             pick(J.priority_class.not_in([sql_str(n) for n in names]),
                                  order_by=order.sql_order()[1:]))
    # SQLite: the pick and the update are one atomic write, the update re-checks the state. PostgreSQL:
    # the picked row is locked, and FOR UPDATE re-checked the pick's conditions on its newest version
    # as it locked it, so the update finds it by primary key alone. (With the state here too, the
    # claim lane's generic plan looked the id up by scanning the partial rank index: every pending
    # job of the queue at each claim.)
    pending = [] if postgres else [J.state == S.PENDING]
    stmt = update(JOBS).where(*pending, J.id == best,
                              *([preferred(balance, JOBS)] if balance else [])) \
        .values(**CLAIM_VALUES).returning(*JOB_COLUMNS, J.dispatched_at, HAS_CHILDREN)
    if not postgres:
        return Direct(stmt)
    more = [stamp_claimer] if balance is not None and balance.method == "round_robin" else []
    task = func.coalesce(literal(", task ") + bindparam("task_id", type_=String), "")
    return Direct(logged(stmt, "job_assigned", *more,
                         message=lambda done: literal("attempt ") + done.c.attempt.cast(String) + task))
