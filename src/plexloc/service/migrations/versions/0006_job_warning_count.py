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
    # the jobs of before: counted in their logs as a job's lines are counted when they are stored (the regular
    # expressions of plexloc.service.words, the last attempt's lines only); SQL LIKE alone counted every attempt's and
    # took lines the server does not count (``plexloc fit: WARNING:`` in SQLite), so that an old job's count disagreed
    # with the warnings its answer lists
    from plexloc.service.words import warning_counts

    jobs = sa.table('jobs', sa.column('id', sa.String), sa.column('warning_count', sa.Integer))
    conn = op.get_bind()
    for job_id, n in warning_counts(conn).items():
        conn.execute(jobs.update().where(jobs.c.id == job_id).values(warning_count=n))


def downgrade() -> None:
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.drop_column('warning_count')
