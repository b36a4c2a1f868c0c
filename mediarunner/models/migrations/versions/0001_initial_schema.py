"""initial schema

Revision ID: 0001
Revises: 
Create Date: 2026-11-23
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import mediarunner.models.base

revision: str = '0001'
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:

    op.create_table('events',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('at', mediarunner.models.base.UTCDateTime(), nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('job_id', sa.String(length=36), nullable=True),
    sa.Column('runner', sa.String(length=255), nullable=True),
    sa.Column('message', sa.Text(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_events'))
    )
    with op.batch_alter_table('events', schema=None) as batch_op:
        batch_op.create_index('ix_events_at', ['at'], unique=False)
        batch_op.create_index('ix_events_job_id', ['job_id'], unique=False)

    op.create_table('jobs',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('type', sa.Enum('transcode', 'transcode_rendition', 'extract_audio', 'transcribe', 'studio', 'live', 'noop', name='job_type', native_enum=False, length=32), nullable=False),
    sa.Column('state', sa.Enum('pending', 'waiting_for_parent', 'running', 'completed', 'failed', 'cancelled', 'parent_failed', 'parent_cancelled', 'timeout', name='job_state', native_enum=False, length=32), nullable=False),
    sa.Column('stage', sa.Enum('downloading', 'processing', 'uploading', name='job_stage', native_enum=False, length=32), nullable=True),
    sa.Column('progress', sa.Float(), nullable=False),
    sa.Column('queue', sa.String(length=64), nullable=False),
    sa.Column('routing_reason', sa.String(length=200), nullable=True),
    sa.Column('priority', sa.Integer(), nullable=False),
    sa.Column('priority_class', sa.String(length=32), nullable=False),
    sa.Column('rank', sa.Integer(), nullable=True),
    sa.Column('parent_id', sa.String(length=36), nullable=True),
    sa.Column('root_id', sa.String(length=36), nullable=False),
    sa.Column('attempt', sa.Integer(), nullable=False),
    sa.Column('failures', sa.Integer(), nullable=False),
    sa.Column('max_attempts', sa.Integer(), nullable=False),
    sa.Column('payload', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('private_payload', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('meta', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('result', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=True),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('error_kind', sa.String(length=16), nullable=True),
    sa.Column('log_tail', sa.Text(), nullable=True),
    sa.Column('worker', sa.String(length=255), nullable=True),
    sa.Column('celery_task_id', sa.String(length=64), nullable=True),
    sa.Column('created_at', mediarunner.models.base.UTCDateTime(), nullable=False),
    sa.Column('updated_at', mediarunner.models.base.UTCDateTime(), nullable=False),
    sa.Column('run_after', mediarunner.models.base.UTCDateTime(), nullable=True),
    sa.Column('dispatched_at', mediarunner.models.base.UTCDateTime(), nullable=True),
    sa.Column('started_at', mediarunner.models.base.UTCDateTime(), nullable=True),
    sa.Column('heartbeat_at', mediarunner.models.base.UTCDateTime(), nullable=True),
    sa.Column('finished_at', mediarunner.models.base.UTCDateTime(), nullable=True),
    sa.ForeignKeyConstraint(['parent_id'], ['jobs.id'], name=op.f('fk_jobs_parent_id_jobs'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_jobs'))
    )
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.create_index('ix_jobs_parent_id', ['parent_id'], unique=False)
        batch_op.create_index('ix_jobs_root_id', ['root_id'], unique=False)
        batch_op.create_index('ix_jobs_state_finished_at', ['state', 'finished_at'], unique=False)
        batch_op.create_index('ix_jobs_state_heartbeat_at', ['state', 'heartbeat_at'], unique=False)
        batch_op.create_index('ix_jobs_state_queue', ['state', 'queue'], unique=False)

    op.create_table('locks',
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('holder', sa.String(length=255), nullable=False),
    sa.Column('expires_at', mediarunner.models.base.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('name', name=op.f('pk_locks'))
    )



def downgrade() -> None:

    op.drop_table('locks')
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.drop_index('ix_jobs_state_queue')
        batch_op.drop_index('ix_jobs_state_heartbeat_at')
        batch_op.drop_index('ix_jobs_state_finished_at')
        batch_op.drop_index('ix_jobs_root_id')
        batch_op.drop_index('ix_jobs_parent_id')

    op.drop_table('jobs')
    with op.batch_alter_table('events', schema=None) as batch_op:
        batch_op.drop_index('ix_events_job_id')
        batch_op.drop_index('ix_events_at')

    op.drop_table('events')

