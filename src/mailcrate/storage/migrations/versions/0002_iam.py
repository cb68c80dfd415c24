"""iam: roles, users, inline policies

Revision ID: 0002_iam
Revises: 0001
Create Date: 2026-11-25 15:10:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002_iam"
down_revision = "0001"
branch_labels = ("iam",)
depends_on = None


def upgrade() -> None:
    op.create_table(
        "iam_roles",
        sa.Column("role_id", sa.String(length=32), nullable=False),
        sa.Column("account_id", sa.String(length=12), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("name_key", sa.String(length=64), nullable=False),
        sa.Column("path", sa.String(length=512), nullable=False),
        sa.Column("trust_policy", sa.Text(), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("max_session_duration", sa.Integer(), nullable=False),
        sa.Column("tags", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["account_id"], ["accounts.account_id"]),
        sa.PrimaryKeyConstraint("role_id"),
    )
    with op.batch_alter_table("iam_roles", schema=None) as batch_op:
        batch_op.create_index("ux_iam_roles_account_name", ["account_id", "name_key"], unique=True)

    op.create_table(
        "iam_role_policies",
        sa.Column("role_id", sa.String(length=32), nullable=False),
        sa.Column("policy_name", sa.String(length=128), nullable=False),
        sa.Column("document", sa.Text(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["role_id"], ["iam_roles.role_id"]),
        sa.PrimaryKeyConstraint("role_id", "policy_name"),
    )
    op.create_table(
        "iam_users",
        sa.Column("user_id", sa.String(length=32), nullable=False),
        sa.Column("account_id", sa.String(length=12), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("name_key", sa.String(length=128), nullable=False),
        sa.Column("path", sa.String(length=512), nullable=False),
        sa.Column("tags", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["account_id"], ["accounts.account_id"]),
        sa.PrimaryKeyConstraint("user_id"),
    )
    with op.batch_alter_table("iam_users", schema=None) as batch_op:
        batch_op.create_index("ux_iam_users_account_name", ["account_id", "name_key"], unique=True)

    op.create_table(
        "iam_user_policies",
        sa.Column("user_id", sa.String(length=32), nullable=False),
        sa.Column("policy_name", sa.String(length=128), nullable=False),
        sa.Column("document", sa.Text(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["user_id"], ["iam_users.user_id"]),
        sa.PrimaryKeyConstraint("user_id", "policy_name"),
    )


def downgrade() -> None:
    op.drop_table("iam_user_policies")
    with op.batch_alter_table("iam_users", schema=None) as batch_op:
        batch_op.drop_index("ux_iam_users_account_name")
    op.drop_table("iam_users")
    op.drop_table("iam_role_policies")
    with op.batch_alter_table("iam_roles", schema=None) as batch_op:
        batch_op.drop_index("ux_iam_roles_account_name")
    op.drop_table("iam_roles")
