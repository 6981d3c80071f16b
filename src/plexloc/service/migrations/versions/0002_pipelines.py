"""pipelines: job inputs may reference another job's output

Revision ID: 0002
Revises: 0001
"""

from alembic import op
import sqlalchemy as sa


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('job_inputs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('source_job_id', sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column('source_name', sa.String(length=255), nullable=True))
        batch_op.alter_column('file_id',
               existing_type=sa.VARCHAR(length=32),
               nullable=True)
        batch_op.create_index(batch_op.f('ix_job_inputs_source_job_id'), ['source_job_id'], unique=False)

    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('waiting', sa.Boolean(), nullable=False, server_default=sa.false()))



def downgrade() -> None:
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.drop_column('waiting')

    with op.batch_alter_table('job_inputs', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_job_inputs_source_job_id'))
        batch_op.alter_column('file_id',
               existing_type=sa.VARCHAR(length=32),
               nullable=False)
        batch_op.drop_column('source_name')
        batch_op.drop_column('source_job_id')

