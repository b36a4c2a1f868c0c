"""per-process worker instances (jobs.worker_instance, runners.instance_id) and the outbox's
redispatch count (jobs.redispatches)

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-09
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0005'
down_revision: str | None = '0004'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('jobs') as batch:
        batch.add_column(sa.Column('worker_instance', sa.String(length=64), nullable=True))
        batch.add_column(sa.Column('redispatches', sa.Integer(), nullable=False, server_default='0'))
    with op.batch_alter_table('runners') as batch:
        batch.add_column(sa.Column('instance_id', sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('runners') as batch:
        batch.drop_column('instance_id')
    with op.batch_alter_table('jobs') as batch:
        batch.drop_column('redispatches')
        batch.drop_column('worker_instance')
