"""queue ranks move from jobs.rank to the narrow job_ranks table (UNLOGGED on PostgreSQL)

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0003'
down_revision: str | None = '0002'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Ranks are recomputed by every rank tick, so they need no WAL: losing them in a crash costs
    # one tick. SQLite has no UNLOGGED tables.
    unlogged = ['UNLOGGED'] if op.get_bind().dialect.name == 'postgresql' else []
    op.create_table('job_ranks',
    sa.Column('job_id', sa.String(length=36), nullable=False),
    sa.Column('rank', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('job_id', name=op.f('pk_job_ranks')),
    prefixes=unlogged,
    )
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.drop_column('rank')


def downgrade() -> None:
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('rank', sa.Integer(), nullable=True))
    op.drop_table('job_ranks')
