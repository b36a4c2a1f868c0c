"""remote (HTTP) runners: remote_runners and remote_job_tokens

Revision ID: 0012
Revises: 0009
Create Date: 2026-12-02

(Other revisions after 0006 are being added concurrently; whoever merges re-chains this one.)
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import mediarunner.models.base

revision: str = '0012'
down_revision: str | None = '0009'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UTC = mediarunner.models.base.UTCDateTime


def upgrade() -> None:
    op.create_table('remote_runners',
    sa.Column('id', sa.String(length=16), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('registration_token_id', sa.String(length=16), nullable=False),
    sa.Column('created_at', UTC(), nullable=False),
    sa.Column('last_seen_at', UTC(), nullable=True),
    sa.Column('unregistered_at', UTC(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_remote_runners'))
    )
    with op.batch_alter_table('remote_runners', schema=None) as batch_op:
        batch_op.create_index('ix_remote_runners_registration_token_id', ['registration_token_id'], unique=False)
    op.create_table('remote_job_tokens',
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('job_id', sa.String(length=36), nullable=False),
    sa.Column('attempt', sa.Integer(), nullable=False),
    sa.Column('runner_id', sa.String(length=16), nullable=False),
    sa.Column('created_at', UTC(), nullable=False),
    sa.ForeignKeyConstraint(['job_id'], ['jobs.id'], name=op.f('fk_remote_job_tokens_job_id_jobs'),
                            ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['runner_id'], ['remote_runners.id'],
                            name=op.f('fk_remote_job_tokens_runner_id_remote_runners'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('token_hash', name=op.f('pk_remote_job_tokens'))
    )
    with op.batch_alter_table('remote_job_tokens', schema=None) as batch_op:
        batch_op.create_index('ix_remote_job_tokens_job_id', ['job_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('remote_job_tokens', schema=None) as batch_op:
        batch_op.drop_index('ix_remote_job_tokens_job_id')
    op.drop_table('remote_job_tokens')
    with op.batch_alter_table('remote_runners', schema=None) as batch_op:
        batch_op.drop_index('ix_remote_runners_registration_token_id')
    op.drop_table('remote_runners')
