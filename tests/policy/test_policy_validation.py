"""Policy documents rejected (or accepted) on write, as IAM / S3 would."""

from __future__ import annotations

import json
from typing import Any

import pytest

from mailcrate.policy import (
    MalformedPolicyError,
    parse_identity_policy,
    parse_resource_policy,
    parse_trust_policy,
)

V = "2012-10-17"
OK_STMT: dict[str, Any] = {"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"}
OK_TRUST: dict[str, Any] = {
    "Effect": "Allow",
    "Principal": {"AWS": "111122223333"},
    "Action": "sts:AssumeRole",
}


def doc(*statements: dict[str, Any], **top: Any) -> str:
    return json.dumps({"Version": V, "Statement": list(statements), **top})


def with_(base: dict[str, Any], **changes: Any) -> dict[str, Any]:
    statement = {**base, **changes}
    return {k: v for k, v in statement.items() if v is not None}


IDENTITY_MALFORMED: list[tuple[str, Any, str]] = [
    ("not JSON", "{not json", "Syntax errors in policy."),
    ("trailing garbage", doc(OK_STMT) + "x", "Syntax errors in policy."),
    ("top-level list", json.dumps([OK_STMT]), "Syntax errors in policy."),
    ("top-level string", '"policy"', "Syntax errors in policy."),
    (
        "duplicate key",
        '{"Version":"2012-10-17","Version":"2012-10-17","Statement":[]}',
        "Syntax errors in policy.",
    ),
    ("NaN constant", '{"Statement":[{"Effect":"Allow","Action":"s3:*","Resource":"*","Sid":NaN}]}', "Syntax"),
    ("bad version", doc(OK_STMT).replace(V, "2020-01-01"), "legacy parsing"),
    ("missing Statement", json.dumps({"Version": V}), "Missing required field Statement"),
    ("empty Statement list", doc(), "Syntax errors in policy."),
    ("Statement is a string", json.dumps({"Version": V, "Statement": "Allow"}), "Syntax errors in policy."),
    ("unknown top-level element", doc(OK_STMT, Extra=1), "unknown element"),
    ("unknown statement element", doc(with_(OK_STMT, Actions="s3:*")), "unknown element"),
    ("missing Effect", doc(with_(OK_STMT, Effect=None)), "Missing required field Effect"),
    ("lower-case effect", doc(with_(OK_STMT, Effect="allow")), "Invalid effect"),
    ("missing Action", doc(with_(OK_STMT, Action=None)), "Missing required field Action"),
    ("Action and NotAction", doc(with_(OK_STMT, NotAction="s3:PutObject")), "Syntax errors in policy."),
    ("action without vendor", doc(with_(OK_STMT, Action="GetObject")), "prefaced by a vendor"),
    ("action with bad characters", doc(with_(OK_STMT, Action="s3:Get Object")), "Policy has invalid action"),
    ("action empty name", doc(with_(OK_STMT, Action="s3:")), "Policy has invalid action"),
    ("action not a string", doc(with_(OK_STMT, Action=["s3:GetObject", 7])), "Syntax errors in policy."),
    ("empty action list", doc(with_(OK_STMT, Action=[])), "must contain actions"),
    ("missing Resource", doc(with_(OK_STMT, Resource=None)), "Missing required field Resource"),
    ("Resource and NotResource", doc(with_(OK_STMT, NotResource="*")), "Syntax errors in policy."),
    ("resource not an ARN", doc(with_(OK_STMT, Resource="bucket/key")), "must be in ARN format"),
    ("resource too few ARN parts", doc(with_(OK_STMT, Resource="arn:aws:s3")), "must be in ARN format"),
    ("principal in identity policy", doc(with_(OK_STMT, Principal="*")), "should not specify a principal"),
    ("NotPrincipal in identity policy", doc(with_(OK_STMT, NotPrincipal={"AWS": "*"})), "should not specify"),
    (
        "unknown condition operator",
        doc(with_(OK_STMT, Condition={"StringEqual": {"s3:prefix": "a"}})),
        "Invalid Condition type",
    ),
    (
        "Null with IfExists",
        doc(with_(OK_STMT, Condition={"NullIfExists": {"s3:prefix": "true"}})),
        "Invalid Condition type",
    ),
    ("condition not a map", doc(with_(OK_STMT, Condition=["StringEquals"])), "Syntax errors in policy."),
    (
        "condition block not a map",
        doc(with_(OK_STMT, Condition={"StringEquals": "a"})),
        "Syntax errors in policy.",
    ),
    (
        "condition key without vendor",
        doc(with_(OK_STMT, Condition={"StringEquals": {"prefix": "a"}})),
        "prefaced by a vendor",
    ),
    (
        "condition value object",
        doc(with_(OK_STMT, Condition={"StringEquals": {"s3:prefix": {"a": 1}}})),
        "Syntax",
    ),
    (
        "numeric value not a number",
        doc(with_(OK_STMT, Condition={"NumericEquals": {"s3:max-keys": "ten"}})),
        "Invalid value",
    ),
    (
        "date value not a date",
        doc(with_(OK_STMT, Condition={"DateLessThan": {"aws:CurrentTime": "soon"}})),
        "Invalid value",
    ),
    (
        "bad CIDR",
        doc(with_(OK_STMT, Condition={"IpAddress": {"aws:SourceIp": "10.0.0.0/99"}})),
        "Invalid value",
    ),
    (
        "Bool value not boolean",
        doc(with_(OK_STMT, Condition={"Bool": {"aws:SecureTransport": "yes"}})),
        "Invalid value",
    ),
    (
        "Null value not boolean",
        doc(with_(OK_STMT, Condition={"Null": {"s3:prefix": "maybe"}})),
        "Invalid value",
    ),
    ("duplicate Sids", doc(with_(OK_STMT, Sid="A"), with_(OK_STMT, Sid="A")), "must be unique"),
    ("Sid not alphanumeric", doc(with_(OK_STMT, Sid="no spaces"), with_(OK_STMT)), "alpha-numeric"),
    ("Sid not a string", doc(with_(OK_STMT, Sid=1)), "Syntax errors in policy."),
    ("statement not an object", json.dumps({"Version": V, "Statement": ["x"]}), "Syntax errors in policy."),
]


