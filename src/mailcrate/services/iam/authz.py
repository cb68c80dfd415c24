"""Identity-based authorization for every embedded service: the server's :class:`PolicySource`.

An IAM user's identity policies are its inline policies and the managed policies attached to it;
an assumed-role session's, its role's. A permissions boundary on the user or role, and the
session policies an AssumeRole passed, narrow them (:mod:`mailcrate.policy.effective`). Policy
texts are read from the database on every decision (indexed queries), so a PutUserPolicy,
AttachRolePolicy or SetDefaultPolicyVersion takes effect on the very next request in every
``serve`` process; only the parsing is cached, keyed by the text itself.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, select

from mailcrate.accounts import Principal
from mailcrate.datadir import DataDir
from mailcrate.policy import Decision, RequestContext, RequestPrincipal, effective_identity_decision
from mailcrate.services.iam import common, documents, managed, request_keys, roles, users
from mailcrate.storage.tables import access_keys

if TYPE_CHECKING:
    from mailcrate.services.base import Call

# Actions AWS answers for any authenticated caller, whatever its policies say.
ALWAYS_ALLOWED = frozenset({"sts:getcalleridentity"})


@dataclass(frozen=True)
class SessionGrant:
    """What an AssumeRole gave one session beyond its role: session policies and tags.

    Stored as JSON in the session key's ``extra`` (``session_policies``: the texts, fixed when the
    session was issued, as AWS packs them into the token; ``tags``; ``transitive``)."""

    policies: tuple[str, ...] | None = None
    tags: Mapping[str, str] = field(default_factory=dict)
    transitive: tuple[str, ...] = ()

    @classmethod
    def from_extra(cls, extra: str | None) -> SessionGrant:
        data = json.loads(extra) if extra else {}
        policies = data.get("session_policies")
        return cls(
            policies=tuple(policies) if policies is not None else None,
            tags=dict(data.get("tags") or {}),
            transitive=tuple(data.get("transitive") or ()),
        )


@dataclass(frozen=True)
class Identity:
    """A caller as the policy engine sees it, with its policies (texts) and tags."""

    principal: RequestPrincipal
    policies: tuple[str, ...]
    role: roles.Role | None = None  # the role behind an assumed-role session
    boundary: tuple[str, ...] | None = None  # the permissions boundary's default version
    session: tuple[str, ...] | None = None  # session policies, when the session was given any
    tags: Mapping[str, str] = field(default_factory=dict)  # aws:PrincipalTag/*


def session_role_id(principal: Principal) -> str:
    """Session keys carry ``ROLEID:session-name`` as their principal id."""
    return principal.principal_id.split(":", 1)[0]


def session_grant(conn: Connection, principal: Principal) -> SessionGrant:
    extra = conn.execute(
        select(access_keys.c.extra).where(access_keys.c.access_key_id == principal.access_key_id)
    ).scalar()
    return SessionGrant.from_extra(extra)


def _tags(stored: str | None) -> dict[str, str]:
    return {tag["Key"]: tag["Value"] for tag in common.tags_list(stored) or ()}


def _boundary(conn: Connection, policy_id: str | None) -> tuple[str, ...] | None:
    if policy_id is None:
        return None
    text = managed.default_document(conn, policy_id)
    return (text,) if text is not None else ()


def identity_of(conn: Connection, principal: Principal) -> Identity | None:
    """The caller's policy-engine principal and policies; None once its user/role is gone."""
    if principal.kind == "root":
        return Identity(RequestPrincipal.root(principal.account_id), ())
    if principal.kind == "user":
        user = users.find_by_id(conn, principal.principal_id)
        if user is None:
            return None
        texts = users.POLICIES.documents(conn, user.user_id) + managed.attached_documents(
            conn, "user", user.user_id
        )
        return Identity(
            RequestPrincipal.user(user.arn, user.user_id),
            tuple(texts),
            boundary=_boundary(conn, user.permissions_boundary),
            tags=_tags(user.tags),
        )
    if principal.kind == "session":
        role = roles.find_by_id(conn, session_role_id(principal))
        if role is None:
            return None
        texts = roles.POLICIES.documents(conn, role.role_id) + managed.attached_documents(
            conn, "role", role.role_id
        )
        grant = session_grant(conn, principal)
        request_principal = RequestPrincipal.assumed_role(
            principal.arn, role_arn=role.arn, role_id=role.role_id
        )
        tags = {**_tags(role.tags), **grant.tags}  # a session tag overrides the role's tag
        return Identity(
            request_principal,
            tuple(texts),
            role,
            boundary=_boundary(conn, role.permissions_boundary),
            session=grant.policies,
            tags=tags,
        )
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
    """The identity-side decision for one request of a non-root principal: its identity policies
    (inline and attached managed), narrowed by its permissions boundary and session policies.
    ``aws:PrincipalTag/*`` keys are added from the user's or role's and the session's tags."""
    if action.lower() in ALWAYS_ALLOWED:
        return Decision.ALLOW
    with data_dir.db.read() as conn:
        identity = identity_of(conn, principal)
    if identity is None:
        return Decision.IMPLICIT_DENY
    if principal.is_root:
        return Decision.ALLOW
    keys = {f"aws:PrincipalTag/{key}": value for key, value in identity.tags.items()}
    keys.update(context or {})
    ctx = RequestContext.build(
        action,
        resource,
        identity.principal,
        keys,
        now=now,
        source_ip=source_ip,
        secure_transport=secure_transport,
    )
    parse = documents.parsed_identity
    return effective_identity_decision(
        [parse(t) for t in identity.policies],
        ctx,
        boundary=None if identity.boundary is None else [parse(t) for t in identity.boundary],
        session=None if identity.session is None else [parse(t) for t in identity.session],
    )


class IamPolicySource:
    """The :class:`mailcrate.services.authorize.PolicySource` of ``mailcrate serve``.

    Context keys: the principal's (``aws:PrincipalArn``, ``aws:PrincipalAccount``,
    ``aws:PrincipalType``, ``aws:username``, ``aws:userid``, ``aws:PrincipalTag/*``), the
    request's (``aws:SourceIp``, ``aws:SecureTransport``, ``aws:CurrentTime``, ``aws:EpochTime``,
    ``aws:RequestedRegion``, ``aws:RequestTag/*``, ``aws:TagKeys``, ``aws:CalledVia*``,
    ``aws:ViaAWSService``), the resource's (``aws:ResourceAccount``, ``aws:ResourceTag/*`` of IAM
    roles and users) and whatever the service passes in ``context`` (``kms:ViaService``,
    ``s3:prefix``, ...); see :mod:`mailcrate.services.iam.request_keys`.
    """

    def is_allowed(
        self, principal: Principal, action: str, resource: str, context: Mapping[str, Any], call: Call
    ) -> bool:
        keys = {**request_keys.for_call(call, resource, dict(context)), **context}
        decision = evaluate(
            call.context.data_dir,
            principal,
            action,
            resource,
            keys,
            source_ip=call.request.client_ip,
            secure_transport=call.request.scheme == "https",
        )
        return decision is Decision.ALLOW
