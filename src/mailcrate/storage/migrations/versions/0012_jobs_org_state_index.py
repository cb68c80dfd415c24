"""export jobs: an index on (organization_id, state) for Start's count of running jobs

Start counts the organization's RUNNING jobs inside the organization's lock (the 10-jobs limit).
Without this index SQLite answers it from ``ix_export_jobs_state_lease``: every RUNNING job of
every organization, each looked up in the table for its organization; with it the count reads
only that organization's RUNNING entries of the index.

Revision ID: 0012_jobs_org_state_index
Revises: 0011_export_checkpoints
"""

from __future__ import annotations

from alembic import op

revision = "0012_jobs_org_state_index"
down_revision = "0011_export_checkpoints"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_export_jobs_org_state", "export_jobs", ["organization_id", "state"])


def downgrade() -> None:
    op.drop_index("ix_export_jobs_org_state", table_name="export_jobs")
