"""SQL plumbing shared by the write side (``transitions``, ``runners``): the tables as Core
objects, statements built once, PostgreSQL's one-round-trip CTE wrapper, the activity log insert.
Nothing here changes a job's state by itself."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Connection, CursorResult, Select, Table, bindparam, insert, literal, select, update
from sqlalchemy.orm import Session

from mediarunner.config.redact import mask_secrets
from mediarunner.models import direct
from mediarunner.models.direct import Direct
from mediarunner.models.tables import EventRow, JobRow, RunnerRow

JOBS = cast(Table, JobRow.__table__)
EVENTS = cast(Table, EventRow.__table__)
RUNNERS = cast(Table, RunnerRow.__table__)
# The statements every job runs through (submit, claim, complete) are built once: constructing a
# SQLAlchemy statement costs more CPU than executing a cached one.


def bump_runner(column: str) -> Any:
    """``runners.<column> += 1`` for the runner bound as ``runner`` (lifetime counters)."""
    return update(RUNNERS).where(RUNNERS.c.hostname == bindparam("runner")).values({column: RUNNERS.c[column] + 1})


BUMP_COMPLETED, BUMP_FAILED = bump_runner("jobs_completed"), bump_runner("jobs_failed")


#: What the hot path's statements run on: a Session (``db.transaction``) or a Core connection
#: (``db.one_statement``); they use only what both have (``execute``, ``scalar``).
Executor = Session | Connection


def core(session: Executor) -> Connection:
    """The Core connection under ``session`` (a Core statement skips the ORM's execute path)."""
    return session if isinstance(session, Connection) else session.connection()


def is_postgres(session: Executor) -> bool:
    bind = session if isinstance(session, Connection) else session.get_bind()
    return bind.dialect.name == "postgresql"


def logged(dml: Any, kind: str, *more: Any, message: Callable[[Any], Any] | None = None) -> Select[Any]:
    """PostgreSQL: ``dml`` (an UPDATE ... RETURNING id) with its event row, and ``more`` statements
    fed by its rows, as one statement of data-modifying CTEs: one round trip instead of several.
    The event takes ``now``, ``runner`` and ``message`` from the parameters (``message``: an
    expression of the updated rows instead)."""
    done = dml.cte("done")
    text = bindparam("message") if message is None else message(done)
    event = insert(EVENTS).from_select(["at", "kind", "job_id", "runner", "message"], select(
        bindparam("now", type_=EVENTS.c.at.type), literal(kind), done.c.id, bindparam("runner"), text))
    return select(done).add_cte(event.cte("logged"), *(m(done).cte(f"then{i}") for i, m in enumerate(more)))


_INSERT_ONE: dict[bool, Direct] = {}


def insert_one_job(row: dict[str, Any], *, with_event: bool) -> Direct:
    """A one-job family's insert with the columns of ``row`` (``with_event``, PostgreSQL: with its
    ``job_submitted`` event, see :func:`logged`), built once."""
    if with_event not in _INSERT_ONE:
        values = insert(JOBS).values({k: bindparam(k, type_=JOBS.c[k].type) for k in row})
        _INSERT_ONE[with_event] = Direct(logged(values.returning(JOBS.c.id), "job_submitted") if with_event else values)
    return _INSERT_ONE[with_event]


def rowcount(result: Any) -> int:
    return cast(CursorResult[Any], result).rowcount


#: An activity-log row (the one insert of events).
EVENT_ROW = Direct(insert(EVENTS).values({c: bindparam(c, type_=EVENTS.c[c].type)
                                          for c in ("at", "kind", "job_id", "runner", "message")}))


def record_event(session: Executor, kind: str, now: datetime, message: str = "", *,
                 job_id: str | None = None, runner: str | None = None) -> None:
    values = {"at": now, "kind": kind, "job_id": job_id, "runner": runner, "message": mask_secrets(message)[:2000]}
    if isinstance(session, Connection):  # a Core unit (the hot path): nothing of an ORM session to flush first
        direct.run(session, EVENT_ROW, values)
    else:
        session.execute(EVENT_ROW.statement, values)
