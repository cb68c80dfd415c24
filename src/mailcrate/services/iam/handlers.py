"""IAM API handlers: thin; each resolves the entity, calls the model module, shapes the output."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, select

from mailcrate.protocol.models import service_model
from mailcrate.protocol.query import QueryProtocol
from mailcrate.services.base import Call, Handler, ServiceSpec
from mailcrate.services.iam import documents, managed, policy_handlers, roles, users
from mailcrate.services.iam.errors import IamValidationError, InvalidInput, NoSuchEntity
from mailcrate.storage.db import as_utc
from mailcrate.storage.tables import access_keys, accounts


def _page(items: list[dict[str, Any]], key: str, marker: str | None) -> dict[str, Any]:
    return {key: items, "IsTruncated": marker is not None, "Marker": marker}


# --- roles ---------------------------------------------------------------------------------------
def _with_boundary(conn: Connection, entity: roles.Role | users.User) -> dict[str, Any]:
    """The entity's shape with its ``PermissionsBoundary`` (GetRole/GetUser and the creates)."""
    return entity.describe() | {
        "PermissionsBoundary": managed.describe_boundary(conn, entity.permissions_boundary)
    }


def create_role(call: Call) -> dict[str, Any]:
    with call.context.db.begin() as conn:
        return {"Role": _with_boundary(conn, roles.create(conn, call.account_id, call.params))}


def get_role(call: Call) -> dict[str, Any]:
    with call.context.db.read() as conn:
        return {"Role": _with_boundary(conn, roles.find(conn, call.account_id, call.params["RoleName"]))}


def list_roles(call: Call) -> dict[str, Any]:
    p = call.params
    with call.context.db.read() as conn:
        items, marker = roles.page(
            conn, call.account_id, p.get("PathPrefix"), p.get("MaxItems"), p.get("Marker")
        )
    return _page([role.describe() for role in items], "Roles", marker)


def delete_role(call: Call) -> dict[str, Any]:
    with call.context.db.begin() as conn:
        roles.remove(conn, roles.find(conn, call.account_id, call.params["RoleName"]))
    return {}


def update_assume_role_policy(call: Call) -> dict[str, Any]:
    with call.context.db.begin() as conn:
        role = roles.find(conn, call.account_id, call.params["RoleName"])
        roles.update_trust(conn, role, call.params["PolicyDocument"])
    return {}


def put_role_policy(call: Call) -> dict[str, Any]:
    p = call.params
    with call.context.db.begin() as conn:
        role = roles.find(conn, call.account_id, p["RoleName"])
        roles.POLICIES.put(conn, role.role_id, role.name, p["PolicyName"], p["PolicyDocument"])
    return {}


def get_role_policy(call: Call) -> dict[str, Any]:
    p = call.params
    with call.context.db.read() as conn:
        role = roles.find(conn, call.account_id, p["RoleName"])
        text = roles.POLICIES.get(conn, role.role_id, p["PolicyName"])
    return {"RoleName": role.name, "PolicyName": p["PolicyName"], "PolicyDocument": documents.encoded(text)}


def list_role_policies(call: Call) -> dict[str, Any]:
    p = call.params
    with call.context.db.read() as conn:
        role = roles.find(conn, call.account_id, p["RoleName"])
        names, marker = roles.POLICIES.names(conn, role.role_id, p.get("MaxItems"), p.get("Marker"))
    return _page(names, "PolicyNames", marker)  # type: ignore[arg-type]


def delete_role_policy(call: Call) -> dict[str, Any]:
    p = call.params
    with call.context.db.begin() as conn:
        role = roles.find(conn, call.account_id, p["RoleName"])
        roles.POLICIES.delete(conn, role.role_id, p["PolicyName"])
    return {}


# --- users ---------------------------------------------------------------------------------------
def _target_user(call: Call, conn: Connection) -> users.User | None:
    """The named user, else the calling user; None when the caller is the account root."""
    name = call.params.get("UserName")
    if name is not None:
        return users.find(conn, call.account_id, name)
    principal = call.principal
    if principal.kind == "user":
        user = users.find_by_id(conn, principal.principal_id)
        if user is None:
            raise NoSuchEntity("The user with the calling credentials cannot be found.")
        return user
    if principal.kind == "root":
        return None
    raise IamValidationError("Must specify userName when calling with non-User credentials")


def create_user(call: Call) -> dict[str, Any]:
    with call.context.db.begin() as conn:
        return {"User": _with_boundary(conn, users.create(conn, call.account_id, call.params))}


def get_user(call: Call) -> dict[str, Any]:
    with call.context.db.read() as conn:
        user = _target_user(call, conn)
        if user is not None:
            return {"User": _with_boundary(conn, user)}
        created = conn.execute(
            select(accounts.c.created_at).where(accounts.c.account_id == call.account_id)
        ).scalar()
    return {"User": {"UserId": call.account_id, "Arn": call.principal.arn, "CreateDate": as_utc(created)}}


def list_users(call: Call) -> dict[str, Any]:
    p = call.params
    with call.context.db.read() as conn:
        items, marker = users.page(
            conn, call.account_id, p.get("PathPrefix"), p.get("MaxItems"), p.get("Marker")
        )
    return _page([user.describe() for user in items], "Users", marker)


