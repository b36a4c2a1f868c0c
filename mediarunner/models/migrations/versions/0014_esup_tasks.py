"""esup_tasks: Esup-Pod Runner Manager tasks and the job families they became

Revision ID: 0014
Revises: 0007
Create Date: 2026-12-03
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import mediarunner.models.base

revision: str = '0014'
down_revision: str | None = '0007'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        'esup_tasks',
        sa.Column('task_id', sa.String(length=36), nullable=False),
        sa.Column('job_id', sa.String(length=36), nullable=False),
        sa.Column('task_type', sa.String(length=16), nullable=False),
        sa.Column('output', sa.Text(), nullable=False),
        sa.Column('notify_url', sa.Text(), nullable=False),
        sa.Column('client_token', sa.Text(), nullable=False),
        sa.Column('etab_name', sa.String(length=200), nullable=False),
        sa.Column('app_name', sa.String(length=100), nullable=False),
        sa.Column('app_version', sa.String(length=50), nullable=True),
        sa.Column('created_at', mediarunner.models.base.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(['job_id'], ['jobs.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('task_id'),
        sa.UniqueConstraint('job_id'),
    )


def downgrade() -> None:
    op.drop_table('esup_tasks')
