"""a job's warnings counted as its log lines are stored: jobs.warning_count (the list of jobs read the log of each)

Revision ID: 0006
Revises: 0005
"""

from alembic import op
import sqlalchemy as sa


revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('warning_count', sa.Integer(), server_default='0', nullable=False))
    # the jobs of before: counted in their logs, as plexloc.service.words counts them
    jobs = sa.table('jobs', sa.column('id', sa.String), sa.column('warning_count', sa.Integer))
    logs = sa.table('job_logs', sa.column('job_id', sa.String), sa.column('line', sa.Text))
    said = sa.or_(logs.c.line.like('plexloc %: warning: %'), logs.c.line.like('%.py:%: %Warning: %'),
                  sa.func.substr(logs.c.line, 1, 9) == 'warning: ')
    count = sa.select(sa.func.count()).select_from(logs).where(logs.c.job_id == jobs.c.id, said).scalar_subquery()
    op.execute(jobs.update().values(warning_count=count))


def downgrade() -> None:
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.drop_column('warning_count')
