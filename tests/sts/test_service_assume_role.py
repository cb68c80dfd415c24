"""Acceptance: the AWS procedure's role for mailbox exports, created with the real aws CLI, then
assumed by the export service principal in-process (right, wrong and missing ExternalId, another
service, a Deny) and its permission policy's KMS conditions evaluated as S3 would ask."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from mailcrate.accounts import lookup_access_key
from mailcrate.datadir import DataDir
from mailcrate.policy import Decision
from mailcrate.protocol.errors import ServiceError
from mailcrate.services.iam import authz
from mailcrate.services.registry import service_context
from mailcrate.services.sts.sessions import AccessDenied, StsValidationError, assume_role_as_service
from tests.support.mailcrate_server import ACCOUNT_ID, MailcrateServer

ROLE = "WorkmailMailboxExportRole"
ROLE_ARN = f"arn:aws:iam::{ACCOUNT_ID}:role/{ROLE}"
BUCKET = "workmail-export-bucket"
PREFIX = "mailbox-exports"
KEY_ARN = f"arn:aws:kms:us-east-1:{ACCOUNT_ID}:key/1234abcd-12ab-34cd-56ef-1234567890ab"
SERVICE = "export.workmail.amazonaws.com"
ORG_ARN = f"arn:aws:workmail:us-east-1:{ACCOUNT_ID}:organization/m-0123456789abcdef0123456789abcdef"

# The two files exactly as the WorkMail export procedure shows them, placeholders replaced.
TRUST_POLICY = """{
    "Version": "2012-10-17",
    "Statement": [
        {
            "Sid": "",
            "Effect": "Allow",
            "Principal": {
                "Service": "export.workmail.amazonaws.com"
            },
            "Action": "sts:AssumeRole",
            "Condition": {
                "StringEquals": {
                    "sts:ExternalId": "AWS_ACCOUNT_ID"
                }
            }
        }
    ]
}
""".replace("AWS_ACCOUNT_ID", ACCOUNT_ID)

PERMISSION_POLICY = (
    """{
    "Version": "2012-10-17",
    "Statement": [
        {
            "Action": [
                "s3:AbortMultipartUpload",
                "s3:PutObject",
                "s3:GetBucketPolicyStatus"
            ],
            "Effect": "Allow",
            "Resource": [
                "arn:aws:s3:::S3_BUCKET_NAME",
                "arn:aws:s3:::S3_BUCKET_NAME/*"
            ]
        },
        {
            "Action": [
                "kms:Decrypt",
                "kms:GenerateDataKey"
            ],
            "Effect": "Allow",
            "Resource": [
                "KMS_KEY_ARN"
            ],
            "Condition": {
                "StringEquals": {
                    "kms:ViaService": "s3.AWS_REGION.amazonaws.com"
                },
                "StringLike": {
                    "kms:EncryptionContext:aws:s3:arn": "arn:aws:s3:::S3_BUCKET_NAME/S3_PREFIX*"
                }
            }
        }
    ]
}
""".replace("S3_BUCKET_NAME", BUCKET)
    .replace("KMS_KEY_ARN", KEY_ARN)
    .replace("AWS_REGION", "us-east-1")
    .replace("S3_PREFIX", PREFIX)
)


@pytest.fixture(scope="module")
def role(server: MailcrateServer, tmp_path_factory: pytest.TempPathFactory) -> str:
    """The role, made with the procedure's two commands verbatim (plus --endpoint-url)."""
    work = tmp_path_factory.mktemp("procedure")
    (work / "mailbox-export-trust-policy.json").write_text(TRUST_POLICY)
    (work / "mailbox-export-policy.json").write_text(PERMISSION_POLICY)
    created = server.aws(
        "iam",
        "create-role",
        "--role-name",
        ROLE,
        "--assume-role-policy-document",
        "file://mailbox-export-trust-policy.json",
        "--region",
        "us-east-1",
        cwd=work,
    )
    assert created["Role"]["Arn"] == ROLE_ARN
    assert created["Role"]["RoleId"].startswith("AROA")
    assert (
        server.aws(
            "iam",
            "put-role-policy",
            "--role-name",
            ROLE,
            "--policy-name",
            "MailboxExport",
            "--policy-document",
            "file://mailbox-export-policy.json",
            cwd=work,
        )
        == {}
    )
    return ROLE_ARN


@pytest.fixture(scope="module")
def data_dir(server: MailcrateServer) -> Iterator[DataDir]:
    handle = DataDir.open(server.data_dir)
    yield handle
    handle.close()