@pytest.mark.parametrize(
    ("document", "message"), [c[1:] for c in IDENTITY_MALFORMED], ids=[c[0] for c in IDENTITY_MALFORMED]
)
def test_identity_policy_rejected(document: Any, message: str) -> None:
    with pytest.raises(MalformedPolicyError) as info:
        parse_identity_policy(document)
    assert message in info.value.message


RESOURCE_MALFORMED: list[tuple[str, dict[str, Any], str]] = [
    ("missing Principal", with_(OK_TRUST, Principal=None), "Missing required field Principal"),
    ("Principal and NotPrincipal", with_(OK_TRUST, NotPrincipal="*"), "Syntax errors in policy."),
    ("unknown principal type", with_(OK_TRUST, Principal={"User": "alice"}), "Invalid principal in policy"),
    ("empty principal map", with_(OK_TRUST, Principal={}), "Invalid principal in policy"),
    ("AWS principal not an ARN", with_(OK_TRUST, Principal={"AWS": "alice"}), "Invalid principal in policy"),
    (
        "AWS principal partial wildcard",
        with_(OK_TRUST, Principal={"AWS": "arn:aws:iam::*:root"}),
        "Invalid principal",
    ),
    (
        "AWS principal short account",
        with_(OK_TRUST, Principal={"AWS": "12345"}),
        "Invalid principal in policy",
    ),
    ("AWS principal empty list", with_(OK_TRUST, Principal={"AWS": []}), "Invalid principal in policy"),
    (
        "Service principal wildcard",
        with_(OK_TRUST, Principal={"Service": "*"}),
        "Invalid principal in policy",
    ),
    (
        "Service principal not a name",
        with_(OK_TRUST, Principal={"Service": "Export WorkMail"}),
        "Invalid principal",
    ),
    ("principal lower-case star string", with_(OK_TRUST, Principal="any"), "Invalid principal in policy"),
    ("trust policy with Resource", with_(OK_TRUST, Resource="*"), "Has prohibited field Resource"),
    ("trust policy with NotResource", with_(OK_TRUST, NotResource="*"), "Has prohibited field NotResource"),
]


@pytest.mark.parametrize(
    ("statement", "message"), [c[1:] for c in RESOURCE_MALFORMED], ids=[c[0] for c in RESOURCE_MALFORMED]
)
def test_trust_policy_rejected(statement: dict[str, Any], message: str) -> None:
    with pytest.raises(MalformedPolicyError) as info:
        parse_trust_policy(doc(statement))
    assert message in info.value.message


