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
