"""audit: the audit trail (API calls that change state or read exports, export job events)

Revision ID: 0009_audit
Revises: 0001
Create Date: 2026-12-07 12:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009_audit"
down_revision = "0001"
branch_labels = ("audit",)
depends_on = None


def upgrade() -> None:
    op.create_table(
        "audit_events",
        sa.Column("event_id", sa.String(length=36), nullable=False),
        sa.Column("event_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("account_id", sa.String(length=12), nullable=False),
        sa.Column("region", sa.String(length=32), nullable=False),
        sa.Column("event_source", sa.String(length=64), nullable=False),
        sa.Column("event_name", sa.String(length=128), nullable=False),
        sa.Column("event_type", sa.String(length=32), nullable=False),
        sa.Column("read_only", sa.Boolean(), nullable=False),
        sa.Column("request_id", sa.String(length=64), nullable=True),
        sa.Column("identity_type", sa.String(length=32), nullable=False),
        sa.Column("principal_arn", sa.String(length=2048), nullable=True),
        sa.Column("username", sa.String(length=256), nullable=True),
        sa.Column("access_key_id", sa.String(length=128), nullable=True),
        sa.Column("source_ip", sa.String(length=64), nullable=True),
        sa.Column("user_agent", sa.String(length=1024), nullable=True),
        sa.Column("error_code", sa.String(length=128), nullable=True),
        sa.Column("error_message", sa.Text(), nullable=True),
        sa.Column("request_parameters", sa.Text(), nullable=True),
        sa.Column("response_elements", sa.Text(), nullable=True),
        sa.Column("resources", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("event_id"),
    )
    with op.batch_alter_table("audit_events", schema=None) as batch_op:
        batch_op.create_index(
            "ix_audit_events_account_time", ["account_id", "event_time", "event_id"], unique=False
        )
        batch_op.create_index(
            "ix_audit_events_account_name_time", ["account_id", "event_name", "event_time"], unique=False
        )
        batch_op.create_index("ix_audit_events_time", ["event_time"], unique=False)
    op.create_table(
        "audit_event_resources",
        sa.Column("event_id", sa.String(length=36), nullable=False),
        sa.Column("resource_type", sa.String(length=128), nullable=False),
        sa.Column("resource_name", sa.String(length=2048), nullable=False),
        sa.Column("account_id", sa.String(length=12), nullable=False),
        sa.Column("event_time", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["event_id"], ["audit_events.event_id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("event_id", "resource_type", "resource_name"),
    )
    with op.batch_alter_table("audit_event_resources", schema=None) as batch_op:
        batch_op.create_index(
            "ix_audit_resources_account_name_time",
            ["account_id", "resource_name", "event_time"],
            unique=False,
        )


def downgrade() -> None:
    op.drop_table("audit_event_resources")
    op.drop_table("audit_events")
