from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from mediarunner.models import Base
from mediarunner.models.db import get_engine

config = context.config
target_metadata = Base.metadata


def run_migrations_online() -> None:
    url = config.attributes.get("database_url") or config.get_main_option("sqlalchemy.url")
    connectable = config.attributes.get("connection")
    if connectable is None:
        with get_engine(url).connect() as connection:
            _run(connection)
    else:
        _run(connectable)


def _run(connection: Connection) -> None:
    # SQLite's batch mode recreates a table (copy, DROP the old one, rename). With foreign keys on,
    # that DROP deletes the rows that reference the old table, cascading (children, events): off
    # for the migration, back on after. The pragma is a no-op inside a transaction, so it goes first
    # (on a connection of our own, not one a caller holds in a transaction).
    toggle = connection.dialect.name == "sqlite" and not connection.in_transaction()
    if toggle:
        _foreign_keys(connection, False)
    try:
        context.configure(connection=connection, target_metadata=target_metadata,
                          render_as_batch=True, compare_type=True)
        with context.begin_transaction():
            context.run_migrations()
    finally:
        if toggle:
            _foreign_keys(connection, True)


def _foreign_keys(connection: Connection, on: bool) -> None:
    connection.exec_driver_sql(f"PRAGMA foreign_keys={'ON' if on else 'OFF'}")
    connection.commit()  # end SQLAlchemy's autobegun transaction: the migration opens its own


run_migrations_online()
