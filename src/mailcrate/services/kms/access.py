"""Who may use a KMS key: its key policy first, then the caller's IAM policies, as AWS KMS decides.

Every operation on a key (the KMS API's handlers, and S3's SSE-KMS through
:mod:`mailcrate.services.kms.crypto`, in-process writes of the export included) asks
:func:`check`. The rules themselves are pure (:mod:`mailcrate.policy.key_policy`); this module
gathers what they need: the key's policy (AWS's default one where none was given), the caller as
the policy engine sees it, the request's condition keys, and the identity-side decision of
:func:`mailcrate.services.iam.authz.evaluate` (identity policies and whatever else narrows them).

AWS documentation: "Key policies in AWS KMS", "Allowing users in other accounts to use a KMS
key", "AWS KMS condition keys", and the IAM User Guide's "Policy evaluation logic".
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from mailcrate.accounts import Principal
from mailcrate.policy import (
    Decision,
    MalformedPolicyError,
    Policy,
    RequestContext,
    RequestPrincipal,
    parse_resource_policy,
)
from mailcrate.policy.key_policy import KeyPolicyAnswer, combine, default_key_policy, evaluate_key_policy
from mailcrate.services.iam import authz, request_keys
from mailcrate.services.kms import errors
from mailcrate.services.kms.keys import Key

if TYPE_CHECKING:
    from mailcrate.services.base import Call

MAX_POLICY_BYTES = 32768  # "The key policy size quota is 32 kilobytes (32768 bytes)" (PutKeyPolicy)


class AccessDenied(errors.ServiceError):
    code = "AccessDeniedException"


@lru_cache(maxsize=1024)
def parsed(text: str) -> Policy:
    """A stored key policy, parsed once per process (policies are validated on write)."""
    return parse_resource_policy(text)


def validate(text: str) -> Policy:
    """A key policy as CreateKey/PutKeyPolicy accept it, or AWS's error for it."""
    if len(text.encode("utf-8")) > MAX_POLICY_BYTES:
        raise errors.LimitExceeded(f"The key policy exceeds the quota of {MAX_POLICY_BYTES} bytes.")
    try:
        # Principal and Resource are required in a key policy statement ("Key policy elements").
        return parse_resource_policy(text, resource_rule="required")
    except MalformedPolicyError as exc:
        raise errors.MalformedPolicyDocument(str(exc)) from None


def policy_text(key: Key) -> str:
    return key.policy if key.policy is not None else default_key_policy(key.account_id)


def caller(call: Call) -> tuple[RequestPrincipal | None, dict[str, str]]:
    """The caller as key policies name it (a session by its role's ARN, path included) and its
    ``aws:PrincipalTag/*`` keys; None once its user or role is gone."""
    principal = call.principal
    if principal.kind == "service":
        return RequestPrincipal.for_service(principal.arn), {}
    if principal.is_root:
        return RequestPrincipal.root(principal.account_id), {}
    with call.context.db.read() as conn:
        identity = authz.identity_of(conn, principal)
    if identity is None:
        return None, {}
    return identity.principal, {f"aws:PrincipalTag/{k}": v for k, v in identity.tags.items()}


def condition_keys(call: Call, key: Key | None, extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The condition keys AWS KMS sends with a request on ``key`` (``extra``: the encryption
    context and ``kms:ViaService`` keys of the operation), with the request's global keys
    (:func:`mailcrate.services.iam.request_keys.for_call`: aws:RequestedRegion,
    aws:ResourceAccount, aws:CalledVia, aws:RequestTag/*, ...). A key the request does not carry
    is absent, so ``...IfExists`` and ``Null`` conditions behave as on AWS."""
    keys = request_keys.for_call(call, key.arn if key is not None else "*")
    keys["kms:CallerAccount"] = call.principal.account_id
    if key is not None:
        keys["kms:KeySpec"] = key.key_spec
        keys["kms:KeyUsage"] = key.key_usage
        keys["kms:KeyOrigin"] = "AWS_KMS"
        for name, value in key.tags:
            keys[f"aws:ResourceTag/{name}"] = value
    keys.update(extra or {})
    return keys


def decide(
    call: Call, action: str, key: Key, extra: Mapping[str, Any] | None = None, *, policy: Policy | None = None
) -> tuple[Decision, str]:
    """The decision for ``action`` on ``key`` and, when denied, AWS's reason for it.

    ``policy`` replaces the key's own (the lockout check of PutKeyPolicy and CreateKey)."""
    principal = call.principal
    keys = condition_keys(call, key, extra)
    who, principal_tags = caller(call)
    if who is None:
        return Decision.IMPLICIT_DENY, f"no identity-based policy allows the {action} action"
    ctx = RequestContext.build(
        action,
        key.arn,
        who,
        {**principal_tags, **keys},
        now=call.context.clock(),
        source_ip=call.request.client_ip,
        secure_transport=call.request.scheme == "https",
    )
    answer = evaluate_key_policy(policy or parsed(policy_text(key)), ctx)
    if answer is KeyPolicyAnswer.DENY:
        return Decision.EXPLICIT_DENY, "with an explicit deny in a resource-based policy"
    same_account = principal.account_id == key.account_id
    identity = _identity(call, action, key, keys, needed=answer is not KeyPolicyAnswer.NONE)
    decision = combine(answer, identity, same_account=same_account)
    if decision is Decision.ALLOW:
        return decision, ""
    if identity is Decision.EXPLICIT_DENY:
        return decision, "with an explicit deny in an identity-based policy"
    if answer is KeyPolicyAnswer.NONE:
        return decision, f"no resource-based policy allows the {action} action"
    return decision, f"no identity-based policy allows the {action} action"


def _identity(call: Call, action: str, key: Key, keys: Mapping[str, Any], *, needed: bool) -> Decision:
    """The caller's identity-side decision (its root: its own account allows it everything)."""
    principal: Principal = call.principal
    if principal.kind == "service" or not needed:
        return Decision.IMPLICIT_DENY
    return authz.evaluate(
        call.context.data_dir,
        principal,
        action,
        key.arn,
        keys,
        source_ip=call.request.client_ip,
        secure_transport=call.request.scheme == "https",
        now=call.context.clock(),
    )


def check(call: Call, action: str, key: Key, extra: Mapping[str, Any] | None = None) -> None:
    """Raise KMS's AccessDeniedException unless the caller may do ``action`` with ``key``."""
    decision, why = decide(call, action, key, extra)
    if decision is not Decision.ALLOW:
        joined = f"because {why}" if why.startswith("no ") else why
        raise AccessDenied(
            f"User: {call.principal.arn} is not authorized to perform: {action} on resource: {key.arn} {joined}"
        )


def check_lockout(call: Call, key: Key, policy: Policy) -> None:
    """AWS's policy lockout safety check: the caller must still be allowed to PutKeyPolicy
    under the new policy ("BypassPolicyLockoutSafetyCheck" in PutKeyPolicy and CreateKey)."""
    decision, _ = decide(call, "kms:PutKeyPolicy", key, policy=policy)
    if decision is not Decision.ALLOW:
        raise errors.MalformedPolicyDocument(
            "The new key policy will not allow you to update the key policy in the future."
        )
