"""export jobs: abort_attempts and abort_retry_at, for the sweeper of orphan multipart uploads

A job that failed or was cancelled while S3 refused or could not take its AbortMultipartUpload
forgot the upload id at once, so nothing would ever abort the upload (its parts stayed stored
and billed). The id now stays recorded until an abort succeeds; these columns pace the
sweeper's retries.

Revision ID: 0009_job_upload_sweep
Revises: 0005_jobs_list_index
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009_job_upload_sweep"
down_revision = "0005_jobs_list_index"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("export_jobs") as batch:
        batch.add_column(sa.Column("abort_attempts", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("abort_retry_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("export_jobs") as batch:
        batch.drop_column("abort_retry_at")
        batch.drop_column("abort_attempts")
