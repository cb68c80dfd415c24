"""WorkMail organizations: state and rules, independent of the wire.

An organization belongs to one account and one region; its alias forms its default mail domain
``<alias>.awsapps.com`` and, as in WorkMail, must be unique (in any case) among organizations
not deleted; a deleted organization's alias may be used again. A unique index on ``alias_key``
(the lower-cased alias, NULL once deleted) lets the database settle concurrent creates.
mailcrate creates organizations synchronously, so a new organization is ``Active`` at once;
deletion moves it to ``Deleted`` (kept, as WorkMail lists deleted organizations for a while) and
removes its mailboxes.
"""

from __future__ import annotations

import re
import shutil
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, bindparam, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from mailcrate.datadir import DataDir
from mailcrate.services.pagination import InvalidToken, keyset_page
from mailcrate.services.workmail.errors import (
    InvalidParameter,
    NameAvailability,
    OrganizationNotFound,
    OrganizationState,
)
from mailcrate.storage.db import as_utc, utcnow
from mailcrate.storage.tables import mail_domains, organizations, users

ACTIVE = "Active"
DELETED = "Deleted"
DIRECTORY_TYPE = "WorkMailDirectory"
_ALIAS_RE = re.compile(r"[A-Za-z0-9]+(-[A-Za-z0-9]+)*")
# In the text of a violation of the alias' unique index: PostgreSQL names the index
# (ux_org_alias_key), SQLite the column (workmail_organizations.alias_key).
_ALIAS_KEY = "alias_key"


@dataclass(frozen=True)
class Organization:
    organization_id: str
    account_id: str
    region: str
    alias: str
    state: str
    directory_id: str | None
    directory_type: str
    default_mail_domain: str
    created_at: datetime
    completed_at: datetime | None

    @property
    def arn(self) -> str:
        return f"arn:aws:workmail:{self.region}:{self.account_id}:organization/{self.organization_id}"

    @classmethod
    def from_row(cls, row: Any) -> Organization:
        return cls(
            organization_id=row.organization_id,
            account_id=row.account_id,
            region=row.region,
            alias=row.alias,
            state=row.state,
            directory_id=row.directory_id,
            directory_type=row.directory_type,
            default_mail_domain=row.default_mail_domain,
            created_at=as_utc(row.created_at),  # type: ignore[arg-type]
            completed_at=as_utc(row.completed_at),
        )


def organization_arn(region: str, account_id: str, organization_id: str) -> str:
    return f"arn:aws:workmail:{region}:{account_id}:organization/{organization_id}"


# Built once: every API call looks its organization up, and building the statement costs more
# than running it.
_FIND = select(organizations).where(
    organizations.c.organization_id == bindparam("organization_id"),
    organizations.c.account_id == bindparam("account_id"),
    organizations.c.region == bindparam("region"),
)


def find(conn: Connection, account_id: str, region: str, organization_id: str) -> Organization:
    """The organization, scoped to the caller's account and region (others' are invisible)."""
    row = conn.execute(
        _FIND, {"organization_id": organization_id, "account_id": account_id, "region": region}
    ).first()
    if row is None:
        raise OrganizationNotFound(organization_id)
    return Organization.from_row(row)


def find_active(conn: Connection, account_id: str, region: str, organization_id: str) -> Organization:
    org = find(conn, account_id, region, organization_id)
    if org.state != ACTIVE:
        raise OrganizationState(f"Organization {organization_id} is {org.state}.")
    return org


