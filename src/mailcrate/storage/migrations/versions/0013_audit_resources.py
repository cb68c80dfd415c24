"""audit trail: drop the (account_id, resource_name, event_time) index of audit_event_resources

LookupEvents by ResourceName or ResourceType walks the account's events newest first and looks
each one's resources up by the primary key (event_id, resource_type, resource_name); neither
SQLite's nor PostgreSQL's planner uses this index for it (the lookup names no resource's
account), so it was only written. Writing it was a third of the resource rows' cost: an
audited KMS Encrypt's two resource rows took 12 us to insert with it and 7 us without
(SQLite, batches of 100; BENCHMARKS.md, tenth session).

Revision ID: 0013_audit_resources
Revises: 0009_audit
"""

from __future__ import annotations

from alembic import op

revision = "0013_audit_resources"
down_revision = "0009_audit"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_index("ix_audit_resources_account_name_time", table_name="audit_event_resources")


def downgrade() -> None:
    op.create_index(
        "ix_audit_resources_account_name_time",
        "audit_event_resources",
        ["account_id", "resource_name", "event_time"],
    )
