"""Customer managed policies: versions, attachments and permissions boundaries, off the wire.

A managed policy belongs to one account, is named uniquely in it regardless of case and has the
ARN ``arn:aws:iam::ACCOUNT:policy<path><name>``. It keeps at most five versions (``v1``, ``v2``,
... never reused); the default one is what attached entities get. It may be attached to at most
ten roles' or users' lists each (IAM's default quota), and used as a permissions boundary; while
attached or used so it cannot be deleted. AWS managed policies (``arn:aws:iam::aws:policy/...``)
do not exist here: naming one is NoSuchEntity, as for any unknown policy.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, and_, delete, func, insert, or_, select, update
from sqlalchemy.exc import IntegrityError

from mailcrate.services.iam import common, documents
from mailcrate.services.iam.errors import (
    DeleteConflict,
    EntityAlreadyExists,
    InvalidInput,
    LimitExceeded,
    NoSuchEntity,
)
from mailcrate.storage.db import as_utc, utcnow
from mailcrate.storage.tables_iam import (
    iam_policies,
    iam_policy_attachments,
    iam_policy_versions,
    iam_roles,
    iam_users,
)

MAX_VERSIONS = 5
MANAGED_POLICY_QUOTA = 6144
ATTACHED_PER_ENTITY = 10


def policy_arn(account_id: str, path: str, name: str) -> str:
    return f"arn:aws:iam::{account_id}:policy{path}{name}"


@dataclass(frozen=True)
class ManagedPolicy:
    policy_id: str
    account_id: str
    name: str
    path: str
    description: str | None
    default_version: str
    tags: str | None
    created_at: datetime
    updated_at: datetime

    @property
    def arn(self) -> str:
        return policy_arn(self.account_id, self.path, self.name)

    @classmethod
    def from_row(cls, row: Any) -> ManagedPolicy:
        return cls(
            policy_id=row.policy_id,
            account_id=row.account_id,
            name=row.name,
            path=row.path,
            description=row.description,
            default_version=row.default_version,
            tags=row.tags,
            created_at=as_utc(row.created_at),  # type: ignore[arg-type]
            updated_at=as_utc(row.updated_at),  # type: ignore[arg-type]
        )

    def describe(self, conn: Connection, *, full: bool = False) -> dict[str, Any]:
        """The ``Policy`` shape (CreatePolicy and ListPolicies leave the description out)."""
        shape = {
            "PolicyName": self.name,
            "PolicyId": self.policy_id,
            "Arn": self.arn,
            "Path": self.path,
            "DefaultVersionId": self.default_version,
            "AttachmentCount": attachment_count(conn, self.policy_id),
            "PermissionsBoundaryUsageCount": boundary_usage(conn, self.policy_id),
            "IsAttachable": True,
            "CreateDate": self.created_at,
            "UpdateDate": self.updated_at,
            "Tags": common.tags_list(self.tags),
        }
        if full and self.description:
            shape["Description"] = self.description
        return shape


def check_document(text: str) -> None:
    """A managed policy document: an identity policy within IAM's 6,144-character quota."""
    documents.identity_policy(text)
    if documents.size(text) > MANAGED_POLICY_QUOTA:
        raise LimitExceeded(f"Cannot exceed quota for PolicySize: {MANAGED_POLICY_QUOTA}")


def create(conn: Connection, account_id: str, params: dict[str, Any]) -> ManagedPolicy:
    name, text = params["PolicyName"], params["PolicyDocument"]
    check_document(text)
    now = utcnow()
    values = {
        "policy_id": common.new_id("ANPA"),
        "account_id": account_id,
        "name": name,
        "name_key": name.lower(),
        "path": params.get("Path", "/"),
        "description": params.get("Description"),
        "default_version": "v1",
        "next_version": 2,
        "tags": common.tags_json(params.get("Tags")),
        "created_at": now,
        "updated_at": now,
    }
    exists = EntityAlreadyExists(f"A policy called {name} already exists. Duplicate names are not allowed.")
    if _row_by_name(conn, account_id, name) is not None:
        raise exists
    try:  # the unique index settles a race between two creators
        conn.execute(insert(iam_policies).values(values))
    except IntegrityError:
        raise exists from None
    conn.execute(
        insert(iam_policy_versions).values(
            policy_id=values["policy_id"], version_id="v1", document=text, created_at=now
        )
    )
    return ManagedPolicy.from_row(_row_by_id(conn, values["policy_id"]))


def _row_by_name(conn: Connection, account_id: str, name: str) -> Any:
    return conn.execute(
        select(iam_policies).where(
            iam_policies.c.account_id == account_id, iam_policies.c.name_key == name.lower()
        )
    ).first()


