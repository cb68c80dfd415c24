"""Every condition operator, matching and not matching, asserted through the decision.

Each case is one Allow statement on ``s3:GetObject`` / ``*`` with a Condition block; the
request carries the given context keys.  True means the request is allowed.
"""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from typing import Any

import pytest

from mailcrate.policy import Decision, RequestContext, RequestPrincipal, evaluate_identity_policies
from mailcrate.policy import parse_identity_policy as parse

NOW = datetime(2024, 6, 1, 12, 0, 0, tzinfo=UTC)
EPOCH = int(NOW.timestamp())
ALICE = RequestPrincipal.user("arn:aws:iam::111122223333:user/alice", "AIDAALICE")
BLOB = base64.b64encode(b"\x00secret").decode()


def allowed(condition: dict[str, Any], keys: dict[str, Any], version: str | None = "2012-10-17") -> bool:
    document: dict[str, Any] = {
        "Statement": [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*", "Condition": condition}]
    }
    if version:
        document["Version"] = version
    ctx = RequestContext.build("s3:GetObject", "arn:aws:s3:::bucket/key", ALICE, keys, now=NOW)
    return evaluate_identity_policies([parse(document)], ctx) is Decision.ALLOW


CASES: list[tuple[str, dict[str, Any], dict[str, Any], bool]] = [
    # String operators
    ("StringEquals match", {"StringEquals": {"s3:prefix": "home/"}}, {"s3:prefix": "home/"}, True),
    ("StringEquals mismatch", {"StringEquals": {"s3:prefix": "home/"}}, {"s3:prefix": "etc/"}, False),
    (
        "StringEquals is case-sensitive",
        {"StringEquals": {"s3:prefix": "home/"}},
        {"s3:prefix": "HOME/"},
        False,
    ),
    ("StringEquals missing key", {"StringEquals": {"s3:prefix": "home/"}}, {}, False),
    ("StringNotEquals differs", {"StringNotEquals": {"s3:prefix": "home/"}}, {"s3:prefix": "etc/"}, True),
    ("StringNotEquals equal", {"StringNotEquals": {"s3:prefix": "home/"}}, {"s3:prefix": "home/"}, False),
    ("StringNotEquals missing key is true", {"StringNotEquals": {"s3:prefix": "home/"}}, {}, True),
    (
        "StringNotEquals not any of values",
        {"StringNotEquals": {"s3:prefix": ["a", "b"]}},
        {"s3:prefix": "b"},
        False,
    ),
    (
        "StringNotEquals none of values",
        {"StringNotEquals": {"s3:prefix": ["a", "b"]}},
        {"s3:prefix": "c"},
        True,
    ),
    (
        "StringEqualsIgnoreCase match",
        {"StringEqualsIgnoreCase": {"s3:prefix": "Home/"}},
        {"s3:prefix": "hOME/"},
        True,
    ),
    (
        "StringEqualsIgnoreCase mismatch",
        {"StringEqualsIgnoreCase": {"s3:prefix": "home"}},
        {"s3:prefix": "hom"},
        False,
    ),
    (
        "StringNotEqualsIgnoreCase equal",
        {"StringNotEqualsIgnoreCase": {"s3:prefix": "A"}},
        {"s3:prefix": "a"},
        False,
    ),
    (
        "StringNotEqualsIgnoreCase differs",
        {"StringNotEqualsIgnoreCase": {"s3:prefix": "A"}},
        {"s3:prefix": "b"},
        True,
    ),
    ("StringLike star", {"StringLike": {"s3:prefix": "home/*"}}, {"s3:prefix": "home/alice/x"}, True),
    ("StringLike question mark", {"StringLike": {"s3:prefix": "v?"}}, {"s3:prefix": "v1"}, True),
    (
        "StringLike question mark is one char",
        {"StringLike": {"s3:prefix": "v?"}},
        {"s3:prefix": "v10"},
        False,
    ),
    ("StringLike mismatch", {"StringLike": {"s3:prefix": "home/*"}}, {"s3:prefix": "etc/passwd"}, False),
    ("StringNotLike outside", {"StringNotLike": {"s3:prefix": "home/*"}}, {"s3:prefix": "etc/"}, True),
    ("StringNotLike inside", {"StringNotLike": {"s3:prefix": "home/*"}}, {"s3:prefix": "home/a"}, False),
    # Numeric
    ("NumericEquals match", {"NumericEquals": {"s3:max-keys": "10"}}, {"s3:max-keys": 10}, True),
    ("NumericEquals decimal forms", {"NumericEquals": {"s3:max-keys": 10}}, {"s3:max-keys": "10.0"}, True),
    ("NumericEquals mismatch", {"NumericEquals": {"s3:max-keys": "10"}}, {"s3:max-keys": "11"}, False),
    (
        "NumericEquals non-numeric request",
        {"NumericEquals": {"s3:max-keys": "10"}},
        {"s3:max-keys": "ten"},
        False,
    ),
    ("NumericNotEquals differs", {"NumericNotEquals": {"s3:max-keys": "10"}}, {"s3:max-keys": "9"}, True),
    ("NumericNotEquals equal", {"NumericNotEquals": {"s3:max-keys": "10"}}, {"s3:max-keys": "10"}, False),
    ("NumericLessThan yes", {"NumericLessThan": {"s3:max-keys": "10"}}, {"s3:max-keys": "9"}, True),
    ("NumericLessThan equal is no", {"NumericLessThan": {"s3:max-keys": "10"}}, {"s3:max-keys": "10"}, False),
    (
        "NumericLessThanEquals equal",
        {"NumericLessThanEquals": {"s3:max-keys": "10"}},
        {"s3:max-keys": "10"},
        True,
    ),
    (
        "NumericLessThanEquals above",
        {"NumericLessThanEquals": {"s3:max-keys": "10"}},
        {"s3:max-keys": "11"},
        False,
    ),
    ("NumericGreaterThan yes", {"NumericGreaterThan": {"s3:max-keys": "10"}}, {"s3:max-keys": "10.5"}, True),
    ("NumericGreaterThan no", {"NumericGreaterThan": {"s3:max-keys": "10"}}, {"s3:max-keys": "-3"}, False),
    (
        "NumericGreaterThanEquals equal",
        {"NumericGreaterThanEquals": {"s3:max-keys": "10"}},
        {"s3:max-keys": 10},
        True,
    ),
    (
        "NumericGreaterThanEquals below",
        {"NumericGreaterThanEquals": {"s3:max-keys": "10"}},
        {"s3:max-keys": 9},
        False,
    ),
    # Dates: ISO 8601 and epoch seconds on either side
    ("DateEquals ISO", {"DateEquals": {"aws:CurrentTime": "2024-06-01T12:00:00Z"}}, {}, True),
    ("DateEquals epoch vs ISO", {"DateEquals": {"aws:CurrentTime": str(EPOCH)}}, {}, True),
    ("DateEquals offset form", {"DateEquals": {"aws:CurrentTime": "2024-06-01T14:00:00+02:00"}}, {}, True),
    ("DateEquals mismatch", {"DateEquals": {"aws:CurrentTime": "2024-06-01T12:00:01Z"}}, {}, False),
    ("DateNotEquals differs", {"DateNotEquals": {"aws:CurrentTime": "2020-01-01"}}, {}, True),
    ("DateNotEquals equal", {"DateNotEquals": {"aws:EpochTime": "2024-06-01T12:00:00Z"}}, {}, False),
    ("DateLessThan before deadline", {"DateLessThan": {"aws:CurrentTime": "2025-01-01T00:00:00Z"}}, {}, True),
    ("DateLessThan after deadline", {"DateLessThan": {"aws:CurrentTime": "2024-01-01T00:00:00Z"}}, {}, False),
    ("DateLessThanEquals equal", {"DateLessThanEquals": {"aws:EpochTime": str(EPOCH)}}, {}, True),
    ("DateLessThanEquals after", {"DateLessThanEquals": {"aws:EpochTime": str(EPOCH - 1)}}, {}, False),
    ("DateGreaterThan after start", {"DateGreaterThan": {"aws:CurrentTime": "2024-06-01"}}, {}, True),
    ("DateGreaterThan before start", {"DateGreaterThan": {"aws:CurrentTime": "2024-06-02"}}, {}, False),
    (
        "DateGreaterThanEquals equal",
        {"DateGreaterThanEquals": {"aws:CurrentTime": "2024-06-01T12:00:00Z"}},
        {},
        True,
    ),
    (
        "DateGreaterThanEquals before",
        {"DateGreaterThanEquals": {"aws:CurrentTime": "2030-01-01T00:00:00Z"}},
        {},
        False,
    ),
    # Bool, Binary
    ("Bool true", {"Bool": {"aws:SecureTransport": "true"}}, {"aws:SecureTransport": True}, True),
    (
        "Bool JSON false literal",
        {"Bool": {"aws:SecureTransport": False}},
        {"aws:SecureTransport": False},
        True,
    ),
    ("Bool mismatch", {"Bool": {"aws:SecureTransport": "true"}}, {"aws:SecureTransport": False}, False),
    (
        "Bool case-insensitive value",
        {"Bool": {"aws:SecureTransport": "TRUE"}},
        {"aws:SecureTransport": "true"},
        True,
    ),
    ("Bool missing key", {"Bool": {"aws:SecureTransport": "false"}}, {}, False),
    ("BinaryEquals match", {"BinaryEquals": {"s3:x-blob": BLOB}}, {"s3:x-blob": BLOB}, True),
    ("BinaryEquals mismatch", {"BinaryEquals": {"s3:x-blob": BLOB}}, {"s3:x-blob": "AAAA"}, False),
    # IP addresses
    (
        "IpAddress in v4 CIDR",
        {"IpAddress": {"aws:SourceIp": "203.0.113.0/24"}},
        {"aws:SourceIp": "203.0.113.9"},
        True,
    ),
    (
        "IpAddress outside v4 CIDR",
        {"IpAddress": {"aws:SourceIp": "203.0.113.0/24"}},
        {"aws:SourceIp": "10.0.0.1"},
        False,
    ),
    (
        "IpAddress single address",
        {"IpAddress": {"aws:SourceIp": "10.1.2.3"}},
        {"aws:SourceIp": "10.1.2.3"},
        True,
    ),
    (
        "IpAddress v6 CIDR",
        {"IpAddress": {"aws:SourceIp": "2001:db8::/32"}},
        {"aws:SourceIp": "2001:db8::1"},
        True,
    ),
    (
        "IpAddress v4 rule vs v6 caller",
        {"IpAddress": {"aws:SourceIp": "0.0.0.0/0"}},
        {"aws:SourceIp": "::1"},
        False,
    ),
    (
        "IpAddress any of list",
        {"IpAddress": {"aws:SourceIp": ["10.0.0.0/8", "::1/128"]}},
        {"aws:SourceIp": "::1"},
        True,
    ),
    (
        "NotIpAddress outside",
        {"NotIpAddress": {"aws:SourceIp": "10.0.0.0/8"}},
        {"aws:SourceIp": "192.0.2.1"},
        True,
    ),
    (
        "NotIpAddress inside",
        {"NotIpAddress": {"aws:SourceIp": "10.0.0.0/8"}},
        {"aws:SourceIp": "10.9.9.9"},
        False,
    ),
    # ARN operators (component-wise)
    (
        "ArnEquals exact",
        {"ArnEquals": {"aws:SourceArn": "arn:aws:workmail:us-east-1:111122223333:organization/m-1"}},
        {"aws:SourceArn": "arn:aws:workmail:us-east-1:111122223333:organization/m-1"},
        True,
    ),
    (
        "ArnEquals different account",
        {"ArnEquals": {"aws:SourceArn": "arn:aws:workmail:us-east-1:111122223333:organization/m-1"}},
        {"aws:SourceArn": "arn:aws:workmail:us-east-1:444455556666:organization/m-1"},
        False,
    ),
    (
        "ArnLike wildcard region and resource",
        {"ArnLike": {"aws:SourceArn": "arn:aws:workmail:*:111122223333:organization/*"}},
        {"aws:SourceArn": "arn:aws:workmail:eu-west-1:111122223333:organization/m-2"},
        True,
    ),
    (
        "ArnLike star stays within one component",
        {"ArnLike": {"aws:SourceArn": "arn:aws:workmail:*:organization/*"}},
        {"aws:SourceArn": "arn:aws:workmail:eu-west-1:111122223333:organization/m-2"},
        False,
    ),
    (
        "ArnLike non-ARN request value",
        {"ArnLike": {"aws:SourceArn": "arn:aws:s3:::*"}},
        {"aws:SourceArn": "x"},
        False,
    ),
    (
        "ArnNotEquals other",
        {"ArnNotEquals": {"aws:PrincipalArn": "arn:aws:iam::111122223333:user/bob"}},
        {},
        True,
    ),
    (
        "ArnNotEquals same",
        {"ArnNotEquals": {"aws:PrincipalArn": "arn:aws:iam::111122223333:user/alice"}},
        {},
        False,
    ),
    ("ArnNotLike outside", {"ArnNotLike": {"aws:PrincipalArn": "arn:aws:iam::*:role/*"}}, {}, True),
    ("ArnNotLike inside", {"ArnNotLike": {"aws:PrincipalArn": "arn:aws:iam::*:user/*"}}, {}, False),
    # Null
    ("Null true and key absent", {"Null": {"aws:TokenIssueTime": "true"}}, {}, True),
    (
        "Null true but key present",
        {"Null": {"aws:TokenIssueTime": "true"}},
        {"aws:TokenIssueTime": "x"},
        False,
    ),
    ("Null false and key present", {"Null": {"s3:prefix": "false"}}, {"s3:prefix": ""}, True),
    ("Null false but key absent", {"Null": {"s3:prefix": "false"}}, {}, False),
    # IfExists
    ("IfExists missing key is true", {"StringEqualsIfExists": {"s3:prefix": "a"}}, {}, True),
    ("IfExists present and matching", {"StringEqualsIfExists": {"s3:prefix": "a"}}, {"s3:prefix": "a"}, True),
    (
        "IfExists present not matching",
        {"StringEqualsIfExists": {"s3:prefix": "a"}},
        {"s3:prefix": "b"},
        False,
    ),
    ("NumericLessThanIfExists missing", {"NumericLessThanIfExists": {"s3:max-keys": "5"}}, {}, True),
    (
        "NumericLessThanIfExists too big",
        {"NumericLessThanIfExists": {"s3:max-keys": "5"}},
        {"s3:max-keys": 6},
        False,
    ),
    ("ArnLikeIfExists missing", {"ArnLikeIfExists": {"aws:SourceArn": "arn:aws:s3:::b"}}, {}, True),
    (
        "BoolIfExists present false",
        {"BoolIfExists": {"aws:MultiFactorAuthPresent": "true"}},
        {"aws:MultiFactorAuthPresent": False},
        False,
    ),
    # Set qualifiers on a multi-valued key
    (
        "ForAnyValue one matches",
        {"ForAnyValue:StringEquals": {"kms:EncryptionContextKeys": ["aws:s3:arn", "x"]}},
        {"kms:EncryptionContextKeys": ["aws:s3:arn", "other"]},
        True,
    ),
    (
        "ForAnyValue none matches",
        {"ForAnyValue:StringEquals": {"kms:EncryptionContextKeys": "x"}},
        {"kms:EncryptionContextKeys": ["aws:s3:arn"]},
        False,
    ),
    (
        "ForAnyValue missing key is false",
        {"ForAnyValue:StringEquals": {"kms:EncryptionContextKeys": "x"}},
        {},
        False,
    ),
    (
        "ForAnyValue IfExists missing key is true",
        {"ForAnyValue:StringEqualsIfExists": {"kms:EncryptionContextKeys": "x"}},
        {},
        True,
    ),
    (
        "ForAllValues all within set",
        {"ForAllValues:StringEquals": {"kms:EncryptionContextKeys": ["aws:s3:arn", "dept"]}},
        {"kms:EncryptionContextKeys": ["aws:s3:arn"]},
        True,
    ),
    (
        "ForAllValues one outside set",
        {"ForAllValues:StringEquals": {"kms:EncryptionContextKeys": ["aws:s3:arn"]}},
        {"kms:EncryptionContextKeys": ["aws:s3:arn", "dept"]},
        False,
    ),
    (
        "ForAllValues missing key is true",
        {"ForAllValues:StringEquals": {"kms:EncryptionContextKeys": "x"}},
        {},
        True,
    ),
    (
        "ForAllValues empty set is true",
        {"ForAllValues:StringLike": {"kms:EncryptionContextKeys": "aws:*"}},
        {"kms:EncryptionContextKeys": []},
        True,
    ),
    (
        "ForAllValues:StringNotEquals none forbidden",
        {"ForAllValues:StringNotEquals": {"aws:TagKeys": ["secret"]}},
        {"aws:TagKeys": ["a", "b"]},
        True,
    ),
    (
        "ForAllValues:StringNotEquals one forbidden",
        {"ForAllValues:StringNotEquals": {"aws:TagKeys": ["secret"]}},
        {"aws:TagKeys": ["a", "secret"]},
        False,
    ),
    (
        "ForAnyValue:StringNotLike some outside",
        {"ForAnyValue:StringNotLike": {"aws:TagKeys": "team*"}},
        {"aws:TagKeys": ["team-a", "cost"]},
        True,
    ),
    (
        "ForAnyValue negated missing key is false",
        {"ForAnyValue:StringNotLike": {"aws:TagKeys": "t*"}},
        {},
        False,
    ),
    (
        "unqualified operator on multi-valued key: any value",
        {"StringEquals": {"aws:TagKeys": "b"}},
        {"aws:TagKeys": ["a", "b"]},
        True,
    ),
    # Combination rules
    (
        "two keys ANDed, both hold",
        {"StringEquals": {"s3:prefix": "a", "s3:delimiter": "/"}},
        {"s3:prefix": "a", "s3:delimiter": "/"},
        True,
    ),
    (
        "two keys ANDed, one fails",
        {"StringEquals": {"s3:prefix": "a", "s3:delimiter": "/"}},
        {"s3:prefix": "a", "s3:delimiter": "|"},
        False,
    ),
    (
        "two operators ANDed",
        {"StringEquals": {"s3:prefix": "a"}, "Bool": {"aws:SecureTransport": "true"}},
        {"s3:prefix": "a", "aws:SecureTransport": False},
        False,
    ),
    ("values ORed", {"StringEquals": {"s3:prefix": ["a", "b", "c"]}}, {"s3:prefix": "c"}, True),
    ("condition key case-insensitive", {"StringEquals": {"S3:PREFIX": "a"}}, {"s3:Prefix": "a"}, True),
    # Policy variables in condition values
    (
        "variable aws:username",
        {"StringLike": {"s3:prefix": "home/${aws:username}/*"}},
        {"s3:prefix": "home/alice/x"},
        True,
    ),
    (
        "variable other user",
        {"StringLike": {"s3:prefix": "home/${aws:username}/*"}},
        {"s3:prefix": "home/bob/x"},
        False,
    ),
    (
        "variable aws:userid",
        {"StringEquals": {"s3:prefix": "${aws:userid}"}},
        {"s3:prefix": "AIDAALICE"},
        True,
    ),
    (
        "variable aws:PrincipalAccount",
        {"StringEquals": {"s3:prefix": "${aws:PrincipalAccount}"}},
        {"s3:prefix": "111122223333"},
        True,
    ),
    (
        "variable any context key",
        {"StringEquals": {"s3:prefix": "${aws:SourceIp}"}},
        {"s3:prefix": "10.0.0.1", "aws:SourceIp": "10.0.0.1"},
        True,
    ),
    ("variable ${*} is a literal star", {"StringLike": {"s3:prefix": "a${*}"}}, {"s3:prefix": "abc"}, False),
    ("variable ${*} matches a star", {"StringLike": {"s3:prefix": "a${*}"}}, {"s3:prefix": "a*"}, True),
    ("variable ${?} and ${$}", {"StringEquals": {"s3:prefix": "${?}${$}"}}, {"s3:prefix": "?$"}, True),
    (
        "variable default used",
        {"StringEquals": {"s3:prefix": "${aws:PrincipalTag/team, 'none'}"}},
        {"s3:prefix": "none"},
        True,
    ),
    (
        "variable missing no default",
        {"StringEquals": {"s3:prefix": "${aws:PrincipalTag/team}"}},
        {"s3:prefix": ""},
        False,
    ),
    (
        "variable value is literal",
        {"StringLike": {"s3:prefix": "${s3:delimiter}"}},
        {"s3:prefix": "x", "s3:delimiter": "*"},
        False,
    ),
]


@pytest.mark.parametrize(("condition", "keys", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_condition_operator(condition: dict[str, Any], keys: dict[str, Any], expected: bool) -> None:
    assert allowed(condition, keys) is expected


def test_version_2008_takes_variables_literally() -> None:
    condition = {"StringEquals": {"s3:prefix": "${aws:username}"}}
    assert allowed(condition, {"s3:prefix": "${aws:username}"}, version="2008-10-17")
    assert not allowed(condition, {"s3:prefix": "alice"}, version="2008-10-17")
    assert allowed(condition, {"s3:prefix": "alice"}, version="2012-10-17")