def test_get_role_and_policy_return_the_documents(server: MailcrateServer, role: str) -> None:
    got = server.aws("iam", "get-role", "--role-name", ROLE)["Role"]
    assert got["AssumeRolePolicyDocument"] == json.loads(TRUST_POLICY)
    assert got["Path"] == "/" and got["MaxSessionDuration"] == 3600
    policy = server.aws("iam", "get-role-policy", "--role-name", ROLE, "--policy-name", "MailboxExport")
    assert policy["PolicyDocument"] == json.loads(PERMISSION_POLICY)
    assert policy["RoleName"] == ROLE and policy["PolicyName"] == "MailboxExport"


def test_documents_are_url_encoded_on_the_wire(server: MailcrateServer, role: str) -> None:
    from tests.iam.support import signed_form

    response = signed_form(
        server,
        {"Action": "GetRolePolicy", "Version": "2010-05-08", "RoleName": ROLE, "PolicyName": "MailboxExport"},
    )
    assert response.status_code == 200
    assert "<PolicyDocument>%7B%0A%20%20%20%20%22Version%22%3A%20%222012-10-17%22" in response.text


def _assume(data_dir: DataDir, **overrides: object) -> dict:
    args: dict = dict(
        service=SERVICE,
        role_arn=ROLE_ARN,
        session_name="export-job-1",
        external_id=ACCOUNT_ID,
        source_account=ACCOUNT_ID,
        source_arn=ORG_ARN,
        duration_seconds=900,
    )
    args.update(overrides)
    return assume_role_as_service(service_context(data_dir), **args)


def test_export_service_assumes_the_role_with_the_right_external_id(
    server: MailcrateServer, role: str, data_dir: DataDir
) -> None:
    out = _assume(data_dir)
    creds = out["Credentials"]
    assert creds["AccessKeyId"].startswith("ASIA") and creds["SessionToken"]
    assert out["AssumedRoleUser"]["Arn"] == f"arn:aws:sts::{ACCOUNT_ID}:assumed-role/{ROLE}/export-job-1"
    sts = server.client(
        "sts",
        access_key_id=creds["AccessKeyId"],
        secret_access_key=creds["SecretAccessKey"],
        session_token=creds["SessionToken"],
    )
    me = sts.get_caller_identity()
    assert me["Arn"] == out["AssumedRoleUser"]["Arn"]
    assert me["UserId"] == out["AssumedRoleUser"]["AssumedRoleId"]
    # The token is stored only as a hash: the database never holds it.
    raw = (server.data_dir / "mailcrate.db").read_bytes()
    assert creds["SessionToken"].encode() not in raw


@pytest.mark.parametrize(
    "overrides",
    [
        {"external_id": "999988887777"},
        {"external_id": None},
        {"service": "s3.amazonaws.com"},
        {"role_arn": f"arn:aws:iam::{ACCOUNT_ID}:role/NoSuchRole"},
        {"role_arn": f"arn:aws:iam::{ACCOUNT_ID}:role/some/path/{ROLE}"},
    ],
    ids=["wrong-external-id", "missing-external-id", "other-service", "no-such-role", "wrong-path"],
)
def test_export_service_is_denied(role: str, data_dir: DataDir, overrides: dict) -> None:
    with pytest.raises(AccessDenied) as caught:
        _assume(data_dir, **overrides)
    assert caught.value.code == "AccessDenied"


def test_duration_and_names_are_checked(role: str, data_dir: DataDir) -> None:
    """The in-process AssumeRole takes the API's road: the model's constraints (900 s minimum,
    the session-name pattern) and the role's MaxSessionDuration, with the API's error code."""
    with pytest.raises(StsValidationError, match="MaxSessionDuration"):
        _assume(data_dir, duration_seconds=7200)
    for bad in ({"duration_seconds": 60}, {"session_name": "bad name"}):
        with pytest.raises(ServiceError) as caught:
            _assume(data_dir, **bad)
        assert caught.value.code == "ValidationError"