def delete_user(call: Call) -> dict[str, Any]:
    with call.context.db.begin() as conn:
        users.remove(conn, users.find(conn, call.account_id, call.params["UserName"]))
    return {}


def _root_keys_unsupported() -> InvalidInput:
    return InvalidInput(
        "The account's root access key is managed with `mailcrate init`; pass UserName to manage "
        "an IAM user's access keys."
    )


def create_access_key(call: Call) -> dict[str, Any]:
    with call.context.db.begin() as conn:
        user = _target_user(call, conn)
        if user is None:
            raise _root_keys_unsupported()
        return {"AccessKey": users.create_access_key(conn, call.context.data_dir, user)}


def list_access_keys(call: Call) -> dict[str, Any]:
    with call.context.db.read() as conn:
        user = _target_user(call, conn)
        if user is not None:
            return _page(users.list_access_keys(conn, user), "AccessKeyMetadata", None)
        rows = conn.execute(
            select(access_keys).where(
                access_keys.c.account_id == call.account_id, access_keys.c.principal_kind == "root"
            )
        ).all()
    items = [
        {"AccessKeyId": row.access_key_id, "Status": row.status, "CreateDate": as_utc(row.created_at)}
        for row in rows
    ]
    return _page(items, "AccessKeyMetadata", None)


def delete_access_key(call: Call) -> dict[str, Any]:
    key_id = call.params["AccessKeyId"]
    with call.context.db.begin() as conn:
        user = _target_user(call, conn)
        if user is None:
            raise _root_keys_unsupported()
        users.delete_access_key(conn, user, key_id)
    call.context.hooks.access_key_removed(key_id)
    return {}


def put_user_policy(call: Call) -> dict[str, Any]:
    p = call.params
    with call.context.db.begin() as conn:
        user = users.find(conn, call.account_id, p["UserName"])
        users.POLICIES.put(conn, user.user_id, user.name, p["PolicyName"], p["PolicyDocument"])
    return {}


def get_user_policy(call: Call) -> dict[str, Any]:
    p = call.params
    with call.context.db.read() as conn:
        user = users.find(conn, call.account_id, p["UserName"])
        text = users.POLICIES.get(conn, user.user_id, p["PolicyName"])
    return {"UserName": user.name, "PolicyName": p["PolicyName"], "PolicyDocument": documents.encoded(text)}


def list_user_policies(call: Call) -> dict[str, Any]:
    p = call.params
    with call.context.db.read() as conn:
        user = users.find(conn, call.account_id, p["UserName"])
        names, marker = users.POLICIES.names(conn, user.user_id, p.get("MaxItems"), p.get("Marker"))
    return _page(names, "PolicyNames", marker)  # type: ignore[arg-type]


def delete_user_policy(call: Call) -> dict[str, Any]:
    p = call.params
    with call.context.db.begin() as conn:
        user = users.find(conn, call.account_id, p["UserName"])
        users.POLICIES.delete(conn, user.user_id, p["PolicyName"])
    return {}


HANDLERS: dict[str, Handler] = {
    "CreateRole": create_role,
    "GetRole": get_role,
    "ListRoles": list_roles,
    "DeleteRole": delete_role,
    "UpdateAssumeRolePolicy": update_assume_role_policy,
    "PutRolePolicy": put_role_policy,
    "GetRolePolicy": get_role_policy,
    "ListRolePolicies": list_role_policies,
    "DeleteRolePolicy": delete_role_policy,
    "CreateUser": create_user,
    "GetUser": get_user,
    "ListUsers": list_users,
    "DeleteUser": delete_user,
    "CreateAccessKey": create_access_key,
    "ListAccessKeys": list_access_keys,
    "DeleteAccessKey": delete_access_key,
    "PutUserPolicy": put_user_policy,
    "GetUserPolicy": get_user_policy,
    "ListUserPolicies": list_user_policies,
    "DeleteUserPolicy": delete_user_policy,
    **policy_handlers.HANDLERS,
}

_USER_KEY_OPERATIONS = frozenset({"CreateAccessKey", "ListAccessKeys", "DeleteAccessKey", "GetUser"})


def resource_for(call: Call) -> str:
    """The ARN IAM authorizes against: the role or user the operation names (with its path)."""
    p = call.params
    account = call.account_id
    if "RoleName" in p:
        with call.context.db.read() as conn:
            path = roles.path_of(conn, account, p["RoleName"])
        return roles.role_arn(account, path or p.get("Path", "/"), p["RoleName"])
    if "UserName" in p:
        with call.context.db.read() as conn:
            path = users.path_of(conn, account, p["UserName"])
        return users.user_arn(account, path or p.get("Path", "/"), p["UserName"])
    if "PolicyArn" in p:
        return str(p["PolicyArn"])
    if "PolicyName" in p and "PolicyDocument" in p and call.operation == "CreatePolicy":
        return managed.policy_arn(account, p.get("Path", "/"), p["PolicyName"])
    if call.operation in _USER_KEY_OPERATIONS and call.principal.kind == "user":
        return call.principal.arn
    return "*"


def spec() -> ServiceSpec:
    return ServiceSpec(
        name="iam",
        model=service_model("iam"),
        protocol=QueryProtocol("ValidationError"),
        handlers=HANDLERS,
        validation_error_code="ValidationError",
        anchored_patterns=True,
        global_region="us-east-1",
        resource_for=resource_for,
    )
