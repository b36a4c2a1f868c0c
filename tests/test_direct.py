"""``models.direct``: the hot path's statements run on the driver's cursor (psycopg, sqlite3) give
what SQLAlchemy's execution path gives (rows, conversions, defaults, transactions, errors, lost
connections, cursor events), and fall back to it where they cannot run directly."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC
from typing import Any

import pytest
from sqlalchemy import Connection, bindparam, event, insert, select, text, update
from sqlalchemy.exc import DBAPIError, IntegrityError, InvalidRequestError

from mediarunner.models import direct
from mediarunner.models.base import utcnow
from mediarunner.models.db import get_engine, one_statement, transaction
from mediarunner.models.enums import JobState, JobType
from mediarunner.models.queries import JOB_COLUMNS, get_job
from mediarunner.models.statements import EVENTS, JOBS
from mediarunner.models.transitions import NewJob, claim_job, insert_jobs
from tests.support import PG_ADMIN, create_pg_database, drop_pg_database

ONE = direct.Direct(select(*JOB_COLUMNS).where(JOBS.c.id == bindparam("job_id")))


@pytest.fixture
def pg_db() -> Iterator[str]:
    url = create_pg_database(migrated=True)
    yield url
    drop_pg_database(url)


def _job(url: str, **payload: Any) -> str:
    job = NewJob(JobType.NOOP, "cpu", {"duration": 0.0, **payload}, meta={"caller": {"ids": [1, 2]}}, priority=-3)
    return one_statement(lambda c: insert_jobs(c, [job], utcnow(), publishing=True), url=url).id


def test_a_row_is_what_sqlalchemy_reads(db_url: str) -> None:
    job_id = _job(db_url, output=None, note="naïve ✓")
    with get_engine(db_url).connect() as conn:
        ours = direct.first(conn, ONE, {"job_id": job_id})
        theirs = conn.execute(ONE.statement, {"job_id": job_id}).mappings().first()
    assert ours is not None and theirs is not None
    assert dict(ours) == dict(theirs)
    assert ours["state"] is JobState.PENDING and ours["type"] is JobType.NOOP  # enums, not strings
    assert ours["created_at"].tzinfo is UTC and ours["payload"]["note"] == "naïve ✓"
    with get_engine(db_url).connect() as conn:
        assert direct.first(conn, ONE, {"job_id": "no-such-job"}) is None


def test_parameters_are_converted_as_sqlalchemy_converts_them(db_url: str) -> None:
    """The submit (enums, JSON, aware datetimes, a column default) and the claim run directly."""
    job_id = _job(db_url, output="/out/x.txt")
    now = utcnow()
    claimed = one_statement(lambda c: claim_job(c, job_id, 1, "w1", "task-1", now), url=db_url, recoverable=True)
    assert claimed is not None and claimed.state is JobState.RUNNING and claimed.worker == "w1"
    job = transaction(lambda s: get_job(s, job_id), url=db_url)
    assert job.payload == {"duration": 0.0, "output": "/out/x.txt"} and job.meta == {"caller": {"ids": [1, 2]}}
    assert job.priority == -3 and job.started_at == now and job.state is JobState.RUNNING
    with get_engine(db_url).connect() as conn:
        assert conn.execute(text("SELECT redispatches FROM jobs")).scalar_one() == 0  # the column's default
        kinds = conn.execute(select(EVENTS.c.kind).order_by(EVENTS.c.id)).scalars().all()
    assert kinds == ["job_submitted", "job_assigned"]
    # the claim is fenced: the same attempt cannot be claimed twice
    assert one_statement(lambda c: claim_job(c, job_id, 1, "w2", None, utcnow()), url=db_url, recoverable=True) is None


def test_an_error_is_sqlalchemys_and_the_connection_goes_on(db_url: str) -> None:
    job_id = _job(db_url)
    copy = direct.Direct(insert(EVENTS).values(kind="x", job_id=bindparam("job_id"), at=bindparam("at"),
                                               id=bindparam("id"), message="").returning(EVENTS.c.id))
    with get_engine(db_url).connect() as conn:
        first_id = direct.first(conn, copy, {"job_id": job_id, "at": utcnow(), "id": 10_000})
        assert first_id == {"id": 10_000}
        conn.commit()  # SQLAlchemy's transaction holds the direct write (not one the driver opened behind it)
        with pytest.raises(IntegrityError):
            direct.first(conn, copy, {"job_id": job_id, "at": utcnow(), "id": 10_000})
        conn.rollback()
        assert direct.first(conn, ONE, {"job_id": job_id}) is not None
    with get_engine(db_url).connect() as other:
        assert other.execute(text("SELECT count(*) FROM events WHERE id = 10000")).scalar_one() == 1


def test_a_lost_connection_is_invalidated_and_the_unit_retried(pg_db: str) -> None:
    job_id = _job(pg_db)
    backend = one_statement(lambda c: c.execute(text("SELECT pg_backend_pid()")).scalar_one(), url=pg_db,
                            recoverable=True)  # the main thread keeps this connection for the next unit
    with get_engine(PG_ADMIN).connect() as admin:
        admin.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": backend})
        admin.commit()
    errors: list[BaseException] = []

    def read(conn: Connection) -> Any:
        try:
            return direct.first(conn, ONE, {"job_id": job_id})
        except DBAPIError as exc:
            errors.append(exc)
            raise

    row = one_statement(read, url=pg_db, recoverable=True)
    assert row is not None and row["id"] == job_id
    assert len(errors) == 1 and isinstance(errors[0], DBAPIError) and errors[0].connection_invalidated


def test_cursor_listeners_see_a_direct_statement(db_url: str) -> None:
    job_id = _job(db_url)
    seen: list[str] = []

    def executed(conn: Any, cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        seen.append(f"{statement} {parameters}")

    engine = get_engine(db_url)
    event.listen(engine, "after_cursor_execute", executed)
    try:
        with engine.connect() as conn:
            direct.first(conn, ONE, {"job_id": job_id})
    finally:
        event.remove(engine, "after_cursor_execute", executed)
    assert len(seen) == 1 and job_id in seen[0] and "FROM jobs" in seen[0]


def test_what_cannot_run_directly_runs_through_sqlalchemy(db_url: str) -> None:
    expanding = direct.Direct(select(JOBS.c.id).where(JOBS.c.id.in_(bindparam("ids", expanding=True))))
    job_id = _job(db_url)
    with get_engine(db_url).connect() as conn:
        assert ONE.compiled(conn.dialect) is not None
        assert expanding.compiled(conn.dialect) is None  # its SQL depends on the number of ids
        assert direct.first(conn, expanding, {"ids": [job_id, "other"]}) == {"id": job_id}
        everyone = direct.Direct(update(JOBS).values(priority=bindparam("p")))  # no RETURNING: a row count
        with pytest.raises(InvalidRequestError, match=r"required for bind parameter.* p"):
            direct.run(conn, everyone, {"q": 7})  # never a NULL for a value not given
        assert direct.run(conn, everyone, {"p": 7}) == 1
        conn.commit()
    assert transaction(lambda s: get_job(s, job_id).priority, url=db_url) == 7