def _row_by_id(conn: Connection, policy_id: str) -> Any:
    return conn.execute(select(iam_policies).where(iam_policies.c.policy_id == policy_id)).first()


def _missing(arn: str) -> NoSuchEntity:
    return NoSuchEntity(f"Policy {arn} does not exist or is not attachable.")


def find(conn: Connection, account_id: str, arn: str) -> ManagedPolicy:
    """The caller's account's policy an ARN names (path included), else NoSuchEntity."""
    parts = arn.split(":", 5)
    if len(parts) != 6 or parts[:3] != ["arn", "aws", "iam"] or not parts[5].startswith("policy/"):
        raise InvalidInput(f"ARN {arn} is not valid.")
    if parts[4] != account_id:  # another account's (or AWS's) policy: not visible here
        raise _missing(arn)
    row = _row_by_name(conn, account_id, parts[5].rsplit("/", 1)[-1])
    if row is None:
        raise _missing(arn)
    policy = ManagedPolicy.from_row(row)
    if policy.arn != arn:
        raise _missing(arn)
    return policy


def find_by_id(conn: Connection, policy_id: str) -> ManagedPolicy | None:
    row = _row_by_id(conn, policy_id)
    return ManagedPolicy.from_row(row) if row is not None else None


def attachment_count(conn: Connection, policy_id: str) -> int:
    return conn.execute(
        select(func.count())
        .select_from(iam_policy_attachments)
        .where(iam_policy_attachments.c.policy_id == policy_id)
    ).scalar_one()


def boundary_usage(conn: Connection, policy_id: str) -> int:
    return sum(
        conn.execute(
            select(func.count()).select_from(table).where(table.c.permissions_boundary == policy_id)
        ).scalar_one()
        for table in (iam_roles, iam_users)
    )


def page(
    conn: Connection, account_id: str, params: dict[str, Any]
) -> tuple[list[dict[str, Any]], str | None]:
    """ListPolicies: this account's policies (``Scope`` AWS lists none: there are none here)."""
    prefix, scope = params.get("PathPrefix"), params.get("Scope", "All")
    token_scope = f"iam-policies:{account_id}:{prefix or '/'}:{scope}:{params.get('OnlyAttached')}"
    after = common.marker_key(token_scope, params.get("Marker"))
    limit = params.get("MaxItems") or common.DEFAULT_MAX_ITEMS
    if scope == "AWS":
        return [], None
    query = select(iam_policies).where(iam_policies.c.account_id == account_id)
    if prefix:
        query = query.where(iam_policies.c.path.startswith(prefix, autoescape=True))
    if params.get("OnlyAttached"):
        attached = select(iam_policy_attachments.c.policy_id).distinct()
        query = query.where(iam_policies.c.policy_id.in_(attached))
    if after is not None:
        query = query.where(iam_policies.c.name_key > after)
    rows = conn.execute(query.order_by(iam_policies.c.name_key).limit(limit + 1)).all()
    rows, token = common.page_result(rows, limit, token_scope, "name_key")
    return [ManagedPolicy.from_row(row).describe(conn) for row in rows], token


def remove(conn: Connection, policy: ManagedPolicy) -> None:
    if attachment_count(conn, policy.policy_id):
        raise DeleteConflict("Cannot delete a policy attached to entities.")
    if boundary_usage(conn, policy.policy_id):
        raise DeleteConflict("Cannot delete a policy used as a permissions boundary.")
    versions = _versions_query(policy.policy_id)
    if len(conn.execute(versions).all()) > 1:
        raise DeleteConflict(
            "This policy has more than one version. Before you delete a policy, you must delete the "
            "policy's versions. The default version is deleted with the policy."
        )
    conn.execute(delete(iam_policy_versions).where(iam_policy_versions.c.policy_id == policy.policy_id))
    conn.execute(delete(iam_policies).where(iam_policies.c.policy_id == policy.policy_id))


# --- versions ------------------------------------------------------------------------------------
def _versions_query(policy_id: str) -> Any:
    return select(iam_policy_versions).where(iam_policy_versions.c.policy_id == policy_id)


def _version_row(conn: Connection, policy: ManagedPolicy, version_id: str) -> Any:
    row = conn.execute(
        _versions_query(policy.policy_id).where(iam_policy_versions.c.version_id == version_id)
    ).first()
    if row is None:
        raise NoSuchEntity(f"Policy {policy.arn} version {version_id} does not exist or is not attachable.")
    return row


