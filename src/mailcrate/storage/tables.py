"""The SQL schema, as SQLAlchemy Core tables.

Portable SQL only (SQLite for one machine, PostgreSQL when scaling out): no SQLite-only types or
statements. Times are stored as timezone-aware UTC timestamps; secrets only as sealed strings
(see :mod:`mailcrate.storage.crypto`). Alembic migrations under ``migrations/`` create these
tables; this module is the reference the application code queries against.
"""

from __future__ import annotations

from sqlalchemy import (
    Boolean,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
)

metadata = MetaData()

accounts = Table(
    "accounts",
    metadata,
    Column("account_id", String(12), primary_key=True),
    Column("default_region", String(32), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

access_keys = Table(
    "access_keys",
    metadata,
    Column("access_key_id", String(128), primary_key=True),
    Column("account_id", String(12), ForeignKey("accounts.account_id"), nullable=False),
    Column("secret_sealed", Text, nullable=False),
    # "root", "user" or "session": who the key acts as.
    Column("principal_kind", String(16), nullable=False),
    Column("principal_arn", String(2048), nullable=False),
    Column("principal_id", String(128), nullable=False),
    # Only for temporary (STS) credentials: a hash of the session token and the expiry.
    Column("session_token_hash", String(128), nullable=True),
    Column("expires_at", DateTime(timezone=True), nullable=True),
    Column("status", String(16), nullable=False, default="Active"),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("extra", Text, nullable=True),
)

organizations = Table(
    "workmail_organizations",
    metadata,
    Column("organization_id", String(34), primary_key=True),
    Column("account_id", String(12), ForeignKey("accounts.account_id"), nullable=False),
    Column("region", String(32), nullable=False),
    Column("alias", String(62), nullable=False),
    # The lower-cased alias while this organization holds it, NULL once it is deleted (WorkMail
    # lets a deleted organization's alias be used again). Its unique index is what keeps two
    # concurrent CreateOrganization calls from both taking one alias, on SQLite and PostgreSQL
    # alike (NULLs never collide). Organizations that shared an alias before revision 0006 keep
    # it NULL except the oldest (see that migration).
    Column("alias_key", String(62), nullable=True),
    Column("state", String(32), nullable=False),
    Column("directory_id", String(12), nullable=True),
    Column("directory_type", String(32), nullable=False),
    Column("default_mail_domain", String(255), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("completed_at", DateTime(timezone=True), nullable=True),
    Column("deleted_at", DateTime(timezone=True), nullable=True),
    Column("client_token", String(128), nullable=True),
    Index("ix_org_account_region", "account_id", "region", "created_at"),
    Index("ux_org_alias_key", "alias_key", unique=True),
)

mail_domains = Table(
    "workmail_mail_domains",
    metadata,
    Column(
        "organization_id", String(34), ForeignKey("workmail_organizations.organization_id"), primary_key=True
    ),
    Column("domain", String(255), primary_key=True),
    Column("is_default", Boolean, nullable=False, default=False),
)

users = Table(
    "workmail_users",
    metadata,
    Column("user_id", String(256), primary_key=True),
    Column(
        "organization_id", String(34), ForeignKey("workmail_organizations.organization_id"), nullable=False
    ),
    Column("name", String(64), nullable=False),
    Column("name_key", String(64), nullable=False),
    Column("display_name", String(256), nullable=True),
    Column("email", String(254), nullable=True),
    Column("email_key", String(254), nullable=True),
    Column("state", String(16), nullable=False),
    Column("role", String(16), nullable=False),
    Column("first_name", String(256), nullable=True),
    Column("last_name", String(256), nullable=True),
    Column("hidden_from_gal", Boolean, nullable=False, default=False),
    Column("attributes", Text, nullable=True),
    Column("password_sealed", Text, nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("enabled_at", DateTime(timezone=True), nullable=True),
    Column("disabled_at", DateTime(timezone=True), nullable=True),
    Column("mailbox_provisioned_at", DateTime(timezone=True), nullable=True),
    Column("mailbox_deprovisioned_at", DateTime(timezone=True), nullable=True),
    Column("mailbox_quota_mb", Integer, nullable=False, default=51200),
    # An external mailbox source (IMAP/CalDAV/Maildir), JSON sealed with the master key.
    Column("source_sealed", Text, nullable=True),
    # The data directory (its node id) that holds the embedded mailbox's mail: set by the first
    # write of mail into it; NULL while none was written. Only that node may export it.
    Column("mailbox_node", String(64), nullable=True),
    Index("ix_user_org_created", "organization_id", "created_at"),
    Index("ix_user_org_name", "organization_id", "name_key"),
    Index("ix_user_org_email", "organization_id", "email_key"),
)
