"""WorkMail users and their mailboxes: state and rules, independent of the wire.

A user is created ``DISABLED``; registering it to WorkMail gives it an address in one of the
organization's mail domains, makes it ``ENABLED`` and provisions its mailbox; deregistering
disables it and removes the mailbox; only a disabled user can be deleted (``DELETED``).
Wherever the API takes an entity, the user id, user name or email address all work.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, bindparam, func, insert, or_, select, update

from mailcrate.datadir import DataDir
from mailcrate.services.pagination import InvalidToken, keyset_page
from mailcrate.services.workmail import mailboxes
from mailcrate.services.workmail.errors import (
    EmailAddressInUse,
    EntityAlreadyRegistered,
    EntityNotFound,
    EntityState,
    InvalidParameter,
    InvalidPassword,
    MailboxOnAnotherNode,
    MailDomainNotFound,
    NameAvailability,
)
from mailcrate.services.workmail.organizations import Organization, mail_domain_exists
from mailcrate.storage.db import as_utc, utcnow
from mailcrate.storage.tables import users

ENABLED, DISABLED, DELETED = "ENABLED", "DISABLED", "DELETED"
# Optional attributes UpdateUser may set and DescribeUser returns, kept as one JSON column.
ATTRIBUTES = (
    "Initials",
    "Telephone",
    "Street",
    "JobTitle",
    "City",
    "Company",
    "ZipCode",
    "Department",
    "Country",
    "Office",
    "IdentityProviderUserId",
)
_DATES = {
    "EnabledDate": "enabled_at",
    "DisabledDate": "disabled_at",
    "MailboxProvisionedDate": "mailbox_provisioned_at",
    "MailboxDeprovisionedDate": "mailbox_deprovisioned_at",
}


@dataclass(frozen=True)
class User:
    row: Any

    @property
    def user_id(self) -> str:
        return self.row.user_id

    @property
    def state(self) -> str:
        return self.row.state

    @property
    def email(self) -> str | None:
        return self.row.email

    def describe(self) -> dict[str, Any]:
        row = self.row
        out: dict[str, Any] = {
            "UserId": row.user_id,
            "Name": row.name,
            "Email": row.email,
            "DisplayName": row.display_name,
            "State": row.state,
            "UserRole": row.role,
            "FirstName": row.first_name,
            "LastName": row.last_name,
            "HiddenFromGlobalAddressList": bool(row.hidden_from_gal),
        }
        for member, column in _DATES.items():
            out[member] = as_utc(getattr(row, column))
        out.update(json.loads(row.attributes or "{}"))
        return out

    def summary(self) -> dict[str, Any]:
        described = self.describe()
        summary = {
            key: described.get(key)
            for key in (
                "Email",
                "Name",
                "DisplayName",
                "State",
                "UserRole",
                "EnabledDate",
                "DisabledDate",
                "IdentityProviderUserId",
            )
        }
        summary["Id"] = self.user_id
        return summary


def new_user_id() -> str:
    """User ids in the form WorkMail gives them (a Windows-style SID)."""
    parts = [str(secrets.randbelow(9 * 10**9) + 10**9) for _ in range(3)]
    return f"S-1-1-11-{'-'.join(parts)}-{secrets.randbelow(9000) + 1000}"


def _hash_password(password: str) -> str:
    salt = os.urandom(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=2**14, r=8, p=1)
    return f"scrypt${salt.hex()}${digest.hex()}"


# Built once (Start resolves its user inside the write transaction).
_RESOLVE = select(users).where(
    users.c.organization_id == bindparam("organization_id"),
    or_(
        users.c.user_id == bindparam("entity"),
        users.c.name_key == bindparam("key"),
        users.c.email_key == bindparam("key"),
    ),
)


def resolve(conn: Connection, organization_id: str, entity: str, *, include_deleted: bool = True) -> User:
    """Find a user by id, user name or email address (names and addresses case-insensitively)."""
    rows = conn.execute(
        _RESOLVE, {"organization_id": organization_id, "entity": entity, "key": entity.lower()}
    ).all()
    live = [row for row in rows if row.state != DELETED or row.user_id == entity]
    if not live or (not include_deleted and live[0].state == DELETED):
        raise EntityNotFound(entity)
    live.sort(key=lambda row: (row.user_id != entity, row.state == DELETED))
    return User(live[0])


def create(conn: Connection, org: Organization, params: dict[str, Any]) -> str:
    name = params["Name"]
    taken = conn.execute(
        select(func.count())
        .select_from(users)
        .where(
            users.c.organization_id == org.organization_id,
            users.c.name_key == name.lower(),
            users.c.state != DELETED,
        )
    ).scalar_one()
    if taken:
        raise NameAvailability(f"The user name {name} is already in use in this organization.")
    password = params.get("Password")
    if password is not None and (len(password) < 8 or password.lower() == name.lower()):
        raise InvalidPassword(
            "The password must be at least 8 characters long and differ from the user name."
        )
    user_id = new_user_id()
    attributes = {k: params[k] for k in ("IdentityProviderUserId",) if k in params}
    conn.execute(
        insert(users).values(
            user_id=user_id,
            organization_id=org.organization_id,
            name=name,
            name_key=name.lower(),
            display_name=params["DisplayName"],
            state=DISABLED,
            role=params.get("Role", "USER"),
            first_name=params.get("FirstName"),
            last_name=params.get("LastName"),
            hidden_from_gal=bool(params.get("HiddenFromGlobalAddressList", False)),
            attributes=json.dumps(attributes),
            password_sealed=_hash_password(password) if password else None,
            created_at=utcnow(),
        )
    )
    return user_id


def update_user(conn: Connection, user: User, params: dict[str, Any]) -> None:
    if user.state == DELETED:
        raise EntityState(f"User {user.user_id} is deleted.")
    values: dict[str, Any] = {}
    for member, column in (
        ("DisplayName", "display_name"),
        ("FirstName", "first_name"),
        ("LastName", "last_name"),
        ("Role", "role"),
    ):
        if member in params:
            values[column] = params[member]
    if "HiddenFromGlobalAddressList" in params:
        values["hidden_from_gal"] = params["HiddenFromGlobalAddressList"]
    attributes = json.loads(user.row.attributes or "{}")
    for member in ATTRIBUTES:
        if member in params:
            if params[member] == "":
                attributes.pop(member, None)
            else:
                attributes[member] = params[member]
    values["attributes"] = json.dumps(attributes)
    conn.execute(update(users).where(users.c.user_id == user.user_id).values(**values))


def register(conn: Connection, data_dir: DataDir, org: Organization, user: User, email: str) -> Path:
    if user.state == ENABLED:
        raise EntityAlreadyRegistered(f"User {user.user_id} is already registered to WorkMail.")
    if user.state == DELETED:
        raise EntityState(f"User {user.user_id} is deleted.")
    domain = email.rpartition("@")[2]
    if not mail_domain_exists(conn, org.organization_id, domain):
        raise MailDomainNotFound(
            f"The mail domain {domain} is not a domain of organization {org.organization_id}."
        )
    in_use = conn.execute(
        select(users.c.user_id).where(
            users.c.organization_id == org.organization_id,
            users.c.email_key == email.lower(),
            users.c.user_id != user.user_id,
        )
    ).first()
    if in_use is not None:
        raise EmailAddressInUse(f"The email address {email} is already in use.")
    now = utcnow()
    conn.execute(
        update(users)
        .where(users.c.user_id == user.user_id)
        .values(
            state=ENABLED,
            email=email,
            email_key=email.lower(),
            enabled_at=now,
            mailbox_provisioned_at=now,
            mailbox_deprovisioned_at=None,
        )
    )
    root = data_dir.mailbox_root(org.organization_id, user.user_id)
    mailboxes.create(root)
    return root


def deregister(conn: Connection, data_dir: DataDir, org: Organization, user: User) -> None:
    if user.state != ENABLED:
        raise EntityState(f"User {user.user_id} is not registered to WorkMail (state {user.state}).")
    now = utcnow()
    conn.execute(
        update(users)
        .where(users.c.user_id == user.user_id)
        .values(state=DISABLED, email=None, email_key=None, disabled_at=now, mailbox_deprovisioned_at=now)
    )
    mailboxes.delete(data_dir.mailbox_root(org.organization_id, user.user_id))


def delete(conn: Connection, user: User) -> None:
    if user.state != DISABLED:
        raise EntityState(
            f"User {user.user_id} must be deregistered (DISABLED) before deletion; it is {user.state}."
        )
    conn.execute(update(users).where(users.c.user_id == user.user_id).values(state=DELETED))


def page(
    conn: Connection, org: Organization, filters: dict[str, Any], max_results: int, next_token: str | None
) -> tuple[list[User], str | None]:
    query = select(users).where(users.c.organization_id == org.organization_id)
    if "UsernamePrefix" in filters:
        query = query.where(users.c.name_key.startswith(filters["UsernamePrefix"].lower(), autoescape=True))
    if "DisplayNamePrefix" in filters:
        query = query.where(users.c.display_name.startswith(filters["DisplayNamePrefix"], autoescape=True))
    if "PrimaryEmailPrefix" in filters:
        query = query.where(
            users.c.email_key.startswith(filters["PrimaryEmailPrefix"].lower(), autoescape=True)
        )
    if "State" in filters:
        query = query.where(users.c.state == filters["State"])
    try:
        rows, token = keyset_page(
            conn,
            query,
            created=users.c.created_at,
            ident=users.c.user_id,
            scope=f"users:{org.organization_id}",
            next_token=next_token,
            max_results=max_results,
        )
    except InvalidToken:
        raise InvalidParameter("The NextToken is invalid.") from None
    return [User(row) for row in rows], token


def mailbox_size_mb(data_dir: DataDir, org: Organization, user: User) -> float:
    return mailboxes.size_bytes(data_dir.mailbox_root(org.organization_id, user.user_id)) / (1024 * 1024)


def mailbox_for_address(data_dir: DataDir, address: str) -> Path | None:
    """The embedded mailbox of the registered user with this address (SMTP delivery), if any;
    :class:`MailboxOnAnotherNode` when another node's data directory holds it."""
    with data_dir.db.read() as conn:
        row = conn.execute(
            select(users.c.organization_id, users.c.user_id).where(
                users.c.email_key == address.lower(), users.c.state == ENABLED
            )
        ).first()
    if row is None:
        return None
    with data_dir.db.begin() as conn:
        claim_mailbox_home(conn, row.organization_id, row.user_id, data_dir.node_id)
    return data_dir.mailbox_root(row.organization_id, row.user_id)


def claim_mailbox_home(conn: Connection, organization_id: str, user_id: str, node_id: str) -> None:
    """Before mail is written into an embedded mailbox on the node ``node_id``: the first write
    makes this node the mailbox's home; a write on any other node is refused, so a mailbox's
    mail is never split between data directories (only its home node exports it)."""
    where = (users.c.organization_id == organization_id, users.c.user_id == user_id)
    conn.execute(update(users).where(*where, users.c.mailbox_node.is_(None)).values(mailbox_node=node_id))
    home = conn.execute(select(users.c.mailbox_node).where(*where)).scalar()
    if home is not None and home != node_id:
        raise MailboxOnAnotherNode(
            f"The mailbox of {user_id} is stored in the data directory of another node ({home}); "
            f"this node is {node_id}. Write its mail on that node, or give the nodes one shared "
            "data directory."
        )
