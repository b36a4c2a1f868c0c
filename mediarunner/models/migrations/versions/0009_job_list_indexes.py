"""Indexes for job lists newest first and the dashboard's time windows

Revision ID: 0009
Revises: 0006
Create Date: 2026-12-02

The web admin's and the API's job lists page by (created_at, id); the dashboard counts jobs started
or finished today and in the last hour. Without these, each was a scan of the whole job table.
"""
from collections.abc import Sequence

from alembic import op

revision: str = '0009'
down_revision: str | None = '0006'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index('ix_jobs_created_at_id', 'jobs', ['created_at', 'id'], unique=False)
    op.create_index('ix_jobs_started_at', 'jobs', ['started_at'], unique=False)
    op.create_index('ix_jobs_finished_at', 'jobs', ['finished_at'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_jobs_finished_at', table_name='jobs')
    op.drop_index('ix_jobs_started_at', table_name='jobs')
    op.drop_index('ix_jobs_created_at_id', table_name='jobs')
