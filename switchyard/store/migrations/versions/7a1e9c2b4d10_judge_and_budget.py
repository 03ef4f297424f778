"""judge outcomes and job budgets

Revision ID: 7a1e9c2b4d10
Revises: cd5d63e8f931
Create Date: 2026-11-26 09:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = '7a1e9c2b4d10'
down_revision = 'cd5d63e8f931'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('job', schema=None) as batch_op:
        batch_op.add_column(sa.Column('judge_cost_usd', sa.Float(), nullable=False, server_default='0'))
        batch_op.add_column(sa.Column('budget_reserved_usd', sa.Float(), nullable=False, server_default='0'))
        batch_op.add_column(sa.Column('budget_wave', sa.Integer(), nullable=False, server_default='0'))
    with op.batch_alter_table('request', schema=None) as batch_op:
        batch_op.add_column(sa.Column('budget_wave', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('budget_reserved_usd', sa.Float(), nullable=True))
    with op.batch_alter_table('outcome', schema=None) as batch_op:
        batch_op.alter_column('verdict', existing_type=sqlmodel.sql.sqltypes.AutoString(length=8),
                              type_=sqlmodel.sql.sqltypes.AutoString(length=16), existing_nullable=True)
        batch_op.add_column(sa.Column('judge_model', sqlmodel.sql.sqltypes.AutoString(length=256), nullable=True))
        batch_op.add_column(sa.Column('cost_usd', sa.Float(), nullable=True))
        batch_op.add_column(sa.Column('detail', sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('outcome', schema=None) as batch_op:
        batch_op.drop_column('detail')
        batch_op.drop_column('cost_usd')
        batch_op.drop_column('judge_model')
        batch_op.alter_column('verdict', existing_type=sqlmodel.sql.sqltypes.AutoString(length=16),
                              type_=sqlmodel.sql.sqltypes.AutoString(length=8), existing_nullable=True)
    with op.batch_alter_table('request', schema=None) as batch_op:
        batch_op.drop_column('budget_reserved_usd')
        batch_op.drop_column('budget_wave')
    with op.batch_alter_table('job', schema=None) as batch_op:
        batch_op.drop_column('budget_wave')
        batch_op.drop_column('budget_reserved_usd')
        batch_op.drop_column('judge_cost_usd')
