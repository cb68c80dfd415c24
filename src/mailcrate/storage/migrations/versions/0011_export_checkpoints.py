"""export jobs: checkpoints an attempt resumes from (mailcrate.export.checkpoint)

A job's attempt records, after each run of uploaded parts, where the archive stands: the parts'
ETags, the zip writer's and the source's position, and the export log hash's state. An attempt
that takes over the job (after a crash or a lost lease) continues the same multipart upload from
there instead of reading and uploading the whole mailbox again.

Revision ID: 0011_export_checkpoints
Revises: 0010_job_fencing
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011_export_checkpoints"
down_revision = "0010_job_fencing"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "export_checkpoints",
        sa.Column("job_id", sa.String(length=63), primary_key=True),
        sa.Column("part_number", sa.Integer(), primary_key=True),
        sa.Column("upload_id", sa.String(length=1024), nullable=False),
        sa.Column("state", sa.Text(), nullable=False),
        sa.Column("hash_state", sa.LargeBinary(), nullable=False),
        sa.Column("central", sa.LargeBinary(), nullable=False),
        sa.Column("manifest", sa.LargeBinary(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("export_checkpoints")
