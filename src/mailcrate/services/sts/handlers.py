"""STS API handlers: AssumeRole for AWS principals, GetCallerIdentity."""

from __future__ import annotations

from typing import Any

from mailcrate.policy import Decision
from mailcrate.protocol.models import service_model
from mailcrate.protocol.query import QueryProtocol
from mailcrate.services.base import Call, Handler, ServiceSpec
from mailcrate.services.iam import roles
from mailcrate.services.iam.authz import identity_of
from mailcrate.services.sts import sessions


def assume_role(call: Call) -> dict[str, Any]:
    p = call.params
    role_arn = p["RoleArn"]
    if p.get("Policy") is not None or p.get("PolicyArns"):
        # Session policies narrow a session; ignoring them would grant more than asked for.
        raise sessions.StsValidationError("mailcrate does not support session policies (Policy, PolicyArns).")
    with call.runtime.data_dir.db.begin() as conn:
        role = roles.find_by_arn(conn, role_arn)
        caller = identity_of(conn, call.principal)
        if role is None or caller is None:
            raise sessions.denied(call.principal.arn, role_arn)
        seconds = sessions.check_duration(
            role, p.get("DurationSeconds"), chained=call.principal.kind == "session"
        )
        context = {
            "sts:ExternalId": p.get("ExternalId"),
            "sts:RoleSessionName": p["RoleSessionName"],
            "sts:SourceIdentity": p.get("SourceIdentity"),
        }
        decision = sessions.trust_decision(
            role,
            caller.principal,
            context,
            source_ip=call.request.client_ip,
            secure_transport=call.request.scheme == "https",
        )
        if decision is not Decision.ALLOW:
            raise sessions.denied(call.principal.arn, role_arn)
        output = sessions.issue_credentials(
            conn, call.runtime.data_dir, role, p["RoleSessionName"], seconds, source=call.principal.arn
        )
    if p.get("SourceIdentity"):
        output["SourceIdentity"] = p["SourceIdentity"]
    return output


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


def spec() -> ServiceSpec:
    return ServiceSpec(
        name="sts",
        model=service_model("sts"),
        protocol=QueryProtocol("ValidationError"),
        handlers=HANDLERS,
        validation_error_code="ValidationError",
        resource_for=resource_for,
    )
