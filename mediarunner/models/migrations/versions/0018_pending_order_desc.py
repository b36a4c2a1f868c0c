"""ix_jobs_pending_order with its priority DESC again on SQLite

Revision ID: 0018
Revises: 0013
Create Date: 2026-12-03

SQLite's batch migrations (0005, 0007, 0008) copy the jobs table and re-create its indexes from
reflection, which drops the DESC of ``priority``. Without it every claim sorted the pending jobs of
a priority class in a temporary B-tree (its cost grew with the backlog); with it the claim and the
rank tick read the index in rank order. PostgreSQL's index was never rebuilt and keeps its DESC.
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0018'
down_revision: str | None = '0013'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

PENDING = sa.text("state = 'pending'")


def _recreate(priority: str) -> None:
    op.drop_index('ix_jobs_pending_order', table_name='jobs')
    op.create_index('ix_jobs_pending_order', 'jobs', ['queue', 'priority_class', sa.text(priority), 'created_at', 'id'],
                    sqlite_where=PENDING)


def upgrade() -> None:
    if op.get_bind().dialect.name == 'sqlite':
        _recreate('priority DESC')


def downgrade() -> None:
    if op.get_bind().dialect.name == 'sqlite':
        _recreate('priority')
