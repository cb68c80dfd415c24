"""Decisions for whole policies: effects, actions, resources, principals, variables, and the
two documents of the WorkMail mailbox-export procedure."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from mailcrate.policy import (
    Decision,
    RequestContext,
    RequestPrincipal,
    authorize,
    evaluate_identity_policies,
    evaluate_resource_policy,
    parse_identity_policy,
    parse_resource_policy,
    parse_trust_policy,
)

ACCOUNT = "111122223333"
OTHER = "444455556666"
NOW = datetime(2024, 6, 1, 12, 0, 0, tzinfo=UTC)
ALICE = RequestPrincipal.user(f"arn:aws:iam::{ACCOUNT}:user/alice", "AIDAALICE")
BOB = RequestPrincipal.user(f"arn:aws:iam::{ACCOUNT}:user/bob", "AIDABOB")
MALLORY = RequestPrincipal.user(f"arn:aws:iam::{OTHER}:user/mallory", "AIDAMALLORY")
ROOT = RequestPrincipal.root(ACCOUNT)
SESSION = RequestPrincipal.assumed_role(
    f"arn:aws:sts::{ACCOUNT}:assumed-role/ExportRole/job-1",
    role_arn=f"arn:aws:iam::{ACCOUNT}:role/service/ExportRole",
    role_id="AROAEXPORT",
)
EXPORT_SERVICE = RequestPrincipal.for_service("export.workmail.amazonaws.com")
OTHER_SERVICE = RequestPrincipal.for_service("lambda.amazonaws.com")
FEDERATED = RequestPrincipal.federated(f"arn:aws:iam::{ACCOUNT}:saml-provider/corp")
ANONYMOUS = RequestPrincipal.anonymous()

ALLOW = Decision.ALLOW
DENY = Decision.EXPLICIT_DENY
IMPLICIT = Decision.IMPLICIT_DENY


def stmt(effect: str = "Allow", action: Any = "s3:GetObject", resource: Any = "*", **extra: Any) -> dict:
    statement: dict[str, Any] = {"Effect": effect, **extra}
    if action is not None:
        statement["Action"] = action
    if resource is not None:
        statement["Resource"] = resource
    return statement


def ctx(action: str, resource: Any, principal: RequestPrincipal = ALICE, **keys: Any) -> RequestContext:
    return RequestContext.build(
        action, resource, principal, {k.replace("__", ":"): v for k, v in keys.items()}, now=NOW
    )


# -- identity policies ------------------------------------------------------------------------

IDENTITY_CASES: list[tuple[str, list[dict], RequestContext, Decision]] = [
    ("allow exact action", [stmt()], ctx("s3:GetObject", "arn:aws:s3:::b/k"), ALLOW),
    ("action not listed", [stmt()], ctx("s3:PutObject", "arn:aws:s3:::b/k"), IMPLICIT),
    (
        "action case-insensitive",
        [stmt(action="S3:getobject")],
        ctx("s3:GetObject", "arn:aws:s3:::b/k"),
        ALLOW,
    ),
    ("service wildcard", [stmt(action="s3:*")], ctx("s3:DeleteBucket", "arn:aws:s3:::b"), ALLOW),
    (
        "service wildcard other service",
        [stmt(action="s3:*")],
        ctx("kms:Decrypt", "arn:aws:kms:r:1:key/k"),
        IMPLICIT,
    ),
    ("full wildcard action", [stmt(action="*")], ctx("iam:CreateUser", "arn:aws:iam::1:user/x"), ALLOW),
    (
        "prefix wildcard action",
        [stmt(action="s3:Get*")],
        ctx("s3:GetBucketPolicyStatus", "arn:aws:s3:::b"),
        ALLOW,
    ),
    ("prefix wildcard miss", [stmt(action="s3:Get*")], ctx("s3:PutObject", "arn:aws:s3:::b/k"), IMPLICIT),
    ("? wildcard action", [stmt(action="kms:?ecrypt")], ctx("kms:Decrypt", "arn:aws:kms:r:1:key/k"), ALLOW),
    ("resource exact", [stmt(resource="arn:aws:s3:::b/k")], ctx("s3:GetObject", "arn:aws:s3:::b/k"), ALLOW),
    (
        "resource case-sensitive",
        [stmt(resource="arn:aws:s3:::B/k")],
        ctx("s3:GetObject", "arn:aws:s3:::b/k"),
        IMPLICIT,
    ),
    (
        "resource wildcard",
        [stmt(resource="arn:aws:s3:::b/*")],
        ctx("s3:GetObject", "arn:aws:s3:::b/x/y:z"),
        ALLOW,
    ),
    (
        "bucket/* is not bucket",
        [stmt(resource="arn:aws:s3:::b/*")],
        ctx("s3:ListBucket", "arn:aws:s3:::b"),
        IMPLICIT,
    ),
    (
        "resource ? wildcard",
        [stmt(resource="arn:aws:s3:::b?")],
        ctx("s3:GetObject", "arn:aws:s3:::b1"),
        ALLOW,
    ),
    (
        "resource region wildcard",
        [stmt(action="kms:*", resource=f"arn:aws:kms:*:{ACCOUNT}:key/*")],
        ctx("kms:Decrypt", f"arn:aws:kms:eu-west-1:{ACCOUNT}:key/k"),
        ALLOW,
    ),
    (
        "resource other account",
        [stmt(action="kms:*", resource=f"arn:aws:kms:*:{ACCOUNT}:key/*")],
        ctx("kms:Decrypt", f"arn:aws:kms:eu-west-1:{OTHER}:key/k"),
        IMPLICIT,
    ),
    (
        "explicit deny beats allow",
        [stmt(action="s3:*"), stmt("Deny")],
        ctx("s3:GetObject", "arn:aws:s3:::b/k"),
        DENY,
    ),
    (
        "deny on other action leaves allow",
        [stmt(action="s3:*"), stmt("Deny", action="s3:DeleteObject")],
        ctx("s3:GetObject", "arn:aws:s3:::b/k"),
        ALLOW,
    ),
    ("deny alone is explicit", [stmt("Deny")], ctx("s3:GetObject", "arn:aws:s3:::b/k"), DENY),
    (
        "NotAction allows the rest",
        [stmt(action=None, NotAction="iam:*")],
        ctx("s3:GetObject", "arn:aws:s3:::b/k"),
        ALLOW,
    ),
    (
        "NotAction excludes listed",
        [stmt(action=None, NotAction=["iam:*", "s3:Get*"])],
        ctx("s3:GetObject", "arn:aws:s3:::b/k"),
        IMPLICIT,
    ),
    (
        "Deny NotAction denies everything else",
        [stmt(action="*"), stmt("Deny", action=None, NotAction="s3:*")],
        ctx("kms:Decrypt", "arn:aws:kms:r:1:key/k"),
        DENY,
    ),
    (
        "NotResource allows other resources",
        [stmt(resource=None, NotResource="arn:aws:s3:::secret/*")],
        ctx("s3:GetObject", "arn:aws:s3:::b/k"),
        ALLOW,
    ),
    (
        "NotResource excludes listed",
        [stmt(resource=None, NotResource="arn:aws:s3:::secret/*")],
        ctx("s3:GetObject", "arn:aws:s3:::secret/k"),
        IMPLICIT,
    ),
    (
        "no matching statement",
        [stmt(action="kms:Decrypt")],
        ctx("s3:GetObject", "arn:aws:s3:::b/k"),
        IMPLICIT,
    ),
    (
        "several resources all allowed",
        [stmt(resource=["arn:aws:s3:::a/*", "arn:aws:s3:::b/*"])],
        ctx("s3:GetObject", ["arn:aws:s3:::a/k", "arn:aws:s3:::b/k"]),
        ALLOW,
    ),
    (
        "several resources one not allowed",
        [stmt(resource="arn:aws:s3:::a/*")],
        ctx("s3:GetObject", ["arn:aws:s3:::a/k", "arn:aws:s3:::b/k"]),
        IMPLICIT,
    ),
    (
        "Resource variable own home",
        [stmt(resource="arn:aws:s3:::home/${aws:username}/*")],
        ctx("s3:GetObject", "arn:aws:s3:::home/alice/mail.zip"),
        ALLOW,
    ),
    (
        "Resource variable someone else's home",
        [stmt(resource="arn:aws:s3:::home/${aws:username}/*")],
        ctx("s3:GetObject", "arn:aws:s3:::home/bob/mail.zip"),
        IMPLICIT,
    ),
    (
        "Resource variable unresolved (role session has no username)",
        [stmt(resource="arn:aws:s3:::home/${aws:username}/*")],
        ctx("s3:GetObject", "arn:aws:s3:::home/job-1/x", SESSION),
        IMPLICIT,
    ),
    (
        "Resource variable default value",
        [stmt(resource="arn:aws:s3:::home/${aws:username, 'shared'}/*")],
        ctx("s3:GetObject", "arn:aws:s3:::home/shared/x", SESSION),
        ALLOW,
    ),
    (
        "Resource variable PrincipalAccount",
        [stmt(resource="arn:aws:s3:::bucket-${aws:PrincipalAccount}/*")],
        ctx("s3:GetObject", f"arn:aws:s3:::bucket-{ACCOUNT}/k"),
        ALLOW,
    ),
    (
        "Resource variable value cannot act as wildcard",
        [stmt(resource="arn:aws:s3:::home/${s3:prefix}")],
        ctx("s3:GetObject", "arn:aws:s3:::home/anything", s3__prefix="*"),
        IMPLICIT,
    ),
    (
        "Deny with condition that holds",
        [stmt(action="s3:*"), stmt("Deny", Condition={"Bool": {"aws:SecureTransport": "false"}})],
        ctx("s3:GetObject", "arn:aws:s3:::b/k", aws__SecureTransport=False),
        DENY,
    ),
    (
        "Deny with condition that fails",
        [stmt(action="s3:*"), stmt("Deny", Condition={"Bool": {"aws:SecureTransport": "false"}})],
        ctx("s3:GetObject", "arn:aws:s3:::b/k", aws__SecureTransport=True),
        ALLOW,
    ),
    (
        "PrincipalType condition",
        [stmt(Condition={"StringEquals": {"aws:PrincipalType": "AssumedRole"}})],
        ctx("s3:GetObject", "arn:aws:s3:::b/k", SESSION),
        ALLOW,
    ),
    (
        "PrincipalArn of a session is its role",
        [stmt(Condition={"ArnLike": {"aws:PrincipalArn": f"arn:aws:iam::{ACCOUNT}:role/service/*"}})],
        ctx("s3:GetObject", "arn:aws:s3:::b/k", SESSION),
        ALLOW,
    ),
    (
        "userid of a session is ROLEID:session",
        [stmt(Condition={"StringLike": {"aws:userid": "AROAEXPORT:*"}})],
        ctx("s3:GetObject", "arn:aws:s3:::b/k", SESSION),
        ALLOW,
    ),
]


@pytest.mark.parametrize(
    ("statements", "request_ctx", "expected"),
    [c[1:] for c in IDENTITY_CASES],
    ids=[c[0] for c in IDENTITY_CASES],
)
def test_identity_policy(statements: list[dict], request_ctx: RequestContext, expected: Decision) -> None:
    policy = parse_identity_policy({"Version": "2012-10-17", "Statement": statements})
    assert evaluate_identity_policies([policy], request_ctx) is expected


def test_deny_in_one_policy_beats_allow_in_another() -> None:
    allow = parse_identity_policy({"Version": "2012-10-17", "Statement": [stmt(action="s3:*")]})
    deny = parse_identity_policy({"Version": "2012-10-17", "Statement": [stmt("Deny", action="s3:Get*")]})
    request = ctx("s3:GetObject", "arn:aws:s3:::b/k")
    assert evaluate_identity_policies([allow, deny], request) is DENY
    assert evaluate_identity_policies([allow], request) is ALLOW
    assert evaluate_identity_policies([], request) is IMPLICIT


# -- principals in resource policies ---------------------------------------------------------

ROLE = f"arn:aws:iam::{ACCOUNT}:role/service/ExportRole"
PRINCIPAL_CASES: list[tuple[str, Any, RequestPrincipal, Decision]] = [
    ("star allows any user", "*", MALLORY, ALLOW),
    ("star allows anonymous", "*", ANONYMOUS, ALLOW),
    ("star allows a service", "*", OTHER_SERVICE, ALLOW),
    ("AWS star allows any user", {"AWS": "*"}, MALLORY, ALLOW),
    ("AWS star is not a service", {"AWS": "*"}, OTHER_SERVICE, IMPLICIT),
    ("account id allows its users", {"AWS": ACCOUNT}, BOB, ALLOW),
    ("account id allows its sessions", {"AWS": ACCOUNT}, SESSION, ALLOW),
    ("account id rejects other account", {"AWS": ACCOUNT}, MALLORY, IMPLICIT),
    ("account id rejects anonymous", {"AWS": ACCOUNT}, ANONYMOUS, IMPLICIT),
    ("root ARN means the account", {"AWS": f"arn:aws:iam::{ACCOUNT}:root"}, ALICE, ALLOW),
    ("root ARN allows root", {"AWS": f"arn:aws:iam::{ACCOUNT}:root"}, ROOT, ALLOW),
    ("root ARN rejects other account", {"AWS": f"arn:aws:iam::{ACCOUNT}:root"}, MALLORY, IMPLICIT),
    ("user ARN exact", {"AWS": f"arn:aws:iam::{ACCOUNT}:user/alice"}, ALICE, ALLOW),
    ("user ARN other user", {"AWS": f"arn:aws:iam::{ACCOUNT}:user/alice"}, BOB, IMPLICIT),
    (
        "user ARN in list",
        {"AWS": [f"arn:aws:iam::{ACCOUNT}:user/x", f"arn:aws:iam::{ACCOUNT}:user/bob"]},
        BOB,
        ALLOW,
    ),
    ("role ARN matches its session", {"AWS": ROLE}, SESSION, ALLOW),
    ("role ARN is not a user", {"AWS": ROLE}, ALICE, IMPLICIT),
    ("session ARN exact", {"AWS": f"arn:aws:sts::{ACCOUNT}:assumed-role/ExportRole/job-1"}, SESSION, ALLOW),
    (
        "session ARN other session",
        {"AWS": f"arn:aws:sts::{ACCOUNT}:assumed-role/ExportRole/job-2"},
        SESSION,
        IMPLICIT,
    ),
    ("service principal string", {"Service": "export.workmail.amazonaws.com"}, EXPORT_SERVICE, ALLOW),
    (
        "service principal list",
        {"Service": ["s3.amazonaws.com", "export.workmail.amazonaws.com"]},
        EXPORT_SERVICE,
        ALLOW,
    ),
    ("another service principal", {"Service": "export.workmail.amazonaws.com"}, OTHER_SERVICE, IMPLICIT),
    ("service principal is not a user", {"Service": "export.workmail.amazonaws.com"}, ALICE, IMPLICIT),
    ("federated provider", {"Federated": f"arn:aws:iam::{ACCOUNT}:saml-provider/corp"}, FEDERATED, ALLOW),
    ("federated other provider", {"Federated": "accounts.google.com"}, FEDERATED, IMPLICIT),
    ("mixed principal types", {"AWS": OTHER, "Service": "lambda.amazonaws.com"}, OTHER_SERVICE, ALLOW),
]


@pytest.mark.parametrize(
    ("principal", "caller", "expected"), [c[1:] for c in PRINCIPAL_CASES], ids=[c[0] for c in PRINCIPAL_CASES]
)
def test_resource_policy_principal(principal: Any, caller: RequestPrincipal, expected: Decision) -> None:
    policy = parse_resource_policy(
        {"Version": "2012-10-17", "Statement": [stmt(Principal=principal, resource="arn:aws:s3:::b/*")]}
    )
    assert evaluate_resource_policy(policy, ctx("s3:GetObject", "arn:aws:s3:::b/k", caller)) is expected


@pytest.mark.parametrize(
    ("caller", "expected"),
    [(ALICE, IMPLICIT), (BOB, ALLOW), (SESSION, IMPLICIT)],
    ids=["listed", "other", "role"],
)
def test_not_principal(caller: RequestPrincipal, expected: Decision) -> None:
    policy = parse_resource_policy(
        {
            "Version": "2012-10-17",
            "Statement": [stmt(NotPrincipal={"AWS": [f"arn:aws:iam::{ACCOUNT}:user/alice", ROLE]})],
        }
    )
    assert evaluate_resource_policy(policy, ctx("s3:GetObject", "arn:aws:s3:::b/k", caller)) is expected


def test_bucket_policy_deny_for_principal_beats_allow() -> None:
    policy = parse_resource_policy(
        {
            "Version": "2012-10-17",
            "Statement": [
                stmt(Principal={"AWS": ACCOUNT}, action="s3:*", resource="arn:aws:s3:::b/*"),
                stmt(
                    "Deny", Principal={"AWS": f"arn:aws:iam::{ACCOUNT}:user/bob"}, resource="arn:aws:s3:::b/*"
                ),
            ],
        },
        resource_rule="required",
    )
    assert evaluate_resource_policy(policy, ctx("s3:GetObject", "arn:aws:s3:::b/k", BOB)) is DENY
    assert evaluate_resource_policy(policy, ctx("s3:GetObject", "arn:aws:s3:::b/k", ALICE)) is ALLOW
    assert evaluate_resource_policy(None, ctx("s3:GetObject", "arn:aws:s3:::b/k", ALICE)) is IMPLICIT


@pytest.mark.parametrize(
    ("identity", "resource", "same_account", "expected"),
    [
        (ALLOW, IMPLICIT, True, ALLOW),
        (IMPLICIT, ALLOW, True, ALLOW),
        (ALLOW, IMPLICIT, False, IMPLICIT),
        (ALLOW, ALLOW, False, ALLOW),
        (ALLOW, DENY, True, DENY),
        (IMPLICIT, IMPLICIT, True, IMPLICIT),
    ],
)
def test_authorize_combines(
    identity: Decision, resource: Decision, same_account: bool, expected: Decision
) -> None:
    assert authorize(identity, resource, same_account=same_account) is expected


# -- the WorkMail mailbox-export documents ------------------------------------------------------

TRUST_POLICY = (
    '{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":'
    '"export.workmail.amazonaws.com"},"Action":"sts:AssumeRole","Condition":{"StringEquals":'
    '{"sts:ExternalId":"111122223333"}}}]}'
)
ORG_ARN = f"arn:aws:workmail:us-east-1:{ACCOUNT}:organization/m-0123456789abcdef"
TRUST_POLICY_NEW = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Principal": {"Service": "export.workmail.amazonaws.com"},
            "Action": "sts:AssumeRole",
            "Condition": {
                "StringEquals": {"sts:ExternalId": ACCOUNT, "aws:SourceAccount": ACCOUNT},
                "ArnLike": {"aws:SourceArn": f"arn:aws:workmail:us-east-1:{ACCOUNT}:organization/m-*"},
            },
        }
    ],
}
PERMISSION_POLICY = (
    '{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["s3:AbortMultipartUpload",'
    '"s3:PutObject","s3:GetBucketPolicyStatus"],"Resource":["arn:aws:s3:::BUCKET","arn:aws:s3:::BUCKET/*"]},'
    '{"Effect":"Allow","Action":["kms:Decrypt","kms:GenerateDataKey"],"Resource":['
    '"arn:aws:kms:us-east-1:111122223333:key/KEY-ID"],"Condition":{"StringEquals":{"kms:ViaService":'
    '"s3.us-east-1.amazonaws.com"},"StringLike":{"kms:EncryptionContext:aws:s3:arn":'
    '"arn:aws:s3:::BUCKET/S3-PREFIX*"}}}]}'
)
ROLE_ARN = f"arn:aws:iam::{ACCOUNT}:role/WorkMailExportRole"

TRUST_CASES: list[tuple[str, Any, RequestPrincipal, dict[str, Any], Decision]] = [
    ("correct ExternalId", TRUST_POLICY, EXPORT_SERVICE, {"sts:ExternalId": ACCOUNT}, ALLOW),
    ("wrong ExternalId", TRUST_POLICY, EXPORT_SERVICE, {"sts:ExternalId": OTHER}, IMPLICIT),
    ("missing ExternalId", TRUST_POLICY, EXPORT_SERVICE, {}, IMPLICIT),
    ("another service principal", TRUST_POLICY, OTHER_SERVICE, {"sts:ExternalId": ACCOUNT}, IMPLICIT),
    ("a user of the account", TRUST_POLICY, ALICE, {"sts:ExternalId": ACCOUNT}, IMPLICIT),
    (
        "new form, all keys right",
        TRUST_POLICY_NEW,
        EXPORT_SERVICE,
        {"sts:ExternalId": ACCOUNT, "aws:SourceAccount": ACCOUNT, "aws:SourceArn": ORG_ARN},
        ALLOW,
    ),
    (
        "new form, wrong SourceAccount",
        TRUST_POLICY_NEW,
        EXPORT_SERVICE,
        {"sts:ExternalId": ACCOUNT, "aws:SourceAccount": OTHER, "aws:SourceArn": ORG_ARN},
        IMPLICIT,
    ),
    (
        "new form, SourceArn of another account",
        TRUST_POLICY_NEW,
        EXPORT_SERVICE,
        {
            "sts:ExternalId": ACCOUNT,
            "aws:SourceAccount": ACCOUNT,
            "aws:SourceArn": ORG_ARN.replace(ACCOUNT, OTHER),
        },
        IMPLICIT,
    ),
    (
        "new form, SourceArn missing",
        TRUST_POLICY_NEW,
        EXPORT_SERVICE,
        {"sts:ExternalId": ACCOUNT, "aws:SourceAccount": ACCOUNT},
        IMPLICIT,
    ),
]


@pytest.mark.parametrize(
    ("document", "caller", "keys", "expected"), [c[1:] for c in TRUST_CASES], ids=[c[0] for c in TRUST_CASES]
)
def test_export_trust_policy(document: Any, caller: RequestPrincipal, keys: dict, expected: Decision) -> None:
    policy = parse_trust_policy(document)
    request = RequestContext.build("sts:AssumeRole", ROLE_ARN, caller, keys, now=NOW)
    assert evaluate_resource_policy(policy, request) is expected


KEY = f"arn:aws:kms:us-east-1:{ACCOUNT}:key/KEY-ID"
VIA_S3 = "s3.us-east-1.amazonaws.com"
EC_KEY = "kms:EncryptionContext:aws:s3:arn"
PERMISSION_CASES: list[tuple[str, str, Any, dict[str, Any], Decision]] = [
    ("PutObject under bucket", "s3:PutObject", "arn:aws:s3:::BUCKET/S3-PREFIX/job.zip", {}, ALLOW),
    ("AbortMultipartUpload", "s3:AbortMultipartUpload", "arn:aws:s3:::BUCKET/S3-PREFIX/job.zip", {}, ALLOW),
    ("GetBucketPolicyStatus on bucket", "s3:GetBucketPolicyStatus", "arn:aws:s3:::BUCKET", {}, ALLOW),
    ("GetObject not granted", "s3:GetObject", "arn:aws:s3:::BUCKET/S3-PREFIX/job.zip", {}, IMPLICIT),
    ("PutObject other bucket", "s3:PutObject", "arn:aws:s3:::OTHER/job.zip", {}, IMPLICIT),
    (
        "Decrypt via S3 in context",
        "kms:Decrypt",
        KEY,
        {"kms:ViaService": VIA_S3, EC_KEY: "arn:aws:s3:::BUCKET/S3-PREFIX/j.zip"},
        ALLOW,
    ),
    (
        "GenerateDataKey via S3 in context",
        "kms:GenerateDataKey",
        KEY,
        {"kms:ViaService": VIA_S3, EC_KEY: "arn:aws:s3:::BUCKET/S3-PREFIX/j.zip"},
        ALLOW,
    ),
    (
        "GenerateDataKey wrong ViaService",
        "kms:GenerateDataKey",
        KEY,
        {"kms:ViaService": "s3.eu-west-1.amazonaws.com", EC_KEY: "arn:aws:s3:::BUCKET/S3-PREFIX/j.zip"},
        IMPLICIT,
    ),
    (
        "GenerateDataKey called directly",
        "kms:GenerateDataKey",
        KEY,
        {EC_KEY: "arn:aws:s3:::BUCKET/S3-PREFIX/j"},
        IMPLICIT,
    ),
    (
        "GenerateDataKey object outside prefix",
        "kms:GenerateDataKey",
        KEY,
        {"kms:ViaService": VIA_S3, EC_KEY: "arn:aws:s3:::BUCKET/elsewhere/j.zip"},
        IMPLICIT,
    ),
    (
        "GenerateDataKey no encryption context",
        "kms:GenerateDataKey",
        KEY,
        {"kms:ViaService": VIA_S3},
        IMPLICIT,
    ),
    (
        "GenerateDataKey other key",
        "kms:GenerateDataKey",
        KEY.replace("KEY-ID", "OTHER-KEY"),
        {"kms:ViaService": VIA_S3, EC_KEY: "arn:aws:s3:::BUCKET/S3-PREFIX/j.zip"},
        IMPLICIT,
    ),
    (
        "Encrypt not granted",
        "kms:Encrypt",
        KEY,
        {"kms:ViaService": VIA_S3, EC_KEY: "arn:aws:s3:::BUCKET/S3-PREFIX/j.zip"},
        IMPLICIT,
    ),
]


@pytest.mark.parametrize(
    ("action", "resource", "keys", "expected"),
    [c[1:] for c in PERMISSION_CASES],
    ids=[c[0] for c in PERMISSION_CASES],
)
def test_export_permission_policy(action: str, resource: Any, keys: dict, expected: Decision) -> None:
    policy = parse_identity_policy(PERMISSION_POLICY)
    session = RequestPrincipal.assumed_role(f"arn:aws:sts::{ACCOUNT}:assumed-role/WorkMailExportRole/export")
    assert (
        evaluate_identity_policies([policy], RequestContext.build(action, resource, session, keys))
        is expected
    )


def test_documents_are_stored_as_written() -> None:
    assert parse_identity_policy(PERMISSION_POLICY).text == PERMISSION_POLICY
    assert parse_trust_policy(TRUST_POLICY).text == TRUST_POLICY
