"""Accounts and their access keys: who a SigV4 signature can belong to.

An account (12 digits) owns everything else. Its root access key may do anything in it; keys of
IAM users and of assumed-role sessions (added by the IAM/STS services) live in the same table and
say which principal they act as. Secrets are sealed with the data directory's master key.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets as pysecrets
import string
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, insert, select

from mailcrate.datadir import DataDir
from mailcrate.storage.crypto import ACCESS_KEY_PURPOSE
from mailcrate.storage.db import as_utc, utcnow
from mailcrate.storage.tables import access_keys, accounts

_KEY_ALPHABET = string.ascii_uppercase + string.digits
_SECRET_ALPHABET = string.ascii_letters + string.digits + "+/"


class AccountConflict(Exception):
    """``init`` was asked for values that contradict the existing account."""


@dataclass(frozen=True)
class Principal:
    """The identity a request was signed by, as resolved from its access key."""

    account_id: str
    arn: str
    # "root", "user", "session", "service" (an AWS service acting in-process), or "anonymous"
    # (an unsigned S3 request: only a bucket policy naming Principal "*" lets it read anything)
    kind: str
    principal_id: str
    access_key_id: str
    secret_access_key: str
    session_token_hash: str | None = None
    expires_at: datetime | None = None
    # For a service principal: the resource it acts for (aws:SourceAccount, aws:SourceArn).
    source_account: str | None = None
    source_arn: str | None = None

    @property
    def is_root(self) -> bool:
        return self.kind == "root"

    @property
    def is_anonymous(self) -> bool:
        return self.kind == "anonymous"

    @classmethod
    def anonymous(cls) -> Principal:
        """The caller of an unsigned request. It belongs to no account and holds no key or
        identity policy, so nothing but a resource policy can allow it anything."""
        return cls(
            account_id="",
            arn="anonymous",
            kind="anonymous",
            principal_id="anonymous",
            access_key_id="",
            secret_access_key="",
        )

    @classmethod
    def for_service(cls, service: str, *, source_account: str, source_arn: str | None = None) -> Principal:
        """An AWS service principal (``export.workmail.amazonaws.com``) calling on behalf of a
        resource of ``source_account``. It holds no key and no identity policy: only resource
        policies that name the service (a role's trust policy) let it do anything."""
        return cls(
            account_id=source_account,
            arn=service,
            kind="service",
            principal_id=service,
            access_key_id="",
            secret_access_key="",
            source_account=source_account,
            source_arn=source_arn,
        )


def new_access_key_id(prefix: str = "AKIA") -> str:
    return prefix + "".join(pysecrets.choice(_KEY_ALPHABET) for _ in range(16))


def new_secret_access_key() -> str:
    return "".join(pysecrets.choice(_SECRET_ALPHABET) for _ in range(40))


def new_account_id() -> str:
    return str(pysecrets.randbelow(9 * 10**11) + 10**11)


def hash_session_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def session_token_matches(principal: Principal, token: str | None) -> bool:
    """Temporary keys need their session token; long-term keys must not carry one."""
    if principal.session_token_hash is None:
        return token is None
    return token is not None and hmac.compare_digest(principal.session_token_hash, hash_session_token(token))


@dataclass(frozen=True)
class InitResult:
    account_id: str
    region: str
    access_key_id: str
    secret_access_key: str
    created: bool


def _insert_account(
    data_dir: DataDir, conn: Any, account_id: str, region: str, key_id: str, secret: str
) -> None:
    now = utcnow()
    conn.execute(insert(accounts).values(account_id=account_id, default_region=region, created_at=now))
    conn.execute(
        insert(access_keys).values(
            access_key_id=key_id,
            account_id=account_id,
            secret_sealed=data_dir.secrets.seal_text(secret, ACCESS_KEY_PURPOSE),
            principal_kind="root",
            principal_arn=f"arn:aws:iam::{account_id}:root",
            principal_id=account_id,
            status="Active",
            created_at=now,
        )
    )


def init_account(
    data_dir: DataDir,
    *,
    account_id: str | None,
    region: str | None,
    access_key_id: str | None,
    secret_access_key: str | None,
) -> InitResult:
    """Create the first account and its root key once; re-running with the same values changes nothing."""
    with data_dir.db.begin() as conn:
        existing = conn.execute(select(accounts).order_by(accounts.c.created_at).limit(1)).first()
        if existing is not None:
            root = conn.execute(
                select(access_keys).where(
                    access_keys.c.account_id == existing.account_id, access_keys.c.principal_kind == "root"
                )
            ).first()
            assert root is not None
            secret = data_dir.secrets.open_text(root.secret_sealed, ACCESS_KEY_PURPOSE)
            wanted = {
                "--account-id": (account_id, existing.account_id),
                "--region": (region, existing.default_region),
                "--access-key-id": (access_key_id, root.access_key_id),
                "--secret-access-key": (secret_access_key, secret),
            }
            for flag, (asked, have) in wanted.items():
                if asked is not None and asked != have:
                    shown = "" if flag == "--secret-access-key" else f" (it has {have!r})"
                    raise AccountConflict(f"{flag} differs from the initialised data directory{shown}")
            return InitResult(existing.account_id, existing.default_region, root.access_key_id, secret, False)
    return add_account(
        data_dir,
        account_id=account_id,
        region=region,
        access_key_id=access_key_id,
        secret_access_key=secret_access_key,
    )


def add_account(
    data_dir: DataDir,
    *,
    account_id: str | None,
    region: str | None,
    access_key_id: str | None,
    secret_access_key: str | None,
) -> InitResult:
    """Add another account (a tenant of its own: it sees nothing of the others)."""
    account_id = account_id or new_account_id()
    region = region or "us-east-1"
    access_key_id = access_key_id or new_access_key_id()
    secret_access_key = secret_access_key or new_secret_access_key()
    with data_dir.db.begin() as conn:
        if conn.execute(select(accounts.c.account_id).where(accounts.c.account_id == account_id)).first():
            raise AccountConflict(f"account {account_id} already exists")
        if conn.execute(
            select(access_keys.c.access_key_id).where(access_keys.c.access_key_id == access_key_id)
        ).first():
            raise AccountConflict(f"access key {access_key_id} already exists")
        _insert_account(data_dir, conn, account_id, region, access_key_id, secret_access_key)
    return InitResult(account_id, region, access_key_id, secret_access_key, True)


def lookup_access_key(data_dir: DataDir, access_key_id: str) -> Principal | None:
    """The principal an access key acts as, or None for unknown/inactive keys."""
    with data_dir.db.read() as conn:
        row = conn.execute(select(access_keys).where(access_keys.c.access_key_id == access_key_id)).first()
    if row is None or row.status != "Active":
        return None
    return Principal(
        account_id=row.account_id,
        arn=row.principal_arn,
        kind=row.principal_kind,
        principal_id=row.principal_id,
        access_key_id=row.access_key_id,
        secret_access_key=data_dir.secrets.open_text(row.secret_sealed, ACCESS_KEY_PURPOSE),
        session_token_hash=row.session_token_hash,
        expires_at=as_utc(row.expires_at),
    )


def default_region(data_dir: DataDir, account_id: str) -> str:
    with data_dir.db.read() as conn:
        row = conn.execute(
            select(accounts.c.default_region).where(accounts.c.account_id == account_id)
        ).first()
    return row.default_region if row else "us-east-1"


def store_access_key(
    conn: Connection,
    data_dir: DataDir,
    *,
    account_id: str,
    access_key_id: str,
    secret_access_key: str,
    principal_kind: str,
    principal_arn: str,
    principal_id: str,
    session_token: str | None = None,
    expires_at: datetime | None = None,
    extra: str | None = None,
) -> datetime:
    """Insert a key for an IAM user (``"user"``) or an STS session (``"session"``) in ``conn``'s
    transaction; the secret is sealed and a session token kept only as its hash. Returns the
    creation time."""
    now = utcnow()
    conn.execute(
        insert(access_keys).values(
            access_key_id=access_key_id,
            account_id=account_id,
            secret_sealed=data_dir.secrets.seal_text(secret_access_key, ACCESS_KEY_PURPOSE),
            principal_kind=principal_kind,
            principal_arn=principal_arn,
            principal_id=principal_id,
            session_token_hash=hash_session_token(session_token) if session_token is not None else None,
            expires_at=expires_at,
            status="Active",
            created_at=now,
            extra=extra,
        )
    )
    return now
