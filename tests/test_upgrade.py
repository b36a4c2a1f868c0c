"""Upgrades: a database filled by the previous release's schema (the revision before head), with
jobs in every state, a family, events, a runner and the beat lease, migrates to head; afterwards the
rows read back through the models unchanged and the scheduler and workers' transitions work on them."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory

from mediarunner.config import Settings
from mediarunner.models import Base
from mediarunner.models.db import get_engine, transaction
from mediarunner.models.enums import JobState
from mediarunner.models.migrate import alembic_config, upgrade
from mediarunner.models.queries import get_job
from mediarunner.scheduler.ticks import fail_over
from tests import rows
from tests.support import create_pg_database, drop_pg_database

NOW = datetime.now(UTC).replace(tzinfo=None, microsecond=0)  # naive UTC, as the columns store it


def previous_revision() -> str:
    script = ScriptDirectory.from_config(alembic_config())
    down = script.get_revision(script.get_current_head()).down_revision
    assert isinstance(down, str), down
    return down


@pytest.fixture(params=["sqlite", "postgresql"])
def old_db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    url = f"sqlite:///{tmp_path / 'old.db'}" if request.param == "sqlite" else create_pg_database()
    upgrade(url, previous_revision())
    yield url
    if request.param == "postgresql":
        drop_pg_database(url)


def _filler(col: sa.Column[Any]) -> Any:
    """A value for a NOT NULL column the test does not name (columns the old schema had then)."""
    t = col.type
    if isinstance(t, sa.Integer):
        return 0
    if isinstance(t, sa.Float | sa.Numeric):
        return 0.0
    if isinstance(t, sa.DateTime):
        return NOW
    if isinstance(t, sa.JSON):
        return {}
    if isinstance(t, sa.Boolean):
        return False
    return ""


def insert(conn: sa.Connection, table: sa.Table, **values: Any) -> None:
    row = {c.name: values.pop(c.name) if c.name in values else _filler(c) for c in table.columns
           if c.name in values or (not c.nullable and c.server_default is None and not c.primary_key)}
    conn.execute(table.insert().values(**row))


def job(state: JobState, **extra: Any) -> dict[str, Any]:
    job_id = extra.pop("id", str(uuid.uuid4()))
    running = state in (JobState.RUNNING, JobState.COMPLETED, JobState.FAILED, JobState.TIMEOUT)
    values = dict(id=job_id, type="transcode", state=state.value, queue="cpu", root_id=job_id, attempt=1,
                  failures=0, max_attempts=3, priority=0, priority_class="default", progress=0.0,
                  payload={"input": f"/in/{state.value}.mp4", "output": "/out/x"}, private_payload={}, meta={},
                  created_at=NOW - timedelta(hours=2), updated_at=NOW - timedelta(hours=1),
                  dispatched_at=NOW - timedelta(hours=2))
    if running:
        values.update(worker="cpu@old-host", started_at=NOW - timedelta(hours=1), heartbeat_at=NOW - timedelta(hours=1))
    if state.is_terminal:
        values.update(finished_at=NOW - timedelta(minutes=30))
    if state is JobState.COMPLETED:
        values.update(progress=1.0, result={"renditions": ["720p"]})
    if state in (JobState.FAILED, JobState.TIMEOUT):
        values.update(error="boom", error_kind="permanent")
    values.update(extra)
    return values


def fill(url: str) -> dict[JobState, str]:
    """One job per state (children under their parents), events, a runner and the lease, written
    with the old schema's own tables (reflected: the head models may have columns it lacks)."""
    meta = sa.MetaData()
    with get_engine(url).begin() as conn:
        meta.reflect(conn, only=["jobs", "events", "runners", "locks"])
        jobs, events = meta.tables["jobs"], meta.tables["events"]
        ids: dict[JobState, str] = {}
        parents = {JobState.WAITING_FOR_PARENT: JobState.RUNNING, JobState.PARENT_FAILED: JobState.FAILED,
                   JobState.PARENT_CANCELLED: JobState.CANCELLED}
        for state in [s for s in JobState if s not in parents] + list(parents):
            extra = {}
            if state in parents:
                parent = ids[parents[state]]
                extra = dict(parent_id=parent, root_id=parent, dispatched_at=None)
            values = job(state, **extra)
            insert(conn, jobs, **values)
            ids[state] = values["id"]
            insert(conn, events, at=NOW - timedelta(hours=1), kind="job_submitted", job_id=values["id"],
                   message="submitted")
        insert(conn, meta.tables["runners"], hostname="cpu@old-host", status="enabled", queues=["cpu"], concurrency=2,
               registered_at=NOW - timedelta(days=1), last_heartbeat_at=NOW - timedelta(hours=1))
        insert(conn, meta.tables["locks"], name="scheduler", holder="old-beat:1", expires_at=NOW - timedelta(hours=1))
    return ids


def test_previous_release_database_migrates_to_head_with_jobs_in_every_state(old_db: str) -> None:
    ids = fill(old_db)
    assert len(ids) == len(JobState)
    upgrade(old_db)  # the `migrate` service
    with get_engine(old_db).connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True})
        assert ctx.get_current_revision() == ScriptDirectory.from_config(alembic_config()).get_current_head()
        assert compare_metadata(ctx, Base.metadata) == []
    for state, job_id in ids.items():  # every row reads back through the head models, as it was
        loaded = transaction(lambda s, j=job_id: get_job(s, j, with_children=False), url=old_db)
        assert loaded.state is state and loaded.attempt == 1
    # the new release's beat and workers carry on: the old running job is failed over (its worker is
    # gone), its waiting child stays, and the pending job is claimed by a new worker
    settings = Settings(database_url=old_db, failover_after_seconds=60)
    now = datetime.now(UTC)
    fo = transaction(lambda s: fail_over(s, now, settings), url=old_db)
    assert fo.requeued == [ids[JobState.RUNNING]]
    assert transaction(lambda s: rows.claim(s, ids[JobState.PENDING], 1, "cpu@new-host", None, now), url=old_db)
    states = {s: transaction(lambda x, j=j: get_job(x, j, with_children=False).state, url=old_db)
              for s, j in ids.items()}
    assert states[JobState.RUNNING] is JobState.PENDING and states[JobState.PENDING] is JobState.RUNNING
    assert states[JobState.WAITING_FOR_PARENT] is JobState.WAITING_FOR_PARENT
