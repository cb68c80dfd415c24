"""S3's "public" bucket policy definition, as GetBucketPolicyStatus reports it."""

from __future__ import annotations

from typing import Any

import pytest

from mailcrate.policy import is_public_policy, parse_resource_policy

ACCOUNT = "111122223333"


def bucket_policy(
    principal: Any = "*", condition: dict | None = None, effect: str = "Allow", **extra: Any
) -> Any:
    statement: dict[str, Any] = {
        "Effect": effect,
        "Action": "s3:GetObject",
        "Resource": "arn:aws:s3:::b/*",
        **extra,
    }
    if principal is not None:
        statement["Principal"] = principal
    if condition:
        statement["Condition"] = condition
    return parse_resource_policy(
        {"Version": "2012-10-17", "Statement": [statement]}, resource_rule="required"
    )


CASES: list[tuple[str, Any, bool]] = [
    ("star principal", bucket_policy(), True),
    ("AWS star principal", bucket_policy({"AWS": "*"}), True),
    ("account principal", bucket_policy({"AWS": ACCOUNT}), False),
    ("other account user", bucket_policy({"AWS": "arn:aws:iam::444455556666:user/x"}), False),
    ("service principal", bucket_policy({"Service": "export.workmail.amazonaws.com"}), False),
    ("deny to everyone", bucket_policy(effect="Deny"), False),
    ("NotPrincipal allow", bucket_policy(None, NotPrincipal={"AWS": ACCOUNT}), True),
    ("fixed SourceAccount", bucket_policy(condition={"StringEquals": {"aws:SourceAccount": ACCOUNT}}), False),
    (
        "fixed SourceArn",
        bucket_policy(
            condition={"ArnEquals": {"aws:SourceArn": "arn:aws:workmail:us-east-1:1:organization/m-1"}}
        ),
        False,
    ),
    ("wildcard SourceArn", bucket_policy(condition={"ArnLike": {"aws:SourceArn": "arn:aws:*"}}), True),
    (
        "fixed PrincipalOrgID",
        bucket_policy(condition={"StringEquals": {"aws:PrincipalOrgID": "o-abc"}}),
        False,
    ),
    ("fixed SourceVpce", bucket_policy(condition={"StringEquals": {"aws:SourceVpce": "vpce-1"}}), False),
    ("narrow SourceIp", bucket_policy(condition={"IpAddress": {"aws:SourceIp": "203.0.113.0/24"}}), False),
    ("everything SourceIp", bucket_policy(condition={"IpAddress": {"aws:SourceIp": "0.0.0.0/0"}}), True),
    (
        "NotIpAddress does not pin",
        bucket_policy(condition={"NotIpAddress": {"aws:SourceIp": "10.0.0.0/8"}}),
        True,
    ),
    ("negated operator", bucket_policy(condition={"StringNotEquals": {"aws:SourceAccount": ACCOUNT}}), True),
    (
        "IfExists does not pin",
        bucket_policy(condition={"StringEqualsIfExists": {"aws:SourceAccount": ACCOUNT}}),
        True,
    ),
    ("unrelated key", bucket_policy(condition={"Bool": {"aws:SecureTransport": "true"}}), True),
    ("userid role pattern", bucket_policy(condition={"StringLike": {"aws:userid": "AROAEXAMPLE:*"}}), False),
    (
        "variable is not fixed",
        bucket_policy(condition={"StringEquals": {"aws:SourceAccount": "${aws:username}"}}),
        True,
    ),
]


@pytest.mark.parametrize(("policy", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_is_public_policy(policy: Any, expected: bool) -> None:
    assert is_public_policy(policy, ACCOUNT) is expected
