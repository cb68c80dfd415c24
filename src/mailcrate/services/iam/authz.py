"""Identity-based authorization for every embedded service: the server's :class:`PolicySource`.

For an IAM user the identity policies are the user's inline policies; for an assumed-role
session, its role's inline policies. Policy texts are read from the database on every decision
(one indexed query), so a PutUserPolicy or DeleteRolePolicy takes effect on the very next request
in every ``serve`` process; only the parsing is cached, keyed by the text itself.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection

from mailcrate.accounts import Principal
from mailcrate.datadir import DataDir
from mailcrate.policy import Decision, RequestContext, RequestPrincipal, evaluate_identity_policies
from mailcrate.services.iam import documents, roles, users

if TYPE_CHECKING:
    from mailcrate.services.base import Call

# Actions AWS answers for any authenticated caller, whatever its policies say.
ALWAYS_ALLOWED = frozenset({"sts:getcalleridentity"})


@dataclass(frozen=True)
class Identity:
    """A caller as the policy engine sees it, with its identity policies (texts)."""

    principal: RequestPrincipal
    policies: tuple[str, ...]
    role: roles.Role | None = None  # the role behind an assumed-role session


def session_role_id(principal: Principal) -> str:
    """Session keys carry ``ROLEID:session-name`` as their principal id."""
    return principal.principal_id.split(":", 1)[0]


def identity_of(conn: Connection, principal: Principal) -> Identity | None:
    """The caller's policy-engine principal and policies; None once its user/role is gone."""
    if principal.kind == "root":
        return Identity(RequestPrincipal.root(principal.account_id), ())
    if principal.kind == "user":
        user = users.find_by_id(conn, principal.principal_id)
        if user is None:
            return None
        texts = users.POLICIES.documents(conn, user.user_id)
        return Identity(RequestPrincipal.user(user.arn, user.user_id), tuple(texts))
    if principal.kind == "session":
        role = roles.find_by_id(conn, session_role_id(principal))
        if role is None:
            return None
        texts = roles.POLICIES.documents(conn, role.role_id)
        request_principal = RequestPrincipal.assumed_role(
            principal.arn, role_arn=role.arn, role_id=role.role_id
        )
        return Identity(request_principal, tuple(texts), role)
    return None


def evaluate(
    data_dir: DataDir,
    principal: Principal,
    action: str,
    resource: str,
    context: Mapping[str, Any] | None = None,
    *,
    source_ip: str | None = None,
    secure_transport: bool | None = None,
    now: datetime | None = None,
) -> Decision:
    """The identity-policy decision for one request of a non-root principal."""
    if action.lower() in ALWAYS_ALLOWED:
        return Decision.ALLOW
    with data_dir.db.read() as conn:
        identity = identity_of(conn, principal)
    if identity is None:
        return Decision.IMPLICIT_DENY
    if principal.is_root:
        return Decision.ALLOW
    ctx = RequestContext.build(
        action,
        resource,
        identity.principal,
        dict(context or {}),
        now=now,
        source_ip=source_ip,
        secure_transport=secure_transport,
    )
    return evaluate_identity_policies([documents.parsed_identity(t) for t in identity.policies], ctx)


class IamPolicySource:
    """The :class:`mailcrate.services.authorize.PolicySource` of ``mailcrate serve``.

    Context keys: ``aws:PrincipalArn``, ``aws:PrincipalAccount``, ``aws:PrincipalType``,
    ``aws:username``, ``aws:userid`` (from the principal), ``aws:SourceIp``,
    ``aws:SecureTransport``, ``aws:CurrentTime``, ``aws:EpochTime`` (from the request) and
    whatever the service passes in ``context`` (``kms:ViaService``, ``s3:prefix``, ...).
    """

    def is_allowed(
        self, principal: Principal, action: str, resource: str, context: Mapping[str, Any], call: Call
    ) -> bool:
        decision = evaluate(
            call.context.data_dir,
            principal,
            action,
            resource,
            context,
            source_ip=call.request.client_ip,
            secure_transport=call.request.scheme == "https",
        )
        return decision is Decision.ALLOW
