"""iam: managed policies, their versions and attachments; permissions boundaries

Revision ID: 0007_iam_managed_policies
Revises: 0002_iam
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007_iam_managed_policies"
down_revision = "0002_iam"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "iam_policies",
        sa.Column("policy_id", sa.String(length=32), nullable=False),
        sa.Column("account_id", sa.String(length=12), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("name_key", sa.String(length=128), nullable=False),
        sa.Column("path", sa.String(length=512), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("default_version", sa.String(length=16), nullable=False),
        sa.Column("next_version", sa.Integer(), nullable=False),
        sa.Column("tags", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["account_id"], ["accounts.account_id"]),
        sa.PrimaryKeyConstraint("policy_id"),
    )
    with op.batch_alter_table("iam_policies") as batch:
        batch.create_index("ux_iam_policies_account_name", ["account_id", "name_key"], unique=True)
    op.create_table(
        "iam_policy_versions",
        sa.Column("policy_id", sa.String(length=32), nullable=False),
        sa.Column("version_id", sa.String(length=16), nullable=False),
        sa.Column("document", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["policy_id"], ["iam_policies.policy_id"]),
        sa.PrimaryKeyConstraint("policy_id", "version_id"),
    )
    op.create_table(
        "iam_policy_attachments",
        sa.Column("entity_kind", sa.String(length=8), nullable=False),
        sa.Column("entity_id", sa.String(length=32), nullable=False),
        sa.Column("policy_id", sa.String(length=32), nullable=False),
        sa.Column("attached_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["policy_id"], ["iam_policies.policy_id"]),
        sa.PrimaryKeyConstraint("entity_kind", "entity_id", "policy_id"),
    )
    with op.batch_alter_table("iam_policy_attachments") as batch:
        batch.create_index("ix_iam_policy_attachments_policy", ["policy_id"])
    for table in ("iam_roles", "iam_users"):
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column("permissions_boundary", sa.String(length=32), nullable=True))


def downgrade() -> None:
    for table in ("iam_users", "iam_roles"):
        with op.batch_alter_table(table) as batch:
            batch.drop_column("permissions_boundary")
    with op.batch_alter_table("iam_policy_attachments") as batch:
        batch.drop_index("ix_iam_policy_attachments_policy")
    op.drop_table("iam_policy_attachments")
    op.drop_table("iam_policy_versions")
    with op.batch_alter_table("iam_policies") as batch:
        batch.drop_index("ux_iam_policies_account_name")
    op.drop_table("iam_policies")
