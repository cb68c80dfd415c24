"""jobs: mailbox export jobs with worker leases

Revision ID: 0004_jobs
Revises: 0001
Create Date: 2026-11-25 16:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004_jobs"
down_revision = "0001"
branch_labels = ("jobs",)
depends_on = None


def upgrade() -> None:
    op.create_table(
        "export_jobs",
        sa.Column("job_id", sa.String(length=63), nullable=False),
        sa.Column("account_id", sa.String(length=12), nullable=False),
        sa.Column("region", sa.String(length=32), nullable=False),
        sa.Column("organization_id", sa.String(length=34), nullable=False),
        sa.Column("entity_id", sa.String(length=256), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("role_arn", sa.String(length=2048), nullable=False),
        sa.Column("kms_key_arn", sa.String(length=2048), nullable=False),
        sa.Column("s3_bucket_name", sa.String(length=63), nullable=False),
        sa.Column("s3_prefix", sa.String(length=1023), nullable=False),
        sa.Column("s3_path", sa.String(length=1100), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("estimated_progress", sa.Integer(), nullable=False),
        sa.Column("error_info", sa.Text(), nullable=True),
        sa.Column("start_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("end_time", sa.DateTime(timezone=True), nullable=True),
        sa.Column("client_token", sa.String(length=128), nullable=True),
        sa.Column("request_digest", sa.String(length=64), nullable=False),
        sa.Column("cancel_token", sa.String(length=128), nullable=True),
        sa.Column("lease_owner", sa.String(length=128), nullable=True),
        sa.Column("lease_expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("finishing", sa.Boolean(), nullable=False),
        sa.Column("upload_id", sa.String(length=1024), nullable=True),
        sa.Column("items_total", sa.BigInteger(), nullable=True),
        sa.Column("items_done", sa.BigInteger(), nullable=True),
        sa.Column("bytes_done", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("job_id"),
    )
    with op.batch_alter_table("export_jobs", schema=None) as batch_op:
        batch_op.create_index("ix_export_jobs_org_start", ["organization_id", "start_time"], unique=False)
        batch_op.create_index(
            "ix_export_jobs_org_entity", ["organization_id", "entity_id", "start_time"], unique=False
        )
        batch_op.create_index("ix_export_jobs_state_lease", ["state", "lease_expires_at"], unique=False)
        batch_op.create_index("ux_export_jobs_org_token", ["organization_id", "client_token"], unique=True)


def downgrade() -> None:
    op.drop_table("export_jobs")
