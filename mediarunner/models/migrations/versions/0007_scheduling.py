"""scheduling: what a job needs (routing by capability) and why it waits; runner priority and weight

Revision ID: 0007
Revises: 0008
Create Date: 2026-12-02
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import mediarunner.models.base

revision: str = '0007'
down_revision: str | None = '0008'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('need_gpu', sa.Boolean(), server_default=sa.false(), nullable=False))
        batch_op.add_column(sa.Column('need_model', sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column('need_encoder', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('waiting_reason', sa.String(length=300), nullable=True))
    with op.batch_alter_table('runners', schema=None) as batch_op:
        batch_op.add_column(sa.Column('priority', sa.Integer(), server_default='0', nullable=False))
        batch_op.add_column(sa.Column('weight', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('skills', sa.Text(), nullable=True))
        batch_op.add_column(sa.Column('last_claimed_at', mediarunner.models.base.UTCDateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('runners', schema=None) as batch_op:
        batch_op.drop_column('last_claimed_at')
        batch_op.drop_column('skills')
        batch_op.drop_column('weight')
        batch_op.drop_column('priority')
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.drop_column('waiting_reason')
        batch_op.drop_column('need_encoder')
        batch_op.drop_column('need_model')
        batch_op.drop_column('need_gpu')
