"""runner fleet: registration tokens, runners, events by runner

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import mediarunner.models.base

revision: str = '0002'
down_revision: str | None = '0001'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('runners',
    sa.Column('hostname', sa.String(length=255), nullable=False),
    sa.Column('token_id', sa.String(length=16), nullable=True),
    sa.Column('status', sa.Enum('enabled', 'maintenance', 'disabled', name='runner_status', native_enum=False, length=32), nullable=False),
    sa.Column('status_generation', sa.Integer(), nullable=False),
    sa.Column('queues', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('concurrency', sa.Integer(), nullable=False),
    sa.Column('desired_concurrency', sa.Integer(), nullable=True),
    sa.Column('version', sa.String(length=64), nullable=False),
    sa.Column('capabilities', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('diagnostics', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('jobs_completed', sa.Integer(), nullable=False),
    sa.Column('jobs_failed', sa.Integer(), nullable=False),
    sa.Column('registered_at', mediarunner.models.base.UTCDateTime(), nullable=False),
    sa.Column('last_heartbeat_at', mediarunner.models.base.UTCDateTime(), nullable=True),
    sa.Column('offline_at', mediarunner.models.base.UTCDateTime(), nullable=True),
    sa.Column('unregistered_at', mediarunner.models.base.UTCDateTime(), nullable=True),
    sa.PrimaryKeyConstraint('hostname', name=op.f('pk_runners'))
    )
    with op.batch_alter_table('runners', schema=None) as batch_op:
        batch_op.create_index('ix_runners_token_id', ['token_id'], unique=False)

    op.create_table('worker_tokens',
    sa.Column('id', sa.String(length=16), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('created_at', mediarunner.models.base.UTCDateTime(), nullable=False),
    sa.Column('last_used_at', mediarunner.models.base.UTCDateTime(), nullable=True),
    sa.Column('revoked_at', mediarunner.models.base.UTCDateTime(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_worker_tokens')),
    sa.UniqueConstraint('token_hash', name=op.f('uq_worker_tokens_token_hash'))
    )
    with op.batch_alter_table('events', schema=None) as batch_op:
        batch_op.create_index('ix_events_runner', ['runner'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('events', schema=None) as batch_op:
        batch_op.drop_index('ix_events_runner')

    op.drop_table('worker_tokens')
    with op.batch_alter_table('runners', schema=None) as batch_op:
        batch_op.drop_index('ix_runners_token_id')

    op.drop_table('runners')
