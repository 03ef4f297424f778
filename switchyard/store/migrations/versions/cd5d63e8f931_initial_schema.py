"""initial schema

Revision ID: cd5d63e8f931
Revises: (none)
Create Date: 2026-11-25 06:26:08.741137
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = 'cd5d63e8f931'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:

    op.create_table('apikey',
    sa.Column('id', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('name', sqlmodel.sql.sqltypes.AutoString(length=128), nullable=False),
    sa.Column('secret_hash', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('revoked_at', sa.DateTime(), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_table('deadletter',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('request_id', sa.Integer(), nullable=False),
    sa.Column('job_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('task', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('deliveries', sa.Integer(), nullable=False),
    sa.Column('reason', sqlmodel.sql.sqltypes.AutoString(length=1024), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('deadletter', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_deadletter_job_id'), ['job_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_deadletter_request_id'), ['request_id'], unique=False)

    op.create_table('job',
    sa.Column('id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('status', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('owner', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.Column('input_name', sqlmodel.sql.sqltypes.AutoString(length=512), nullable=False),
    sa.Column('default_policy', sqlmodel.sql.sqltypes.AutoString(length=128), nullable=False),
    sa.Column('knob', sa.Float(), nullable=True),
    sa.Column('tagger', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('budget_usd', sa.Float(), nullable=True),
    sa.Column('metadata', sa.JSON(), nullable=True),
    sa.Column('n_total', sa.Integer(), nullable=False),
    sa.Column('n_invalid', sa.Integer(), nullable=False),
    sa.Column('n_shards', sa.Integer(), nullable=False),
    sa.Column('n_succeeded', sa.Integer(), nullable=False),
    sa.Column('n_failed', sa.Integer(), nullable=False),
    sa.Column('cost_usd', sa.Float(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('started_at', sa.DateTime(), nullable=True),
    sa.Column('finished_at', sa.DateTime(), nullable=True),
    sa.Column('expires_at', sa.DateTime(), nullable=True),
    sa.Column('cancel_requested_at', sa.DateTime(), nullable=True),
    sa.Column('output_path', sqlmodel.sql.sqltypes.AutoString(length=1024), nullable=True),
    sa.Column('error_path', sqlmodel.sql.sqltypes.AutoString(length=1024), nullable=True),
    sa.Column('input_file_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.Column('kind', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('idempotency_key', sqlmodel.sql.sqltypes.AutoString(length=256), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('job', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_job_idempotency_key'), ['idempotency_key'], unique=False)
        batch_op.create_index(batch_op.f('ix_job_kind'), ['kind'], unique=False)
        batch_op.create_index(batch_op.f('ix_job_owner'), ['owner'], unique=False)
        batch_op.create_index(batch_op.f('ix_job_status'), ['status'], unique=False)

    op.create_table('outcome',
    sa.Column('seq', sa.Integer(), nullable=False),
    sa.Column('request_id', sa.Integer(), nullable=True),
    sa.Column('prompt_key', sqlmodel.sql.sqltypes.AutoString(length=128), nullable=True),
    sa.Column('model', sqlmodel.sql.sqltypes.AutoString(length=256), nullable=False),
    sa.Column('tags', sa.JSON(), nullable=True),
    sa.Column('verdict', sqlmodel.sql.sqltypes.AutoString(length=8), nullable=True),
    sa.Column('quality', sa.Float(), nullable=True),
    sa.Column('source', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('judge_version', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('seq')
    )
    with op.batch_alter_table('outcome', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_outcome_model'), ['model'], unique=False)
        batch_op.create_index(batch_op.f('ix_outcome_prompt_key'), ['prompt_key'], unique=False)
        batch_op.create_index(batch_op.f('ix_outcome_request_id'), ['request_id'], unique=False)

    op.create_table('schedulerstate',
    sa.Column('name', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('watermark', sa.Integer(), nullable=False),
    sa.Column('locked_by', sqlmodel.sql.sqltypes.AutoString(length=128), nullable=True),
    sa.Column('locked_until', sa.DateTime(), nullable=True),
    sa.Column('updated_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('name')
    )
    op.create_table('scorecell',
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('tag', sqlmodel.sql.sqltypes.AutoString(length=256), nullable=False),
    sa.Column('model', sqlmodel.sql.sqltypes.AutoString(length=256), nullable=False),
    sa.Column('n_win', sa.Float(), nullable=False),
    sa.Column('n_tie', sa.Float(), nullable=False),
    sa.Column('n_loss', sa.Float(), nullable=False),
    sa.Column('q_sum', sa.Float(), nullable=False),
    sa.Column('q_count', sa.Float(), nullable=False),
    sa.PrimaryKeyConstraint('version', 'tag', 'model')
    )
    op.create_table('scoreversion',
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('parent', sa.Integer(), nullable=True),
    sa.Column('watermark', sa.Integer(), nullable=False),
    sa.Column('status', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('n_outcomes', sa.Integer(), nullable=False),
    sa.Column('metrics', sa.JSON(), nullable=True),
    sa.Column('note', sqlmodel.sql.sqltypes.AutoString(length=512), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('version')
    )
    op.create_table('storedfile',
    sa.Column('id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('owner', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.Column('purpose', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('filename', sqlmodel.sql.sqltypes.AutoString(length=512), nullable=False),
    sa.Column('bytes', sa.Integer(), nullable=False),
    sa.Column('lines', sa.Integer(), nullable=False),
    sa.Column('path', sqlmodel.sql.sqltypes.AutoString(length=1024), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('storedfile', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_storedfile_owner'), ['owner'], unique=False)

    op.create_table('request',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('job_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('line_no', sa.Integer(), nullable=False),
    sa.Column('custom_id', sqlmodel.sql.sqltypes.AutoString(length=512), nullable=True),
    sa.Column('state', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('shard', sa.Integer(), nullable=False),
    sa.Column('model_requested', sqlmodel.sql.sqltypes.AutoString(length=256), nullable=True),
    sa.Column('prompt', sa.Text(), nullable=True),
    sa.Column('body', sa.JSON(), nullable=True),
    sa.Column('routing', sa.JSON(), nullable=True),
    sa.Column('input_tokens', sa.Integer(), nullable=False),
    sa.Column('tags', sa.JSON(), nullable=True),
    sa.Column('decision', sa.JSON(), nullable=True),
    sa.Column('model', sqlmodel.sql.sqltypes.AutoString(length=256), nullable=True),
    sa.Column('policy', sqlmodel.sql.sqltypes.AutoString(length=128), nullable=True),
    sa.Column('response', sa.JSON(), nullable=True),
    sa.Column('prompt_tokens', sa.Integer(), nullable=True),
    sa.Column('completion_tokens', sa.Integer(), nullable=True),
    sa.Column('cost_usd', sa.Float(), nullable=True),
    sa.Column('latency_ms', sa.Float(), nullable=True),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('deliveries', sa.Integer(), nullable=False),
    sa.Column('error', sa.JSON(), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('routed_at', sa.DateTime(), nullable=True),
    sa.Column('finished_at', sa.DateTime(), nullable=True),
    sa.ForeignKeyConstraint(['job_id'], ['job.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('job_id', 'line_no', name='uq_request_line')
    )
    with op.batch_alter_table('request', schema=None) as batch_op:
        batch_op.create_index('ix_request_job_shard', ['job_id', 'shard'], unique=False)
        batch_op.create_index('ix_request_job_state', ['job_id', 'state'], unique=False)




def downgrade() -> None:

    with op.batch_alter_table('request', schema=None) as batch_op:
        batch_op.drop_index('ix_request_job_state')
        batch_op.drop_index('ix_request_job_shard')

    op.drop_table('request')
    with op.batch_alter_table('storedfile', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_storedfile_owner'))

    op.drop_table('storedfile')
    op.drop_table('scoreversion')
    op.drop_table('scorecell')
    op.drop_table('schedulerstate')
    with op.batch_alter_table('outcome', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_outcome_request_id'))
        batch_op.drop_index(batch_op.f('ix_outcome_prompt_key'))
        batch_op.drop_index(batch_op.f('ix_outcome_model'))

    op.drop_table('outcome')
    with op.batch_alter_table('job', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_job_status'))
        batch_op.drop_index(batch_op.f('ix_job_owner'))
        batch_op.drop_index(batch_op.f('ix_job_kind'))
        batch_op.drop_index(batch_op.f('ix_job_idempotency_key'))

    op.drop_table('job')
    with op.batch_alter_table('deadletter', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_deadletter_request_id'))
        batch_op.drop_index(batch_op.f('ix_deadletter_job_id'))

    op.drop_table('deadletter')
    op.drop_table('apikey')

