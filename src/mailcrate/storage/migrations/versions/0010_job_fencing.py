"""export jobs: a fencing token per attempt and the commit an attempt recorded

Each claim raises ``fence``; the claiming attempt owns the job as ``<worker>#<fence>``, so an
attempt that stalled past its lease (even one of the same worker) can change nothing once
another attempt took the job, and the embedded S3 refuses its writes where they land.

An attempt that has uploaded every part records what it is about to publish (``commit_upload``,
its parts' ETags in ``commit_parts`` and the export log in ``commit_log``) before it completes
the upload. From then on the zip and the log can only ever be those bytes: a later attempt
finishes that commit instead of exporting again, and a late write of the committing attempt
writes the same object.

Revision ID: 0010_job_fencing
Revises: 0009_job_upload_sweep
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010_job_fencing"
down_revision = "0009_job_upload_sweep"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("export_jobs") as batch:
        batch.add_column(sa.Column("fence", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("commit_upload", sa.String(length=1024), nullable=True))
        batch.add_column(sa.Column("commit_parts", sa.Text(), nullable=True))
        batch.add_column(sa.Column("commit_log", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("export_jobs") as batch:
        batch.drop_column("commit_log")
        batch.drop_column("commit_parts")
        batch.drop_column("commit_upload")
        batch.drop_column("fence")
