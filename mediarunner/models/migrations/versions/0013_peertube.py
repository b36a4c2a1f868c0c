"""PeerTube connector: peertube_instances and peertube_jobs

Revision ID: 0013
Revises: 0014
Create Date: 2026-12-03

(Other revisions after 0007 are being added concurrently; whoever merges re-chains this one.)
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import mediarunner.models.base

revision: str = '0013'
down_revision: str | None = '0014'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UTC = mediarunner.models.base.UTCDateTime
JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql')


def upgrade() -> None:
    op.create_table('peertube_instances',
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('url', sa.String(length=500), nullable=False),
    sa.Column('runner_token', sa.String(length=1000), nullable=False),
    sa.Column('runner_id', sa.Integer(), nullable=True),
    sa.Column('job_types', JSON, nullable=False),
    sa.Column('concurrency', sa.Integer(), nullable=False),
    sa.Column('priority_class', sa.String(length=64), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('state_reason', sa.Text(), nullable=True),
    sa.Column('created_at', UTC(), nullable=False),
    sa.PrimaryKeyConstraint('name', name=op.f('pk_peertube_instances'))
    )
    op.create_table('peertube_jobs',
    sa.Column('uuid', sa.String(length=36), nullable=False),
    sa.Column('instance', sa.String(length=100), nullable=False),
    sa.Column('type', sa.String(length=64), nullable=False),
    sa.Column('job_token', sa.String(length=1000), nullable=False),
    sa.Column('job_id', sa.String(length=36), nullable=True),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('message', sa.Text(), nullable=True),
    sa.Column('created_at', UTC(), nullable=False),
    sa.Column('finished_at', UTC(), nullable=True),
    sa.ForeignKeyConstraint(['instance'], ['peertube_instances.name'],
                            name=op.f('fk_peertube_jobs_instance_peertube_instances'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['job_id'], ['jobs.id'], name=op.f('fk_peertube_jobs_job_id_jobs'),
                            ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('uuid', name=op.f('pk_peertube_jobs'))
    )
    with op.batch_alter_table('peertube_jobs', schema=None) as batch_op:
        batch_op.create_index('ix_peertube_jobs_instance_state', ['instance', 'state'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('peertube_jobs', schema=None) as batch_op:
        batch_op.drop_index('ix_peertube_jobs_instance_state')
    op.drop_table('peertube_jobs')
    op.drop_table('peertube_instances')
