"""Tables of the embedded IAM service: roles, users and their inline policies.

Managed policies (``iam_policies``) keep up to five versions each (``iam_policy_versions``); an
attachment (``iam_policy_attachments``) ties one to a role or a user. A role's or user's
permissions boundary is the id of a managed policy (``permissions_boundary``).

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
    Column("permissions_boundary", String(32), nullable=True),
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
    Column("permissions_boundary", String(32), nullable=True),
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

iam_policies = Table(
    "iam_policies",
    metadata,
    Column("policy_id", String(32), primary_key=True),
    Column("account_id", String(12), ForeignKey("accounts.account_id"), nullable=False),
    Column("name", String(128), nullable=False),
    Column("name_key", String(128), nullable=False),
    Column("path", String(512), nullable=False),
    Column("description", Text, nullable=True),
    Column("default_version", String(16), nullable=False),
    Column("next_version", Integer, nullable=False),
    Column("tags", Text, nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Index("ux_iam_policies_account_name", "account_id", "name_key", unique=True),
)

iam_policy_versions = Table(
    "iam_policy_versions",
    metadata,
    Column("policy_id", String(32), ForeignKey("iam_policies.policy_id"), primary_key=True),
    Column("version_id", String(16), primary_key=True),
    Column("document", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

# entity_kind "role" or "user"; entity_id the role's or user's id.
iam_policy_attachments = Table(
    "iam_policy_attachments",
    metadata,
    Column("entity_kind", String(8), primary_key=True),
    Column("entity_id", String(32), primary_key=True),
    Column("policy_id", String(32), ForeignKey("iam_policies.policy_id"), primary_key=True),
    Column("attached_at", DateTime(timezone=True), nullable=False),
    Index("ix_iam_policy_attachments_policy", "policy_id"),
)
