"""What an AssumeRole may give a session beyond its role: session policies and session tags.

Session policies (``Policy``, ``PolicyArns``) only narrow: the session may do what both its role's
identity policies and the session policies allow
(https://docs.aws.amazon.com/IAM/latest/UserGuide/access_policies.html#policies_session). AWS
packs them, with the session tags, into the session token when the session is issued, so later
changes to a managed policy named in ``PolicyArns`` do not change an issued session; mailcrate
stores the texts with the session's key for the same effect. A ``PolicyArns`` entry must name a
managed policy of the role's account.

Session tags (``Tags``, ``TransitiveTagKeys``) need ``sts:TagSession`` in the role's trust policy
(https://docs.aws.amazon.com/IAM/latest/UserGuide/id_session-tags.html); they become
``aws:PrincipalTag/*`` of the session and override the role's tags of the same key; transitive
ones carry over when the session assumes another role (role chaining).

``PackedPolicySize`` is the packed size (zlib over the minified policy, the ARNs and the tags) as
a percentage of the 2,048-byte limit; above 100 % the call fails with PackedPolicyTooLarge.
"""

from __future__ import annotations

import json
import math
import zlib
from typing import Any

from sqlalchemy import Connection

from mailcrate.accounts import Principal
from mailcrate.policy import MalformedPolicyError, parse_identity_policy
from mailcrate.protocol.errors import ServiceError
from mailcrate.services.iam import managed
from mailcrate.services.iam.authz import SessionGrant, session_grant
from mailcrate.services.iam.errors import InvalidInput, NoSuchEntity

PACKED_LIMIT = 2048


class MalformedPolicyDocument(ServiceError):
    code = "MalformedPolicyDocument"
    status = 400


class PackedPolicyTooLarge(ServiceError):
    code = "PackedPolicyTooLarge"
    status = 400


class InvalidParameterValue(ServiceError):
    code = "InvalidParameterValue"
    status = 400


def _policy_texts(conn: Connection, account_id: str, params: dict[str, Any]) -> list[str] | None:
    texts: list[str] = []
    inline = params.get("Policy")
    if inline is not None:
        try:
            parse_identity_policy(inline)
        except MalformedPolicyError as exc:
            raise MalformedPolicyDocument(exc.message) from None
        texts.append(inline)
    for entry in params.get("PolicyArns") or ():
        arn = entry.get("arn", "")
        try:
            policy = managed.find(conn, account_id, arn)
        except (NoSuchEntity, InvalidInput):
            raise InvalidParameterValue(f"Policy {arn} does not exist or is not attachable.") from None
        text = managed.default_document(conn, policy.policy_id)
        assert text is not None  # a policy always has its default version
        texts.append(text)
    if inline is None and not params.get("PolicyArns"):
        return None
    return texts


def _tags(params: dict[str, Any], caller: SessionGrant) -> tuple[dict[str, str], list[str]]:
    """The session's tags: the caller's transitive ones (role chaining), then the new ones."""
    tags = {k: v for k, v in caller.tags.items() if k in caller.transitive}
    transitive = list(caller.transitive)
    given = {tag["Key"]: tag["Value"] for tag in params.get("Tags") or ()}
    if len({key.lower() for key in given}) != len(given):
        raise InvalidParameterValue(
            "Duplicate tag keys found. Please note that Tag keys are case insensitive."
        )
    inherited = {key.lower() for key in tags}
    for key in given:
        if key.lower() in inherited:
            raise InvalidParameterValue(f"Cannot override a transitive tag key: {key}")
    tags |= given
    for key in params.get("TransitiveTagKeys") or ():
        if key not in given:
            raise InvalidParameterValue(f"The transitive tag key {key} is not among the session tags.")
        if key not in transitive:
            transitive.append(key)
    return tags, transitive


def session_extra(
    conn: Connection, caller: Principal, account_id: str, params: dict[str, Any]
) -> tuple[dict[str, Any], int]:
    """The ``extra`` JSON fields of a new session's key and its PackedPolicySize."""
    inherited = session_grant(conn, caller) if caller.kind == "session" else SessionGrant()
    policies = _policy_texts(conn, account_id, params)
    tags, transitive = _tags(params, inherited)
    extra: dict[str, Any] = {}
    if policies is not None:
        extra["session_policies"] = policies
    if tags:
        extra["tags"] = tags
    if transitive:
        extra["transitive"] = transitive
    packed = json.dumps(
        {
            "p": [json.dumps(json.loads(params["Policy"]), separators=(",", ":"))]
            if params.get("Policy")
            else [],
            "a": [entry.get("arn") for entry in params.get("PolicyArns") or ()],
            "t": tags,
        },
        separators=(",", ":"),
    ).encode()
    size = math.ceil(100 * len(zlib.compress(packed, 9)) / PACKED_LIMIT) if extra else 0
    if size > 100:
        raise PackedPolicyTooLarge(
            f"Packed size of consumed session policies and session tags exceeds 2048 bytes by {size - 100}%."
        )
    return extra, size
