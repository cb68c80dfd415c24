"""Tables of the embedded IAM service: roles, users and their inline policies.

Access keys of IAM users and STS sessions live in ``access_keys`` (see :mod:`mailcrate.accounts`).
Names are unique per account regardless of case, as IAM has it, so each name has a ``name_key``
(lower-cased) that carries the unique index. Policy documents are stored exactly as written.
"""

from __future__ import annotations

from sqlalchemy import Column, DateTime, ForeignKey, Index, Integer, String, Table, Text

from mailcrate.storage.tables import metadata

iam_roles = Table(
    "iam_roles",
    metadata,
    Column("role_id", String(32), primary_key=True),
    Column("account_id", String(12), ForeignKey("accounts.account_id"), nullable=False),
    Column("name", String(64), nullable=False),
    Column("name_key", String(64), nullable=False),
    Column("path", String(512), nullable=False),
    Column("trust_policy", Text, nullable=False),
    Column("description", Text, nullable=True),
    Column("max_session_duration", Integer, nullable=False),
    Column("tags", Text, nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Index("ux_iam_roles_account_name", "account_id", "name_key", unique=True),
)

iam_role_policies = Table(
    "iam_role_policies",
    metadata,
    Column("role_id", String(32), ForeignKey("iam_roles.role_id"), primary_key=True),
    Column("policy_name", String(128), primary_key=True),
    Column("document", Text, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

iam_users = Table(
    "iam_users",
    metadata,
    Column("user_id", String(32), primary_key=True),
    Column("account_id", String(12), ForeignKey("accounts.account_id"), nullable=False),
    Column("name", String(128), nullable=False),
    Column("name_key", String(128), nullable=False),
    Column("path", String(512), nullable=False),
    Column("tags", Text, nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Index("ux_iam_users_account_name", "account_id", "name_key", unique=True),
)

iam_user_policies = Table(
    "iam_user_policies",
    metadata,
    Column("user_id", String(32), ForeignKey("iam_users.user_id"), primary_key=True),
    Column("policy_name", String(128), primary_key=True),
    Column("document", Text, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)