def test_bucket_policy_requires_resource() -> None:
    with pytest.raises(MalformedPolicyError, match="Missing required field Resource"):
        parse_resource_policy(doc(OK_TRUST), resource_rule="required")


VALID_IDENTITY: list[tuple[str, Any]] = [
    ("single statement object", json.dumps({"Version": V, "Statement": OK_STMT})),
    ("no Version", json.dumps({"Statement": [OK_STMT]})),
    ("old Version", json.dumps({"Version": "2008-10-17", "Statement": [OK_STMT]})),
    ("Id element and Sids", doc(with_(OK_STMT, Sid="One"), with_(OK_STMT, Sid="Two"), Id="my-policy")),
    (
        "NotAction and NotResource",
        doc(with_(OK_STMT, Action=None, NotAction="iam:*", Resource=None, NotResource="*")),
    ),
    (
        "wildcards everywhere",
        doc(with_(OK_STMT, Action=["*", "s3:Get*", "kms:?ecrypt"], Resource="arn:aws:s3:::*/*")),
    ),
    ("dict input", {"Version": V, "Statement": [OK_STMT]}),
    ("bytes input", doc(OK_STMT).encode()),
    ("pretty-printed", json.dumps({"Version": V, "Statement": [OK_STMT]}, indent=4)),
    (
        "conditions of every kind",
        doc(
            with_(
                OK_STMT,
                Condition={
                    "ForAllValues:StringLikeIfExists": {"aws:TagKeys": ["a*", "b"]},
                    "NumericLessThan": {"s3:max-keys": 10},
                    "Bool": {"aws:SecureTransport": True},
                    "DateGreaterThan": {
                        "aws:CurrentTime": "2020-01-01T00:00:00Z",
                        "aws:EpochTime": 1577836800,
                    },
                    "IpAddress": {"aws:SourceIp": ["10.0.0.0/8", "2001:db8::/32"]},
                    "Null": {"aws:TokenIssueTime": "true"},
                    "ArnNotLikeIfExists": {"aws:SourceArn": "arn:aws:s3:::${aws:username}"},
                },
            )
        ),
    ),
]


@pytest.mark.parametrize("document", [c[1] for c in VALID_IDENTITY], ids=[c[0] for c in VALID_IDENTITY])
def test_identity_policy_accepted(document: Any) -> None:
    policy = parse_identity_policy(document)
    assert policy.statements


VALID_RESOURCE: list[tuple[str, dict[str, Any]]] = [
    ("star principal", with_(OK_TRUST, Principal="*")),
    ("AWS star", with_(OK_TRUST, Principal={"AWS": "*"})),
    ("account id", OK_TRUST),
    ("root ARN", with_(OK_TRUST, Principal={"AWS": "arn:aws:iam::111122223333:root"})),
    ("role ARN with path", with_(OK_TRUST, Principal={"AWS": "arn:aws:iam::111122223333:role/a/b/R"})),
    ("session ARN", with_(OK_TRUST, Principal={"AWS": "arn:aws:sts::111122223333:assumed-role/R/s"})),
    (
        "service list",
        with_(OK_TRUST, Principal={"Service": ["export.workmail.amazonaws.com", "s3.amazonaws.com"]}),
    ),
    (
        "federated",
        with_(
            OK_TRUST, Principal={"Federated": "accounts.google.com"}, Action="sts:AssumeRoleWithWebIdentity"
        ),
    ),
    ("NotPrincipal", with_(OK_TRUST, Principal=None, NotPrincipal={"AWS": "111122223333"}, Effect="Deny")),
    ("Sid with spaces in resource policy", with_(OK_TRUST, Sid="Allow the export service")),
]


@pytest.mark.parametrize("statement", [c[1] for c in VALID_RESOURCE], ids=[c[0] for c in VALID_RESOURCE])
def test_trust_policy_accepted(statement: dict[str, Any]) -> None:
    assert parse_trust_policy(doc(statement)).statements


def test_bucket_policy_accepted_with_resource() -> None:
    text = doc(with_(OK_TRUST, Action="s3:GetObject", Resource="arn:aws:s3:::b/*"))
    policy = parse_resource_policy(text, resource_rule="required")
    assert policy.text == text