def _describe_version(row: Any, default: str, *, document: bool) -> dict[str, Any]:
    shape: dict[str, Any] = {
        "VersionId": row.version_id,
        "IsDefaultVersion": row.version_id == default,
        "CreateDate": as_utc(row.created_at),
    }
    if document:
        shape["Document"] = documents.encoded(row.document)
    return shape


def get_version(conn: Connection, policy: ManagedPolicy, version_id: str) -> dict[str, Any]:
    return _describe_version(_version_row(conn, policy, version_id), policy.default_version, document=True)


def list_versions(conn: Connection, policy: ManagedPolicy) -> list[dict[str, Any]]:
    rows = conn.execute(_versions_query(policy.policy_id)).all()
    rows.sort(key=lambda row: -int(row.version_id[1:]))  # newest first, as IAM lists them
    return [_describe_version(row, policy.default_version, document=True) for row in rows]


def create_version(conn: Connection, policy: ManagedPolicy, text: str, set_default: bool) -> dict[str, Any]:
    check_document(text)
    if len(conn.execute(_versions_query(policy.policy_id)).all()) >= MAX_VERSIONS:
        raise LimitExceeded(
            f"A managed policy can have up to {MAX_VERSIONS} versions. Before you create a new version, "
            "you must delete an existing version."
        )
    # Claim the next number with one UPDATE, so two writers never make the same version.
    number = conn.execute(
        select(iam_policies.c.next_version).where(iam_policies.c.policy_id == policy.policy_id)
    ).scalar_one()
    now = utcnow()
    claimed = conn.execute(
        update(iam_policies)
        .where(and_(iam_policies.c.policy_id == policy.policy_id, iam_policies.c.next_version == number))
        .values(next_version=number + 1, updated_at=now)
    ).rowcount
    if not claimed:
        raise LimitExceeded("Another version of this policy is being created; try again.")
    version_id = f"v{number}"
    conn.execute(
        insert(iam_policy_versions).values(
            policy_id=policy.policy_id, version_id=version_id, document=text, created_at=now
        )
    )
    if set_default:
        _set_default(conn, policy, version_id)
    row = _version_row(conn, policy, version_id)
    return _describe_version(row, version_id if set_default else policy.default_version, document=False)


def _set_default(conn: Connection, policy: ManagedPolicy, version_id: str) -> None:
    conn.execute(
        update(iam_policies)
        .where(iam_policies.c.policy_id == policy.policy_id)
        .values(default_version=version_id, updated_at=utcnow())
    )


def set_default(conn: Connection, policy: ManagedPolicy, version_id: str) -> None:
    _version_row(conn, policy, version_id)
    _set_default(conn, policy, version_id)


def delete_version(conn: Connection, policy: ManagedPolicy, version_id: str) -> None:
    _version_row(conn, policy, version_id)
    if version_id == policy.default_version:
        raise DeleteConflict("Cannot delete the default version of a policy.")
    conn.execute(
        delete(iam_policy_versions).where(
            iam_policy_versions.c.policy_id == policy.policy_id,
            iam_policy_versions.c.version_id == version_id,
        )
    )


def default_document(conn: Connection, policy_id: str) -> str | None:
    return conn.execute(
        select(iam_policy_versions.c.document)
        .join(iam_policies, iam_policies.c.policy_id == iam_policy_versions.c.policy_id)
        .where(
            iam_policies.c.policy_id == policy_id,
            iam_policy_versions.c.version_id == iam_policies.c.default_version,
        )
    ).scalar()


# --- attachments ---------------------------------------------------------------------------------
def _attachment(kind: str, entity_id: str) -> list[Any]:
    return [iam_policy_attachments.c.entity_kind == kind, iam_policy_attachments.c.entity_id == entity_id]


def attach(conn: Connection, kind: str, entity_id: str, policy: ManagedPolicy) -> None:
    """Attach (again: no change) ``policy`` to a role's or user's list."""
    where = _attachment(kind, entity_id)
    if conn.execute(
        select(iam_policy_attachments.c.policy_id).where(
            *where, iam_policy_attachments.c.policy_id == policy.policy_id
        )
    ).first():
        return
    count = conn.execute(select(func.count()).select_from(iam_policy_attachments).where(*where)).scalar_one()
    if count >= ATTACHED_PER_ENTITY:
        quota = "PoliciesPerRole" if kind == "role" else "PoliciesPerUser"
        raise LimitExceeded(f"Cannot exceed quota for {quota}: {ATTACHED_PER_ENTITY}")
    try:
        conn.execute(
            insert(iam_policy_attachments).values(
                entity_kind=kind, entity_id=entity_id, policy_id=policy.policy_id, attached_at=utcnow()
            )
        )
    except IntegrityError:  # attached by a concurrent call: the same end state
        return