def create(
    conn: Connection,
    *,
    account_id: str,
    region: str,
    alias: str,
    client_token: str | None,
    domains: list[dict[str, Any]],
    directory_id: str | None,
) -> str:
    if directory_id is not None:
        raise InvalidParameter(
            "mailcrate keeps its own directory; connecting an existing directory (DirectoryId) is not supported."
        )
    if not _ALIAS_RE.fullmatch(alias):
        raise InvalidParameter(
            f"The alias {alias!r} is not valid: it becomes the mail domain {alias}.awsapps.com, so it may hold only "
            "letters, digits and inner hyphens."
        )
    if client_token:
        existing = conn.execute(
            select(organizations).where(
                organizations.c.account_id == account_id,
                organizations.c.region == region,
                organizations.c.client_token == client_token,
            )
        ).first()
        if existing is not None:
            if existing.alias != alias:
                raise InvalidParameter("ClientToken was already used with different parameters.")
            return existing.organization_id
    in_use = NameAvailability(f"The alias {alias} is already in use.")
    if _alias_in_use(conn, alias):
        raise in_use
    organization_id = "m-" + uuid.uuid4().hex
    now = utcnow()
    default_domain = f"{alias.lower()}.awsapps.com"
    try:
        # Concurrent creates of one alias can all pass the check above (12 at once made up to 4
        # organizations); the unique index on alias_key lets one INSERT through and fails the
        # others, whose transaction is then rolled back by the caller as the error propagates.
        conn.execute(
            insert(organizations).values(
                organization_id=organization_id,
                account_id=account_id,
                region=region,
                alias=alias,
                alias_key=alias.lower(),
                state=ACTIVE,
                directory_id=None,
                directory_type=DIRECTORY_TYPE,
                default_mail_domain=default_domain,
                created_at=now,
                completed_at=now,
                client_token=client_token,
            )
        )
    except IntegrityError as exc:
        if _ALIAS_KEY not in str(exc.orig):
            raise
        raise in_use from None
    names = [default_domain] + [d["DomainName"].lower() for d in domains if d.get("DomainName")]
    for name in dict.fromkeys(names):
        conn.execute(
            insert(mail_domains).values(
                organization_id=organization_id, domain=name, is_default=name == default_domain
            )
        )
    return organization_id


def _alias_in_use(conn: Connection, alias: str) -> bool:
    """Whether an organization not deleted uses ``alias`` (unique across all accounts, in any
    case). Read from the alias itself rather than ``alias_key`` so organizations that shared an
    alias before the unique index (see migration 0006) still keep it taken."""
    return (
        conn.execute(
            select(organizations.c.organization_id)
            .where(func.lower(organizations.c.alias) == alias.lower(), organizations.c.state != DELETED)
            .limit(1)
        ).first()
        is not None
    )


def page(
    conn: Connection, account_id: str, region: str, max_results: int, next_token: str | None
) -> tuple[list[Organization], str | None]:
    query = select(organizations).where(
        organizations.c.account_id == account_id, organizations.c.region == region
    )
    try:
        rows, token = keyset_page(
            conn,
            query,
            created=organizations.c.created_at,
            ident=organizations.c.organization_id,
            scope="organizations",
            next_token=next_token,
            max_results=max_results,
        )
    except InvalidToken:
        raise InvalidParameter("The NextToken is invalid.") from None
    return [Organization.from_row(row) for row in rows], token


def delete(conn: Connection, data_dir: DataDir, org: Organization, *, force: bool) -> None:
    if org.state == DELETED:
        raise OrganizationState(f"Organization {org.organization_id} is already deleted.")
    enabled = conn.execute(
        select(func.count())
        .select_from(users)
        .where(users.c.organization_id == org.organization_id, users.c.state == "ENABLED")
    ).scalar_one()
    if enabled and not force:
        raise OrganizationState(
            f"Organization {org.organization_id} has {enabled} enabled user(s); deregister them or set ForceDelete."
        )
    now = utcnow()
    conn.execute(
        update(users)
        .where(users.c.organization_id == org.organization_id, users.c.state != "DELETED")
        .values(state="DELETED", email=None, email_key=None, disabled_at=now, mailbox_deprovisioned_at=now)
    )
    conn.execute(
        update(organizations)
        .where(organizations.c.organization_id == org.organization_id)
        .values(state=DELETED, deleted_at=now, alias_key=None)  # the alias is free again
    )
    shutil.rmtree(data_dir.mailboxes / org.organization_id, ignore_errors=True)


def mail_domain_exists(conn: Connection, organization_id: str, domain: str) -> bool:
    return (
        conn.execute(
            select(mail_domains.c.domain).where(
                mail_domains.c.organization_id == organization_id, mail_domains.c.domain == domain.lower()
            )
        ).first()
        is not None
    )


def lock(conn: Connection, organization_id: str) -> None:
    """Serialize writes that check an organization-wide rule (the export limits, unique user
    names and addresses) by first writing the organization's row (a no-op update): that takes
    PostgreSQL's row lock and SQLite's write lock before the rule's counts are read, so two
    concurrent calls cannot both see room."""
    conn.execute(_LOCK, {"org_id": organization_id})


# Built once: Start runs it first in every transaction, while it holds the write lock.
_LOCK = (
    update(organizations)
    .where(organizations.c.organization_id == bindparam("org_id"))  # a column's name is SET's
    .values(state=organizations.c.state)
)
