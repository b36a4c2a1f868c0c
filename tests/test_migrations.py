"""Alembic migrations create exactly the schema the models describe, on both backends."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from mediarunner.models import Base
from mediarunner.models.db import get_engine
from mediarunner.models.migrate import downgrade, upgrade


def test_migrations_match_models(db_url: str) -> None:
    with get_engine(db_url).connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True})
        diff = compare_metadata(ctx, Base.metadata)
    assert diff == []


def test_downgrade_then_upgrade(db_url: str) -> None:
    downgrade(db_url, "base")
    upgrade(db_url)
    with get_engine(db_url).connect() as conn:
        assert MigrationContext.configure(conn).get_current_revision() is not None


def test_the_claim_reads_pending_jobs_in_rank_order_without_sorting(db_url: str) -> None:
    """The claim's ORDER BY (priority DESC, created_at, id) matches ix_jobs_pending_order, so the
    best pending job is the index's first entry; SQLite's batch migrations once lost the DESC and
    every claim sorted the whole backlog of a class."""
    with get_engine(db_url).connect() as conn:
        if conn.dialect.name == "sqlite":
            plan = " ".join(str(row[-1]) for row in conn.exec_driver_sql(
                "EXPLAIN QUERY PLAN SELECT id FROM jobs WHERE state = 'pending' AND queue = 'cpu' "
                "AND priority_class = 'default' ORDER BY priority DESC, created_at, id LIMIT 1"))
            assert "ix_jobs_pending_order" in plan and "TEMP B-TREE" not in plan, plan
        else:
            definition = conn.exec_driver_sql(
                "SELECT indexdef FROM pg_indexes WHERE indexname = 'ix_jobs_pending_order'").scalar_one()
            assert "priority DESC, created_at, id" in definition, definition
