"""WorkMail API handlers: thin, each validates what the model cannot and calls the model modules."""

from __future__ import annotations

from typing import Any

from mailcrate.protocol.jsonproto import JsonProtocol
from mailcrate.protocol.models import service_model
from mailcrate.services.base import Call, Handler, ServiceSpec
from mailcrate.services.workmail import organizations, users
from mailcrate.services.workmail.errors import EntityNotFound

DEFAULT_PAGE = 100
MAILBOX_QUOTA_MB = 51200


def _org(call: Call, conn: Any, *, active: bool = True) -> organizations.Organization:
    find = organizations.find_active if active else organizations.find
    return find(conn, call.account_id, call.region, call.params["OrganizationId"])


def _org_locked(call: Call, conn: Any) -> organizations.Organization:
    """The active organization, its row locked for the rest of the transaction: user names and
    email addresses are checked for uniqueness before they are written, and without the lock
    concurrent calls all passed the check (12 concurrent CreateUser with one name: 4 created)."""
    org = _org(call, conn)
    organizations.lock(conn, org.organization_id)
    return org


def create_organization(call: Call) -> dict[str, Any]:
    p = call.params
    with call.context.db.begin() as conn:
        organization_id = organizations.create(
            conn,
            account_id=call.account_id,
            region=call.region,
            alias=p["Alias"],
            client_token=p.get("ClientToken"),
            domains=p.get("Domains", []),
            directory_id=p.get("DirectoryId"),
        )
    return {"OrganizationId": organization_id}


def describe_organization(call: Call) -> dict[str, Any]:
    with call.context.db.read() as conn:
        org = _org(call, conn, active=False)
    return {
        "OrganizationId": org.organization_id,
        "Alias": org.alias,
        "State": org.state,
        "DirectoryType": org.directory_type,
        "DefaultMailDomain": org.default_mail_domain,
        "CompletedDate": org.completed_at,
        "ARN": org.arn,
        "InteroperabilityEnabled": False,
    }


def list_organizations(call: Call) -> dict[str, Any]:
    p = call.params
    with call.context.db.read() as conn:
        items, token = organizations.page(
            conn, call.account_id, call.region, p.get("MaxResults", DEFAULT_PAGE), p.get("NextToken")
        )
    summaries = [
        {
            "OrganizationId": org.organization_id,
            "Alias": org.alias,
            "DefaultMailDomain": org.default_mail_domain,
            "State": org.state,
        }
        for org in items
    ]
    return {"OrganizationSummaries": summaries, "NextToken": token}


def delete_organization(call: Call) -> dict[str, Any]:
    with call.context.db.begin() as conn:
        org = _org(call, conn, active=False)
        organizations.delete(conn, call.context.data_dir, org, force=call.params.get("ForceDelete", False))
    return {"OrganizationId": org.organization_id, "State": organizations.DELETED}


def create_user(call: Call) -> dict[str, Any]:
    with call.context.db.begin() as conn:
        org = _org_locked(call, conn)
        return {"UserId": users.create(conn, org, call.params)}


def describe_user(call: Call) -> dict[str, Any]:
    with call.context.db.read() as conn:
        org = _org(call, conn)
        return users.resolve(conn, org.organization_id, call.params["UserId"]).describe()


def list_users(call: Call) -> dict[str, Any]:
    p = call.params
    with call.context.db.read() as conn:
        org = _org(call, conn)
        items, token = users.page(
            conn, org, p.get("Filters", {}), p.get("MaxResults", DEFAULT_PAGE), p.get("NextToken")
        )
    return {"Users": [user.summary() for user in items], "NextToken": token}


def update_user(call: Call) -> dict[str, Any]:
    with call.context.db.begin() as conn:
        org = _org(call, conn)
        users.update_user(conn, users.resolve(conn, org.organization_id, call.params["UserId"]), call.params)
    return {}


def delete_user(call: Call) -> dict[str, Any]:
    with call.context.db.begin() as conn:
        org = _org(call, conn)
        users.delete(conn, users.resolve(conn, org.organization_id, call.params["UserId"]))
    return {}


def register_to_workmail(call: Call) -> dict[str, Any]:
    with call.context.db.begin() as conn:
        org = _org_locked(call, conn)
        user = users.resolve(conn, org.organization_id, call.params["EntityId"])
        users.register(conn, call.context.data_dir, org, user, call.params["Email"])
    return {}


def deregister_from_workmail(call: Call) -> dict[str, Any]:
    with call.context.db.begin() as conn:
        org = _org(call, conn)
        user = users.resolve(conn, org.organization_id, call.params["EntityId"])
        users.deregister(conn, call.context.data_dir, org, user)
    return {}


def get_mailbox_details(call: Call) -> dict[str, Any]:
    with call.context.db.read() as conn:
        org = _org(call, conn)
        user = users.resolve(conn, org.organization_id, call.params["UserId"])
    if user.state != users.ENABLED:
        raise EntityNotFound(f"{call.params['UserId']} (no mailbox: the user is not registered to WorkMail)")
    return {
        "MailboxQuota": user.row.mailbox_quota_mb or MAILBOX_QUOTA_MB,
        "MailboxSize": round(users.mailbox_size_mb(call.context.data_dir, org, user), 6),
    }


HANDLERS: dict[str, Handler] = {
    "CreateOrganization": create_organization,
    "DescribeOrganization": describe_organization,
    "ListOrganizations": list_organizations,
    "DeleteOrganization": delete_organization,
    "CreateUser": create_user,
    "DescribeUser": describe_user,
    "ListUsers": list_users,
    "UpdateUser": update_user,
    "DeleteUser": delete_user,
    "RegisterToWorkMail": register_to_workmail,
    "DeregisterFromWorkMail": deregister_from_workmail,
    "GetMailboxDetails": get_mailbox_details,
}


def _resource(call: Call) -> str:
    organization_id = call.params.get("OrganizationId")
    if organization_id:
        return organizations.organization_arn(call.region, call.account_id, organization_id)
    return "*"


def spec(extra_handlers: dict[str, Handler] | None = None) -> ServiceSpec:
    return ServiceSpec(
        name="workmail",
        model=service_model("workmail"),
        protocol=JsonProtocol(),
        handlers={**HANDLERS, **(extra_handlers or {})},
        resource_for=_resource,
    )
