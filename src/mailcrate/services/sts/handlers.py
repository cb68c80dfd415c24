"""STS API handlers: AssumeRole for AWS principals, GetCallerIdentity."""

from __future__ import annotations

from typing import Any

from mailcrate.policy import Decision, RequestPrincipal
from mailcrate.protocol.models import service_model
from mailcrate.protocol.query import QueryProtocol
from mailcrate.services.base import Call, Handler, ServiceSpec
from mailcrate.services.iam import request_keys, roles
from mailcrate.services.iam.authz import identity_of
from mailcrate.services.sts import grants, sessions


def assume_role(call: Call) -> dict[str, Any]:
    p = call.params
    role_arn = p["RoleArn"]
    principal = call.principal
    as_service = principal.kind == "service"
    with call.context.db.begin() as conn:
        role = roles.find_by_arn(conn, role_arn)
        caller = RequestPrincipal.for_service(principal.arn) if as_service else _identity(conn, principal)
        if role is None or caller is None:
            raise sessions.denied(principal.arn, role_arn)
        seconds = sessions.check_duration(role, p.get("DurationSeconds"), chained=principal.kind == "session")
        context = {
            "sts:ExternalId": p.get("ExternalId"),
            "sts:RoleSessionName": p["RoleSessionName"],
            "sts:SourceIdentity": p.get("SourceIdentity"),
        }
        if as_service:
            # A service assuming a role on a customer's behalf names the resource it acts for;
            # AWS sends no aws:SourceIp / aws:SecureTransport for such a call.
            context |= {"aws:SourceAccount": principal.source_account, "aws:SourceArn": principal.source_arn}
        decision = sessions.trust_decision(
            role,
            caller,
            context,
            source_ip=None if as_service else call.request.client_ip,
            secure_transport=None if as_service else call.request.scheme == "https",
        )
        if decision is not Decision.ALLOW:
            raise sessions.denied(call.principal.arn, role_arn)
        if p.get("Tags"):
            _authorize_tags(call, role, caller, context)
        grant, packed = grants.session_extra(conn, principal, role.account_id, p)
        output = sessions.issue_credentials(
            conn,
            call.context.data_dir,
            role,
            p["RoleSessionName"],
            seconds,
            source=call.principal.arn,
            grant=grant,
            packed_size=packed,
        )
    if p.get("SourceIdentity"):
        output["SourceIdentity"] = p["SourceIdentity"]
    return output


def _authorize_tags(call: Call, role: roles.Role, caller: RequestPrincipal, context: dict[str, Any]) -> None:
    """Session tags need ``sts:TagSession`` from the role's trust policy and (for IAM principals)
    from the caller's identity policies, with the tags as ``aws:RequestTag/*``."""
    tag_keys = request_keys.request_tags(call.params)
    decision = sessions.trust_decision(
        role,
        caller,
        {**context, **tag_keys},
        source_ip=call.request.client_ip,
        secure_transport=call.request.scheme == "https",
        action="sts:TagSession",
    )
    if decision is not Decision.ALLOW:
        raise sessions.denied(call.principal.arn, role.arn, "sts:TagSession")
    if call.principal.kind != "service":
        call.authorize("sts:TagSession", role.arn, tag_keys)


def _identity(conn: Any, principal: Any) -> RequestPrincipal | None:
    identity = identity_of(conn, principal)
    return identity.principal if identity is not None else None


def get_caller_identity(call: Call) -> dict[str, Any]:
    principal = call.principal
    user_id = principal.account_id if principal.is_root else principal.principal_id
    return {"UserId": user_id, "Account": principal.account_id, "Arn": principal.arn}


HANDLERS: dict[str, Handler] = {
    "AssumeRole": assume_role,
    "GetCallerIdentity": get_caller_identity,
}


def resource_for(call: Call) -> str:
    return call.params.get("RoleArn") or "*"


def action_for(call: Call) -> str | None:
    """A service principal has no identity policies: the role's trust policy alone decides
    (checked by :func:`assume_role`), and a service may call nothing else."""
    if call.principal.kind == "service" and call.operation == "AssumeRole":
        return None
    return f"sts:{call.operation}"


def spec() -> ServiceSpec:
    return ServiceSpec(
        name="sts",
        model=service_model("sts"),
        protocol=QueryProtocol("ValidationError"),
        handlers=HANDLERS,
        validation_error_code="ValidationError",
        anchored_patterns=True,
        resource_for=resource_for,
        action_for=action_for,
    )
