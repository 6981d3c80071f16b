"""a job's warnings counted as its log lines are stored: jobs.warning_count (the list of jobs read the log of each)

Revision ID: 0006
Revises: 0005
"""

import re

from alembic import op
import sqlalchemy as sa


revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None

# The tables and the rules as they were at this revision, written out here: a migration that imported today's model
# (plexloc.service.db.JobLog) or today's rules (plexloc.service.words) would change with them, and an old database
# upgraded by a later plexloc would be given columns or counts that this revision never had (or fail outright on a
# column added since). Same rules as plexloc.service.words.warning_counts of session 50.
_jobs = sa.table('jobs', sa.column('id', sa.String), sa.column('warning_count', sa.Integer))
_logs = sa.table('job_logs', sa.column('id', sa.Integer), sa.column('job_id', sa.String), sa.column('line', sa.Text))
#: the log line the server writes as an attempt begins: the lines before it are an earlier attempt's
_CLAIMED = "[service] claimed by worker "
#: plexloc's warnings (``plexloc fit: warning: ...``, ``warning: ...``) and Python's (``/m.py:12: UserWarning: ...``)
_PLEXLOC = re.compile(r"^(?:plexloc [\w-]+: )?warning: (?P<text>.*)$")
_PYTHON = re.compile(r"^\S+\.py:\d+: (?P<text>\w*Warning: .*)$")


def _counts(conn) -> dict:
    """Warnings in the log of each job's last attempt (the LIKE patterns only narrow the lines read; the regular
    expressions decide, so that ``plexloc fit: WARNING:``, which SQLite's LIKE takes, is not counted)."""
    line = _logs.c.line
    pre = sa.or_(line.like("plexloc %: warning: %"), line.like("%.py:%: %Warning: %"),
                 sa.func.substr(line, 1, len("warning: ")) == "warning: ", line.like(_CLAIMED + "%"))
    out: dict = {}
    for job_id, text in conn.execute(sa.select(_logs.c.job_id, line).where(pre).order_by(_logs.c.job_id, _logs.c.id)):
        if text.startswith(_CLAIMED):
            out[job_id] = 0
        elif _PLEXLOC.match(text) or _PYTHON.match(text):
            out[job_id] = out.get(job_id, 0) + 1
    return {job_id: n for job_id, n in out.items() if n}


def upgrade() -> None:
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('warning_count', sa.Integer(), server_default='0', nullable=False))
    # the jobs of before: counted in their logs as a job's lines are counted when they are stored (the last attempt's
    # lines only); SQL LIKE alone counted every attempt's and took lines the server does not count
    conn = op.get_bind()
    for job_id, n in _counts(conn).items():
        conn.execute(_jobs.update().where(_jobs.c.id == job_id).values(warning_count=n))


def downgrade() -> None:
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.drop_column('warning_count')
