"""S3's definition of a "public" bucket policy (GetBucketPolicyStatus, BlockPublicPolicy).

S3 considers a policy public when some ``Allow`` statement grants to a wildcard principal
(``"*"``, ``{"AWS": "*"}``, or any ``NotPrincipal``) without a condition that pins the request
to fixed values of one of these keys:

``aws:SourceArn``, ``aws:SourceVpc``, ``aws:SourceVpce``, ``aws:SourceOwner``,
``aws:SourceAccount``, ``aws:PrincipalOrgID``, ``aws:PrincipalAccount``, ``aws:PrincipalArn``,
``aws:userid`` (a fixed id, or the pattern ``ROLEID:*``),
``s3:x-amz-server-side-encryption-aws-kms-key-id``, or ``aws:SourceIp`` limited to CIDRs
that are not overly broad (``/8`` or longer for IPv4, ``/32`` or longer for IPv6; wider ranges
such as ``0.0.0.0/0`` are treated as public).

Only a positive, unqualified operator without ``IfExists`` pins a key: a negated operator,
``IfExists`` (true when the key is absent), or a value containing a wildcard or a policy
variable leaves the grant open.
"""

from __future__ import annotations

import ipaddress
import re

from .conditions import Condition, parse_operator
from .document import Effect, Policy, Statement
from .variables import has_variables

_FIXED_KEYS = frozenset(
    key.lower()
    for key in (
        "aws:SourceArn",
        "aws:SourceVpc",
        "aws:SourceVpce",
        "aws:SourceOwner",
        "aws:SourceAccount",
        "aws:PrincipalOrgID",
        "aws:PrincipalAccount",
        "aws:PrincipalArn",
        "aws:userid",
        "s3:x-amz-server-side-encryption-aws-kms-key-id",
    )
)
_PINNING_BASES = frozenset({"StringEquals", "StringEqualsIgnoreCase", "StringLike", "ArnEquals", "ArnLike"})
_ROLE_SESSION_PATTERN = re.compile(r"^[A-Za-z0-9]+:\*$")
_MIN_PREFIX = {4: 8, 6: 32}


def _fixed_value(key: str, value: str) -> bool:
    if has_variables(value) or not value:
        return False
    if key == "aws:userid" and _ROLE_SESSION_PATTERN.match(value):
        return True
    return "*" not in value and "?" not in value


def _narrow_cidr(value: str) -> bool:
    try:
        network = ipaddress.ip_network(value.strip(), strict=False)
    except ValueError:
        return False
    return network.prefixlen >= _MIN_PREFIX[network.version]


def _pins(condition: Condition) -> bool:
    """True when this condition restricts the request to fixed values of a pinning key."""
    spec = parse_operator(condition.operator)
    if spec is None or spec.negated or spec.if_exists or spec.qualifier is not None:
        return False
    if not condition.values:
        return False
    key = condition.key.lower()
    if key == "aws:sourceip":
        return spec.base == "IpAddress" and all(_narrow_cidr(v) for v in condition.values)
    if key not in _FIXED_KEYS or spec.base not in _PINNING_BASES:
        return False
    return all(_fixed_value(key, v) for v in condition.values)


def _wildcard_grant(statement: Statement) -> bool:
    if statement.not_principal is not None:
        return True
    principal = statement.principal
    return principal is not None and (principal.wildcard or "*" in principal.aws)


def is_public_statement(statement: Statement) -> bool:
    """An Allow to everyone that no condition pins down."""
    if statement.effect is not Effect.ALLOW or not _wildcard_grant(statement):
        return False
    return not any(_pins(condition) for condition in statement.conditions)


def is_public_policy(policy: Policy, account: str | None = None) -> bool:
    """S3 ``PolicyStatus.IsPublic`` for a bucket policy.

    ``account`` is the bucket owner.  S3's definition does not depend on it (a grant to a
    fixed principal of another account is cross-account, not public); it is accepted so that
    callers pass the owner and a future stricter check needs no signature change.
    """
    del account
    return any(is_public_statement(statement) for statement in policy.statements)
