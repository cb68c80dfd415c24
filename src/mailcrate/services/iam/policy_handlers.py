"""IAM API handlers of managed policies, attachments and permissions boundaries (thin)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import Connection

from mailcrate.services.base import Call, Handler
from mailcrate.services.iam import managed, roles, users


def _page(items: list[Any], key: str, marker: str | None) -> dict[str, Any]:
    return {key: items, "IsTruncated": marker is not None, "Marker": marker}


def _policy(call: Call, conn: Connection) -> managed.ManagedPolicy:
    return managed.find(conn, call.account_id, call.params["PolicyArn"])


def create_policy(call: Call) -> dict[str, Any]:
    with call.context.db.begin() as conn:
        return {"Policy": managed.create(conn, call.account_id, call.params).describe(conn)}


def get_policy(call: Call) -> dict[str, Any]:
    with call.context.db.read() as conn:
        return {"Policy": _policy(call, conn).describe(conn, full=True)}


def list_policies(call: Call) -> dict[str, Any]:
    with call.context.db.read() as conn:
        items, marker = managed.page(conn, call.account_id, call.params)
    return _page(items, "Policies", marker)


def delete_policy(call: Call) -> dict[str, Any]:
    with call.context.db.begin() as conn:
        managed.remove(conn, _policy(call, conn))
    return {}


def list_entities_for_policy(call: Call) -> dict[str, Any]:
    with call.context.db.read() as conn:
        return managed.entities(conn, _policy(call, conn), call.params)


def get_policy_version(call: Call) -> dict[str, Any]:
    with call.context.db.read() as conn:
        return {"PolicyVersion": managed.get_version(conn, _policy(call, conn), call.params["VersionId"])}


def list_policy_versions(call: Call) -> dict[str, Any]:
    with call.context.db.read() as conn:
        return _page(managed.list_versions(conn, _policy(call, conn)), "Versions", None)


def create_policy_version(call: Call) -> dict[str, Any]:
    p = call.params
    with call.context.db.begin() as conn:
        version = managed.create_version(
            conn, _policy(call, conn), p["PolicyDocument"], bool(p.get("SetAsDefault"))
        )
    return {"PolicyVersion": version}


def set_default_policy_version(call: Call) -> dict[str, Any]:
    with call.context.db.begin() as conn:
        managed.set_default(conn, _policy(call, conn), call.params["VersionId"])
    return {}


def delete_policy_version(call: Call) -> dict[str, Any]:
    with call.context.db.begin() as conn:
        managed.delete_version(conn, _policy(call, conn), call.params["VersionId"])
    return {}


# --- attachments and boundaries: one pair of handlers per entity kind ----------------------------
def _entity(call: Call, conn: Connection, kind: str) -> Any:
    if kind == "role":
        return roles.find(conn, call.account_id, call.params["RoleName"])
    return users.find(conn, call.account_id, call.params["UserName"])


def _entity_id(entity: Any) -> str:
    return entity.role_id if isinstance(entity, roles.Role) else entity.user_id


def _write(kind: str, change: Callable[[Call, Connection, str, Any], None]) -> Handler:
    """A handler that changes one named role or user (``kind``) in one transaction."""

    def handler(call: Call) -> dict[str, Any]:
        with call.context.db.begin() as conn:
            change(call, conn, kind, _entity(call, conn, kind))
        return {}

    return handler


def _attach(call: Call, conn: Connection, kind: str, entity: Any) -> None:
    managed.attach(conn, kind, _entity_id(entity), _policy(call, conn))


def _detach(call: Call, conn: Connection, kind: str, entity: Any) -> None:
    managed.detach(conn, kind, _entity_id(entity), _policy(call, conn))


def _put_boundary(call: Call, conn: Connection, kind: str, entity: Any) -> None:
    policy_id = managed.boundary_id(conn, call.account_id, call.params["PermissionsBoundary"])
    (roles if kind == "role" else users).set_boundary(conn, entity, policy_id)


def _delete_boundary(call: Call, conn: Connection, kind: str, entity: Any) -> None:
    (roles if kind == "role" else users).set_boundary(conn, entity, None)


def _list_attached(kind: str) -> Handler:
    def handler(call: Call) -> dict[str, Any]:
        with call.context.db.read() as conn:
            entity = _entity(call, conn, kind)
            items = managed.attached(conn, kind, _entity_id(entity), call.params.get("PathPrefix"))
        return _page(items, "AttachedPolicies", None)

    return handler


HANDLERS: dict[str, Handler] = {
    "CreatePolicy": create_policy,
    "GetPolicy": get_policy,
    "ListPolicies": list_policies,
    "DeletePolicy": delete_policy,
    "ListEntitiesForPolicy": list_entities_for_policy,
    "GetPolicyVersion": get_policy_version,
    "ListPolicyVersions": list_policy_versions,
    "CreatePolicyVersion": create_policy_version,
    "SetDefaultPolicyVersion": set_default_policy_version,
    "DeletePolicyVersion": delete_policy_version,
    "AttachRolePolicy": _write("role", _attach),
    "DetachRolePolicy": _write("role", _detach),
    "ListAttachedRolePolicies": _list_attached("role"),
    "AttachUserPolicy": _write("user", _attach),
    "DetachUserPolicy": _write("user", _detach),
    "ListAttachedUserPolicies": _list_attached("user"),
    "PutRolePermissionsBoundary": _write("role", _put_boundary),
    "DeleteRolePermissionsBoundary": _write("role", _delete_boundary),
    "PutUserPermissionsBoundary": _write("user", _put_boundary),
    "DeleteUserPermissionsBoundary": _write("user", _delete_boundary),
}
