"""Evaluate policies against a request: AWS's evaluation logic, one policy type at a time.

* A statement applies when its action, resource, principal (resource policies only) and
  every condition match.
* An applicable ``Deny`` is an explicit deny and beats everything; otherwise an applicable
  ``Allow`` allows; otherwise the request is implicitly denied.
* :func:`authorize` combines the identity-policy and resource-policy decisions the way AWS
  does within one account (either may allow) and across accounts (both must allow).

The request is described by :class:`RequestContext`, which also derives the global keys
that come from the caller (``aws:PrincipalArn``, ``aws:PrincipalAccount``,
``aws:PrincipalType``, ``aws:username``, ``aws:userid``) so services need not repeat it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import Enum
from typing import Literal

from .conditions import evaluate_conditions
from .document import Effect, Policy, PrincipalSpec, Statement
from .matching import action_matches, resource_matches
from .variables import ContextValue, substitute

PrincipalType = Literal["AWS", "Service", "Federated", "*"]
RawContextValue = str | bool | int | float | datetime | Sequence[str]


class Decision(Enum):
    ALLOW = "allow"
    EXPLICIT_DENY = "explicit_deny"
    IMPLICIT_DENY = "implicit_deny"


@dataclass(frozen=True)
class RequestPrincipal:
    """Who is calling.

    ``arn`` is the caller's own ARN (``...:root``, ``...:user/x``, an STS session
    ``arn:aws:sts::A:assumed-role/R/S``, a federation provider for ``Federated``);
    ``role_arn`` is the IAM role behind an assumed-role session (with its path), which is what
    trust and resource policies name; ``service`` is the service principal name for
    ``type="Service"``; ``type="*"`` is an anonymous (unsigned) caller.
    """

    type: PrincipalType
    arn: str | None = None
    account: str | None = None
    service: str | None = None
    user_id: str | None = None
    username: str | None = None
    role_arn: str | None = None

    @classmethod
    def root(cls, account: str) -> RequestPrincipal:
        return cls("AWS", arn=f"arn:aws:iam::{account}:root", account=account, user_id=account)

    @classmethod
    def user(cls, arn: str, user_id: str | None = None) -> RequestPrincipal:
        """An IAM user; ``aws:username`` is the last path component of the ARN."""
        return cls("AWS", arn=arn, account=arn.split(":")[4], user_id=user_id, username=arn.rsplit("/")[-1])

    @classmethod
    def assumed_role(
        cls, session_arn: str, *, role_arn: str | None = None, role_id: str | None = None
    ) -> RequestPrincipal:
        """An STS role session; ``aws:userid`` is ``ROLEID:session-name`` as in AWS."""
        account = session_arn.split(":")[4]
        _, role_name, session_name = session_arn.split(":", 5)[5].split("/", 2)
        role_arn = role_arn or f"arn:aws:iam::{account}:role/{role_name}"
        user_id = f"{role_id}:{session_name}" if role_id else None
        return cls("AWS", arn=session_arn, account=account, user_id=user_id, role_arn=role_arn)

    @classmethod
    def for_service(cls, service: str) -> RequestPrincipal:
        return cls("Service", service=service)

    @classmethod
    def federated(cls, provider: str) -> RequestPrincipal:
        return cls("Federated", arn=provider)

    @classmethod
    def anonymous(cls) -> RequestPrincipal:
        return cls("*")

    @property
    def principal_arn(self) -> str | None:
        """``aws:PrincipalArn``: the role ARN for sessions, the caller's ARN otherwise."""
        return self.role_arn or self.arn

    @property
    def principal_type(self) -> str | None:
        """``aws:PrincipalType``: Account, User, AssumedRole, FederatedUser or None."""
        if self.type != "AWS" or not self.arn:
            return None
        resource = self.arn.split(":", 5)[-1]
        if resource == "root":
            return "Account"
        for prefix, name in (("user/", "User"), ("assumed-role/", "AssumedRole")):
            if resource.startswith(prefix):
                return name
        return "FederatedUser" if resource.startswith("federated-user/") else None


def _normalise(value: RawContextValue) -> ContextValue:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        moment = value if value.tzinfo else value.replace(tzinfo=UTC)
        return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    if isinstance(value, int | float | str):
        return str(value)
    return tuple(str(item) for item in value)


