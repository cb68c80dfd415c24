"""Authorization of every call: who may do what.

The account's root key may do everything in its account. Every other principal (IAM users and
assumed-role sessions) is judged by the IAM policy engine against its identity policies; that
evaluation is supplied by the IAM service through :class:`PolicySource`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol

from mailcrate.accounts import Principal
from mailcrate.protocol.errors import ServiceError

if TYPE_CHECKING:
    from mailcrate.services.base import Call


class PolicySource(Protocol):
    """Decides for non-root principals; ``True`` only if an identity policy allows and none denies."""

    def is_allowed(
        self, principal: Principal, action: str, resource: str, context: Mapping[str, Any], call: Call
    ) -> bool: ...


class Authorizer:
    def __init__(self, policies: PolicySource | None = None) -> None:
        self.policies = policies

    def check(self, call: Call, action: str, resource: str, context: Mapping[str, Any]) -> None:
        principal = call.principal
        if principal.is_root:
            return
        protocol = call.context.services[call.service].protocol
        if principal.is_anonymous:  # no identity policy can name it: only resource policies
            raise ServiceError(
                "Access Denied", code=protocol.access_denied_code, status=protocol.access_denied_status
            )
        if self.policies is not None and self.policies.is_allowed(principal, action, resource, context, call):
            return
        raise ServiceError(
            f"User: {principal.arn} is not authorized to perform: {action} on resource: {resource} "
            "because no identity-based policy allows the action",
            code=protocol.access_denied_code,
            status=protocol.access_denied_status,
        )
