"""pending jobs in queue order (a partial index the rank tick reads instead of sorting), and
HOT-friendly job_ranks pages on PostgreSQL

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0004'
down_revision: str | None = '0003'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

PENDING = sa.text("state = 'pending'")


def upgrade() -> None:
    op.create_index('ix_jobs_pending_order', 'jobs',
                    ['queue', 'priority_class', sa.text('priority DESC'), 'created_at', 'id'],
                    postgresql_where=PENDING, sqlite_where=PENDING)
    if op.get_bind().dialect.name == 'postgresql':
        # Room on each page for a rank's next version: every tick rewrites ranks in place (HOT).
        op.execute('ALTER TABLE job_ranks SET (fillfactor = 40)')


def downgrade() -> None:
    if op.get_bind().dialect.name == 'postgresql':
        op.execute('ALTER TABLE job_ranks RESET (fillfactor)')
    op.drop_index('ix_jobs_pending_order', table_name='jobs')