def test_deny_statement_wins(server: MailcrateServer, role: str, data_dir: DataDir) -> None:
    trust = json.loads(TRUST_POLICY)
    trust["Statement"].append(
        {
            "Effect": "Deny",
            "Principal": {"Service": SERVICE},
            "Action": "sts:AssumeRole",
            "Condition": {"StringNotEquals": {"aws:SourceArn": ORG_ARN}},
        }
    )
    iam = server.client("iam")
    iam.update_assume_role_policy(RoleName=ROLE, PolicyDocument=json.dumps(trust))
    try:
        assert _assume(data_dir)["Credentials"]  # the right organization is still let in
        with pytest.raises(AccessDenied):
            _assume(data_dir, source_arn=ORG_ARN.replace("m-0", "m-1"))
        with pytest.raises(AccessDenied):
            _assume(data_dir, source_arn=None)
    finally:
        iam.update_assume_role_policy(RoleName=ROLE, PolicyDocument=TRUST_POLICY)


@pytest.mark.parametrize(
    ("action", "resource", "context", "expected"),
    [
        ("s3:PutObject", f"arn:aws:s3:::{BUCKET}/{PREFIX}/job.zip", {}, Decision.ALLOW),
        ("s3:GetBucketPolicyStatus", f"arn:aws:s3:::{BUCKET}", {}, Decision.ALLOW),
        ("s3:GetObject", f"arn:aws:s3:::{BUCKET}/{PREFIX}/job.zip", {}, Decision.IMPLICIT_DENY),
        ("s3:PutObject", "arn:aws:s3:::other-bucket/x", {}, Decision.IMPLICIT_DENY),
        (
            "kms:GenerateDataKey",
            KEY_ARN,
            {
                "kms:ViaService": "s3.us-east-1.amazonaws.com",
                "kms:EncryptionContext:aws:s3:arn": f"arn:aws:s3:::{BUCKET}/{PREFIX}/job.zip",
            },
            Decision.ALLOW,
        ),
        (
            "kms:Decrypt",
            KEY_ARN,
            {
                "kms:ViaService": "s3.us-east-1.amazonaws.com",
                "kms:EncryptionContext:aws:s3:arn": f"arn:aws:s3:::{BUCKET}/{PREFIX}",
            },
            Decision.ALLOW,
        ),
        (
            "kms:GenerateDataKey",
            KEY_ARN,
            {
                "kms:ViaService": "s3.eu-west-1.amazonaws.com",
                "kms:EncryptionContext:aws:s3:arn": f"arn:aws:s3:::{BUCKET}/{PREFIX}/job.zip",
            },
            Decision.IMPLICIT_DENY,
        ),
        (
            "kms:GenerateDataKey",
            KEY_ARN,
            {
                "kms:ViaService": "s3.us-east-1.amazonaws.com",
                "kms:EncryptionContext:aws:s3:arn": f"arn:aws:s3:::{BUCKET}/elsewhere/job.zip",
            },
            Decision.IMPLICIT_DENY,
        ),
        ("kms:GenerateDataKey", KEY_ARN, {}, Decision.IMPLICIT_DENY),
        ("kms:Encrypt", KEY_ARN, {"kms:ViaService": "s3.us-east-1.amazonaws.com"}, Decision.IMPLICIT_DENY),
    ],
)
def test_session_permissions_follow_the_role_policy(
    role: str, data_dir: DataDir, action: str, resource: str, context: dict, expected: Decision
) -> None:
    creds = _assume(data_dir)["Credentials"]
    principal = lookup_access_key(data_dir, creds["AccessKeyId"])
    assert principal is not None and principal.kind == "session"
    assert authz.evaluate(data_dir, principal, action, resource, context) is expected


def test_direct_kms_call_by_the_session_is_denied(
    server: MailcrateServer, role: str, data_dir: DataDir
) -> None:
    """Called directly (not via S3) the session may not use a key: AccessDeniedException (json);
    the ViaService condition itself is checked above and in tests/access.

    The key must exist: KMS finds the key before it reads the key policy, so the procedure's
    example ARN (no such key) is NotFoundException whatever the caller's policies say."""
    from botocore.exceptions import ClientError

    key_arn = server.client("kms").create_key()["KeyMetadata"]["Arn"]
    creds = _assume(data_dir)["Credentials"]
    kms = server.client(
        "kms",
        access_key_id=creds["AccessKeyId"],
        secret_access_key=creds["SecretAccessKey"],
        session_token=creds["SessionToken"],
    )
    with pytest.raises(ClientError) as caught:
        kms.generate_data_key(KeyId=key_arn, KeySpec="AES_256")
    assert caught.value.response["Error"]["Code"] == "AccessDeniedException"
    with pytest.raises(ClientError) as caught:
        kms.generate_data_key(KeyId=KEY_ARN, KeySpec="AES_256")
    assert caught.value.response["Error"]["Code"] == "NotFoundException"