@dataclass(frozen=True)
class RequestContext:
    """One authorization question: may ``principal`` do ``action`` on ``resource``?

    ``resource`` is an ARN or a tuple of ARNs (every one must be allowed).  ``context_keys``
    are the request's condition keys (any case); values may be strings, lists (multi-valued
    keys such as ``kms:EncryptionContextKeys``), booleans, numbers or datetimes.
    """

    action: str
    resource: str | tuple[str, ...]
    principal: RequestPrincipal
    context_keys: Mapping[str, RawContextValue] = field(default_factory=dict, hash=False)

    @classmethod
    def build(
        cls,
        action: str,
        resource: str | Sequence[str],
        principal: RequestPrincipal,
        context_keys: Mapping[str, RawContextValue] | None = None,
        *,
        now: datetime | None = None,
        source_ip: str | None = None,
        secure_transport: bool | None = None,
    ) -> RequestContext:
        """Build a context, filling ``aws:CurrentTime``/``aws:EpochTime`` from ``now``
        (defaults to the current time) and the optional transport keys."""
        keys: dict[str, RawContextValue] = {}
        moment = now or datetime.now(UTC)
        keys["aws:CurrentTime"] = moment
        keys["aws:EpochTime"] = int(moment.timestamp())
        if source_ip is not None:
            keys["aws:SourceIp"] = source_ip
        if secure_transport is not None:
            keys["aws:SecureTransport"] = secure_transport
        keys.update(context_keys or {})
        resources = resource if isinstance(resource, str) else tuple(resource)
        return cls(action=action, resource=resources, principal=principal, context_keys=keys)

    @property
    def resources(self) -> tuple[str, ...]:
        return (self.resource,) if isinstance(self.resource, str) else tuple(self.resource)

    def condition_values(self) -> dict[str, ContextValue]:
        """All condition keys, lower-cased, with the principal-derived global keys added."""
        p = self.principal
        derived: dict[str, str | None] = {
            "aws:principalarn": p.principal_arn,
            "aws:principalaccount": p.account,
            "aws:principaltype": p.principal_type,
            "aws:username": p.username,
            "aws:userid": p.user_id,
            "aws:principalservicename": p.service,
        }
        values: dict[str, ContextValue] = {k: v for k, v in derived.items() if v is not None}
        for key, value in self.context_keys.items():
            values[key.lower()] = _normalise(value)
        return values


def _aws_principal_matches(entry: str, principal: RequestPrincipal) -> bool:
    if principal.type not in ("AWS", "*"):
        return False
    if entry == "*":
        return True
    if principal.type == "*":
        return False
    if entry.isdigit() or entry.endswith(":root"):
        account = entry if entry.isdigit() else entry.split(":")[4]
        return principal.account == account
    return entry in (principal.arn, principal.role_arn)


def principal_matches(spec: PrincipalSpec, principal: RequestPrincipal) -> bool:
    """Does a Principal element name this caller?

    ``"*"`` is everyone; ``{"AWS": "*"}`` every AWS identity and anonymous callers; an account
    id or ``:root`` ARN any identity of that account; a role ARN also its sessions.
    """
    if spec.wildcard:
        return True
    if any(_aws_principal_matches(entry, principal) for entry in spec.aws):
        return True
    if principal.type == "Service" and principal.service:
        wanted = principal.service.lower()
        if any(entry.lower() == wanted for entry in spec.service):
            return True
    return principal.type == "Federated" and principal.arn in spec.federated


def _resource_applies(
    patterns: Iterable[str], resource: str, values: Mapping[str, ContextValue], variables: bool
) -> bool:
    for pattern in patterns:
        tokens = substitute(pattern, values) if variables else pattern
        if tokens is not None and resource_matches(tokens, resource):
            return True
    return False


def statement_applies(
    statement: Statement,
    ctx: RequestContext,
    resource: str,
    values: Mapping[str, ContextValue],
    *,
    variables: bool,
    check_principal: bool,
) -> bool:
    """True when every element of ``statement`` matches this request for ``resource``."""
    if statement.action is not None:
        if not any(action_matches(a, ctx.action) for a in statement.action):
            return False
    elif any(action_matches(a, ctx.action) for a in statement.not_action or ()):
        return False
    if statement.resource is not None:
        if not _resource_applies(statement.resource, resource, values, variables):
            return False
    elif statement.not_resource is not None and _resource_applies(
        statement.not_resource, resource, values, variables
    ):
        return False
    if check_principal:
        if statement.principal is not None and not principal_matches(statement.principal, ctx.principal):
            return False
        if statement.not_principal is not None and principal_matches(statement.not_principal, ctx.principal):
            return False
    return evaluate_conditions(statement.conditions, values, variables=variables)


def _decide(policies: Iterable[Policy], ctx: RequestContext, *, check_principal: bool) -> Decision:
    policies = list(policies)
    values = ctx.condition_values()
    overall = Decision.ALLOW
    for resource in ctx.resources:
        allowed = False
        for policy in policies:
            for statement in policy.statements:
                if not statement_applies(
                    statement,
                    ctx,
                    resource,
                    values,
                    variables=policy.variables_enabled,
                    check_principal=check_principal,
                ):
                    continue
                if statement.effect is Effect.DENY:
                    return Decision.EXPLICIT_DENY
                allowed = True
        if not allowed:
            overall = Decision.IMPLICIT_DENY
    return overall if ctx.resources else Decision.IMPLICIT_DENY


def evaluate_identity_policies(policies: Iterable[Policy], ctx: RequestContext) -> Decision:
    """Identity-based policies of the caller: explicit deny, then allow, else implicit deny."""
    return _decide(policies, ctx, check_principal=False)


def evaluate_resource_policy(policy: Policy | None, ctx: RequestContext) -> Decision:
    """A resource-based policy (trust, bucket, key), matching Principal/NotPrincipal too."""
    if policy is None:
        return Decision.IMPLICIT_DENY
    return _decide([policy], ctx, check_principal=True)


def authorize(identity: Decision, resource: Decision, *, same_account: bool) -> Decision:
    """Combine decisions: any explicit deny wins; within one account either policy may allow,
    across accounts both must."""
    if Decision.EXPLICIT_DENY in (identity, resource):
        return Decision.EXPLICIT_DENY
    if same_account:
        allowed = Decision.ALLOW in (identity, resource)
    else:
        allowed = identity is Decision.ALLOW and resource is Decision.ALLOW
    return Decision.ALLOW if allowed else Decision.IMPLICIT_DENY
