"""Role sessions: who may assume a role, and the temporary credentials a session gets.

AssumeRole needs two yeses: the caller's identity policies must allow ``sts:AssumeRole`` on the
role (the server's generic authorization check; the account root always may), and the role's
trust policy must allow the caller — an AWS principal over the wire, or a service principal
in-process (:func:`assume_role_as_service`, what the export workers use). A Deny in the trust
policy wins, as everywhere.

Credentials: access key ``ASIA...``, a secret, and a session token of which only a SHA-256 hash is
stored; they expire after DurationSeconds (900 s up to the role's MaxSessionDuration, default
3,600 s; role chaining at most 3,600 s). SigV4 rejects them after that with ExpiredToken.

Testing expiry: :func:`issue_credentials` takes any duration, without the 900 s floor of the API,
so a test can open the server's data directory in-process and mint credentials that expire in a
second or two (see ``tests/iam/test_sts.py``).
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, and_, delete

from mailcrate.accounts import Principal, new_access_key_id, new_secret_access_key, store_access_key
from mailcrate.datadir import DataDir
from mailcrate.policy import Decision, RequestContext, RequestPrincipal, evaluate_resource_policy
from mailcrate.protocol.errors import ServiceError
from mailcrate.services.iam import documents, roles
from mailcrate.storage.db import utcnow

if TYPE_CHECKING:
    from mailcrate.services.context import ServiceContext
from mailcrate.storage.tables import access_keys

DEFAULT_DURATION = 3600
MIN_DURATION = 900
CHAINED_MAX_DURATION = 3600
ASSUME_ROLE = "sts:AssumeRole"
_PRUNE_AFTER = timedelta(hours=1)


class AccessDenied(ServiceError):
    code = "AccessDenied"
    status = 403


class StsValidationError(ServiceError):
    code = "ValidationError"
    status = 400


def session_arn(account_id: str, role_name: str, session_name: str) -> str:
    return f"arn:aws:sts::{account_id}:assumed-role/{role_name}/{session_name}"


def denied(caller_arn: str, role_arn: str, action: str = ASSUME_ROLE) -> AccessDenied:
    return AccessDenied(f"User: {caller_arn} is not authorized to perform: {action} on resource: {role_arn}")


def check_duration(role: roles.Role, duration: int | None, *, chained: bool = False) -> int:
    seconds = DEFAULT_DURATION if duration is None else duration
    if seconds < MIN_DURATION:
        raise StsValidationError(
            f"1 validation error detected: Value '{seconds}' at 'durationSeconds' failed to satisfy "
            f"constraint: Member must have value greater than or equal to {MIN_DURATION}"
        )
    if seconds > role.max_session_duration:
        raise StsValidationError(
            "The requested DurationSeconds exceeds the MaxSessionDuration set for this role."
        )
    if chained and seconds > CHAINED_MAX_DURATION:
        raise StsValidationError(
            "The requested DurationSeconds exceeds the 1 hour session limit for roles assumed by role chaining."
        )
    return seconds


def trust_decision(
    role: roles.Role,
    caller: RequestPrincipal,
    context: Mapping[str, Any],
    *,
    source_ip: str | None = None,
    secure_transport: bool | None = None,
    now: datetime | None = None,
    action: str = ASSUME_ROLE,
) -> Decision:
    """What the role's trust policy says about ``caller`` assuming it (or tagging the session)."""
    ctx = RequestContext.build(
        action,
        role.arn,
        caller,
        {k: v for k, v in context.items() if v is not None},
        now=now,
        source_ip=source_ip,
        secure_transport=secure_transport,
    )
    return evaluate_resource_policy(documents.parsed_trust(role.trust_policy), ctx)


def _prune_expired(conn: Connection) -> None:
    conn.execute(
        delete(access_keys).where(
            and_(
                access_keys.c.principal_kind == "session", access_keys.c.expires_at < utcnow() - _PRUNE_AFTER
            )
        )
    )


def issue_credentials(
    conn: Connection,
    data_dir: DataDir,
    role: roles.Role,
    session_name: str,
    duration_seconds: float,
    *,
    source: str,
    grant: Mapping[str, Any] | None = None,
    packed_size: int = 0,
) -> dict[str, Any]:
    """Mint a session of ``role`` (no checks: callers decide first). The AssumeRole output.

    ``grant``: the session policies and tags (:func:`mailcrate.services.sts.grants.session_extra`),
    kept with the session's key."""
    _prune_expired(conn)
    key_id, secret = new_access_key_id("ASIA"), new_secret_access_key()
    token = "MC" + secrets.token_urlsafe(180)
    expires = utcnow().replace(microsecond=0) + timedelta(seconds=duration_seconds)
    arn = session_arn(role.account_id, role.name, session_name)
    assumed_id = f"{role.role_id}:{session_name}"
    store_access_key(
        conn,
        data_dir,
        account_id=role.account_id,
        access_key_id=key_id,
        secret_access_key=secret,
        principal_kind="session",
        principal_arn=arn,
        principal_id=assumed_id,
        session_token=token,
        expires_at=expires,
        extra=json.dumps({"role_arn": role.arn, "source": source, **(grant or {})}),
    )
    return {
        "Credentials": {
            "AccessKeyId": key_id,
            "SecretAccessKey": secret,
            "SessionToken": token,
            "Expiration": expires,
        },
        "AssumedRoleUser": {"AssumedRoleId": assumed_id, "Arn": arn},
        "PackedPolicySize": packed_size,
    }


def assume_role_as_service(
    context: ServiceContext,
    *,
    service: str,
    role_arn: str,
    session_name: str,
    external_id: str | None,
    source_account: str,
    source_arn: str | None,
    duration_seconds: int = DEFAULT_DURATION,
) -> dict[str, Any]:
    """Assume ``role_arn`` as the service principal ``service`` (e.g.
    ``export.workmail.amazonaws.com``), in-process, for the export workers: STS ``AssumeRole``
    through :func:`~mailcrate.services.invoke.invoke`, so the model's checks and the handler's
    trust-policy evaluation are the ones an HTTP caller gets.

    The trust policy is evaluated with ``sts:ExternalId``, ``aws:SourceAccount`` and
    ``aws:SourceArn`` in the context. Returns the AssumeRole output (``Credentials`` with
    ``AccessKeyId``, ``SecretAccessKey``, ``SessionToken``, ``Expiration``; ``AssumedRoleUser``).
    Raises :class:`AccessDenied` (code ``AccessDenied``) when the role does not exist or its trust
    policy does not allow the service, a validation error for bad names or durations.
    """
    from mailcrate.services.invoke import invoke  # the one road; it imports this room's spec

    params: dict[str, Any] = {
        "RoleArn": role_arn,
        "RoleSessionName": session_name,
        "DurationSeconds": duration_seconds,
    }
    if external_id is not None:
        params["ExternalId"] = external_id
    principal = Principal.for_service(service, source_account=source_account, source_arn=source_arn)
    answer = invoke(context, principal, "sts", "AssumeRole", params, region=_region_of(source_arn))
    assert isinstance(answer, dict)
    return answer


def _region_of(arn: str | None) -> str | None:
    parts = (arn or "").split(":", 5)
    return parts[3] if len(parts) == 6 and parts[3] else None
