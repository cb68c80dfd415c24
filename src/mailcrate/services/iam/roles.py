"""IAM roles: state and rules, independent of the wire.

A role belongs to one account; its name is unique in the account regardless of case and its ARN
is ``arn:aws:iam::ACCOUNT:role<path><name>``. Its trust policy says who may assume it; its inline
policies say what its sessions may do.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from mailcrate.services.iam import common, documents, managed
from mailcrate.services.iam.errors import DeleteConflict, EntityAlreadyExists, LimitExceeded, NoSuchEntity
from mailcrate.storage.db import as_utc, utcnow
from mailcrate.storage.tables_iam import iam_role_policies, iam_roles

DEFAULT_MAX_SESSION = 3600
POLICIES = common.InlinePolicies(iam_role_policies, "role_id", "role", documents.ROLE_POLICIES_QUOTA)


def role_arn(account_id: str, path: str, name: str) -> str:
    return f"arn:aws:iam::{account_id}:role{path}{name}"


@dataclass(frozen=True)
class Role:
    role_id: str
    account_id: str
    name: str
    path: str
    trust_policy: str
    description: str | None
    max_session_duration: int
    tags: str | None
    created_at: datetime
    permissions_boundary: str | None = None  # a managed policy's id

    @property
    def arn(self) -> str:
        return role_arn(self.account_id, self.path, self.name)

    @classmethod
    def from_row(cls, row: Any) -> Role:
        return cls(
            role_id=row.role_id,
            account_id=row.account_id,
            name=row.name,
            path=row.path,
            trust_policy=row.trust_policy,
            description=row.description,
            max_session_duration=row.max_session_duration,
            tags=row.tags,
            created_at=as_utc(row.created_at),  # type: ignore[arg-type]
            permissions_boundary=row.permissions_boundary,
        )

    def describe(self) -> dict[str, Any]:
        """The ``Role`` shape of IAM's API."""
        return {
            "Path": self.path,
            "RoleName": self.name,
            "RoleId": self.role_id,
            "Arn": self.arn,
            "CreateDate": self.created_at,
            "AssumeRolePolicyDocument": documents.encoded(self.trust_policy),
            "Description": self.description,
            "MaxSessionDuration": self.max_session_duration,
            "Tags": common.tags_list(self.tags),
            "RoleLastUsed": {},
        }


def _check_trust(text: str) -> None:
    documents.trust_policy(text)
    if documents.size(text) > documents.TRUST_POLICY_QUOTA:
        raise LimitExceeded(f"Cannot exceed quota for ACLSizePerRole: {documents.TRUST_POLICY_QUOTA}")


def create(conn: Connection, account_id: str, params: dict[str, Any]) -> Role:
    name = params["RoleName"]
    text = params["AssumeRolePolicyDocument"]
    _check_trust(text)
    tags = common.tags_json(params.get("Tags"))
    values = {
        "role_id": common.new_id("AROA"),
        "account_id": account_id,
        "name": name,
        "name_key": name.lower(),
        "path": params.get("Path", "/"),
        "trust_policy": text,
        "description": params.get("Description"),
        "max_session_duration": params.get("MaxSessionDuration", DEFAULT_MAX_SESSION),
        "tags": tags,
        "created_at": utcnow(),
        "permissions_boundary": managed.boundary_id(conn, account_id, params.get("PermissionsBoundary")),
    }
    if _row(conn, account_id, name) is not None:
        raise EntityAlreadyExists(f"Role with name {name} already exists.")
    try:  # the unique index settles a race between two creators
        conn.execute(insert(iam_roles).values(values))
    except IntegrityError:
        raise EntityAlreadyExists(f"Role with name {name} already exists.") from None
    return Role(**{k: v for k, v in values.items() if k != "name_key"})


def _row(conn: Connection, account_id: str, name: str) -> Any:
    return conn.execute(
        select(iam_roles).where(iam_roles.c.account_id == account_id, iam_roles.c.name_key == name.lower())
    ).first()


def find(conn: Connection, account_id: str, name: str) -> Role:
    row = _row(conn, account_id, name)
    if row is None:
        raise NoSuchEntity(f"The role with name {name} cannot be found.")
    return Role.from_row(row)


def find_by_id(conn: Connection, role_id: str) -> Role | None:
    row = conn.execute(select(iam_roles).where(iam_roles.c.role_id == role_id)).first()
    return Role.from_row(row) if row is not None else None


def find_by_arn(conn: Connection, arn: str) -> Role | None:
    """The role an ARN names (its path must match too), or None."""
    parts = arn.split(":", 5)
    if len(parts) != 6 or parts[:3] != ["arn", "aws", "iam"] or not parts[5].startswith("role/"):
        return None
    name = parts[5].rsplit("/", 1)[-1]
    row = _row(conn, parts[4], name)
    if row is None:
        return None
    role = Role.from_row(row)
    return role if role.arn == arn else None


def path_of(conn: Connection, account_id: str, name: str) -> str | None:
    return conn.execute(
        select(iam_roles.c.path).where(
            iam_roles.c.account_id == account_id, iam_roles.c.name_key == name.lower()
        )
    ).scalar()


def page(
    conn: Connection, account_id: str, path_prefix: str | None, max_items: int | None, marker: str | None
) -> tuple[list[Role], str | None]:
    scope = f"iam-roles:{account_id}:{path_prefix or '/'}"
    after = common.marker_key(scope, marker)
    limit = max_items or common.DEFAULT_MAX_ITEMS
    query = select(iam_roles).where(iam_roles.c.account_id == account_id)
    if path_prefix:
        query = query.where(iam_roles.c.path.startswith(path_prefix, autoescape=True))
    if after is not None:
        query = query.where(iam_roles.c.name_key > after)
    rows = conn.execute(query.order_by(iam_roles.c.name_key).limit(limit + 1)).all()
    rows, token = common.page_result(rows, limit, scope, "name_key")
    return [Role.from_row(row) for row in rows], token


def update_trust(conn: Connection, role: Role, text: str) -> None:
    _check_trust(text)
    conn.execute(update(iam_roles).where(iam_roles.c.role_id == role.role_id).values(trust_policy=text))


def remove(conn: Connection, role: Role) -> None:
    if POLICIES.count(conn, role.role_id):
        raise DeleteConflict("Cannot delete entity, must delete policies first.")
    if managed.has_attachments(conn, "role", role.role_id):
        raise DeleteConflict("Cannot delete entity, must detach all policies first.")
    conn.execute(delete(iam_roles).where(iam_roles.c.role_id == role.role_id))


def set_boundary(conn: Connection, role: Role, policy_id: str | None) -> None:
    """Put (a policy id) or delete (None) the role's permissions boundary."""
    conn.execute(
        update(iam_roles).where(iam_roles.c.role_id == role.role_id).values(permissions_boundary=policy_id)
    )