def detach(conn: Connection, kind: str, entity_id: str, policy: ManagedPolicy) -> None:
    deleted = conn.execute(
        delete(iam_policy_attachments).where(
            *_attachment(kind, entity_id), iam_policy_attachments.c.policy_id == policy.policy_id
        )
    ).rowcount
    if not deleted:
        raise NoSuchEntity(f"Policy {policy.arn} was not found.")


def attached(conn: Connection, kind: str, entity_id: str, path_prefix: str | None) -> list[dict[str, str]]:
    """ListAttached{Role,User}Policies: name and ARN of each, in name order."""
    query = (
        select(iam_policies)
        .join(iam_policy_attachments, iam_policy_attachments.c.policy_id == iam_policies.c.policy_id)
        .where(*_attachment(kind, entity_id))
        .order_by(iam_policies.c.name_key)
    )
    if path_prefix:
        query = query.where(iam_policies.c.path.startswith(path_prefix, autoescape=True))
    policies = [ManagedPolicy.from_row(row) for row in conn.execute(query).all()]
    return [{"PolicyName": p.name, "PolicyArn": p.arn} for p in policies]


def has_attachments(conn: Connection, kind: str, entity_id: str) -> bool:
    return (
        conn.execute(select(iam_policy_attachments.c.policy_id).where(*_attachment(kind, entity_id))).first()
        is not None
    )


def attached_documents(conn: Connection, kind: str, entity_id: str) -> list[str]:
    """The default versions of every policy attached to the entity: what evaluation reads."""
    query = (
        select(iam_policy_versions.c.document)
        .join(iam_policies, iam_policies.c.policy_id == iam_policy_versions.c.policy_id)
        .join(iam_policy_attachments, iam_policy_attachments.c.policy_id == iam_policies.c.policy_id)
        .where(
            *_attachment(kind, entity_id),
            iam_policy_versions.c.version_id == iam_policies.c.default_version,
        )
    )
    return list(conn.execute(query).scalars())


# --- permissions boundaries ----------------------------------------------------------------------
def boundary_id(conn: Connection, account_id: str, arn: str | None) -> str | None:
    """The policy id a PermissionsBoundary ARN names (validated), or None for no boundary."""
    if arn is None:
        return None
    try:
        return find(conn, account_id, arn).policy_id
    except NoSuchEntity:
        raise NoSuchEntity(f"Scope ARN: {arn} does not exist or is not attachable.") from None


def describe_boundary(conn: Connection, policy_id: str | None) -> dict[str, str] | None:
    """The ``PermissionsBoundary`` member of GetRole/GetUser, or None."""
    if policy_id is None:
        return None
    policy = find_by_id(conn, policy_id)
    if policy is None:
        return None
    return {"PermissionsBoundaryType": "Policy", "PermissionsBoundaryArn": policy.arn}


def entities(conn: Connection, policy: ManagedPolicy, params: dict[str, Any]) -> dict[str, Any]:
    """ListEntitiesForPolicy: the roles and users the policy is attached to (``PermissionsPolicy``)
    and those it bounds (``PermissionsBoundary``); both without a filter. There are no groups."""
    usage, wanted = params.get("PolicyUsageFilter"), params.get("EntityFilter")
    prefix = params.get("PathPrefix")
    found: dict[str, list[dict[str, str]]] = {"PolicyRoles": [], "PolicyUsers": [], "PolicyGroups": []}
    for kind, table, id_column, member in (
        ("role", iam_roles, "role_id", "PolicyRoles"),
        ("user", iam_users, "user_id", "PolicyUsers"),
    ):
        if wanted not in (None, kind.capitalize()):
            continue
        ids = table.c[id_column]
        clauses = []
        if usage in (None, "PermissionsPolicy"):
            attached = select(iam_policy_attachments.c.entity_id).where(
                iam_policy_attachments.c.entity_kind == kind,
                iam_policy_attachments.c.policy_id == policy.policy_id,
            )
            clauses.append(ids.in_(attached))
        if usage in (None, "PermissionsBoundary"):
            clauses.append(table.c.permissions_boundary == policy.policy_id)
        query = select(table.c.name, ids).where(or_(*clauses)).order_by(table.c.name_key)
        if prefix:
            query = query.where(table.c.path.startswith(prefix, autoescape=True))
        name = "RoleName" if kind == "role" else "UserName"
        entity_id = "RoleId" if kind == "role" else "UserId"
        found[member] = [{name: row[0], entity_id: row[1]} for row in conn.execute(query).all()]
    return {**found, "IsTruncated": False}
