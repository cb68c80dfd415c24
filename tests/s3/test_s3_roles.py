"""Acceptance: a role whose policy is the AWS example (WorkMail export) policy, through STS.

It may PutObject and multipart-upload under the prefix with SSE-KMS; it is denied outside the
prefix (the KMS condition on ``kms:EncryptionContext:aws:s3:arn``), with another key, and without
the KMS permissions; a principal without ``kms:Decrypt`` gets AccessDenied on GetObject.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.s3.support import code_of
from tests.support.mailcrate_server import ACCOUNT_ID, MailcrateServer

PREFIX = "S3-PREFIX"


def example_policy(bucket: str, key_arn: str, region: str = "us-east-1") -> str:
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Action": ["s3:AbortMultipartUpload", "s3:PutObject", "s3:GetBucketPolicyStatus"],
                    "Effect": "Allow",
                    "Resource": [f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/*"],
                },
                {
                    "Action": ["kms:Decrypt", "kms:GenerateDataKey"],
                    "Effect": "Allow",
                    "Resource": [key_arn],
                    "Condition": {
                        "StringEquals": {"kms:ViaService": f"s3.{region}.amazonaws.com"},
                        "StringLike": {
                            "kms:EncryptionContext:aws:s3:arn": f"arn:aws:s3:::{bucket}/{PREFIX}*"
                        },
                    },
                },
            ],
        }
    )


def _role_client(server: MailcrateServer, name: str, policy: str) -> Any:
    iam, sts = server.client("iam"), server.client("sts")
    trust = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT_ID}:root"},
                "Action": "sts:AssumeRole",
            }
        ],
    }
    role = iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(trust))["Role"]
    iam.put_role_policy(RoleName=name, PolicyName="export", PolicyDocument=policy)
    creds = sts.assume_role(RoleArn=role["Arn"], RoleSessionName="export")["Credentials"]
    return server.client(
        "s3",
        access_key_id=creds["AccessKeyId"],
        secret_access_key=creds["SecretAccessKey"],
        session_token=creds["SessionToken"],
    )


@pytest.fixture(scope="module")
def setup(server: MailcrateServer, s3: Any, kms: Any) -> dict[str, Any]:
    key = kms.create_key()["KeyMetadata"]["Arn"]
    other_key = kms.create_key()["KeyMetadata"]["Arn"]
    s3.create_bucket(Bucket="role-exports")
    role_s3 = _role_client(server, "ExportRole", example_policy("role-exports", key))
    no_kms = json.loads(example_policy("role-exports", key))
    no_kms["Statement"] = no_kms["Statement"][:1]
    no_kms_s3 = _role_client(server, "ExportRoleNoKms", json.dumps(no_kms))
    return {"key": key, "other_key": other_key, "role": role_s3, "no_kms": no_kms_s3}


def test_put_under_prefix_with_sse_kms(setup: dict[str, Any], s3: Any) -> None:
    role = setup["role"]
    out = role.put_object(
        Bucket="role-exports",
        Key=f"{PREFIX}/job.zip",
        Body=b"zip bytes",
        ServerSideEncryption="aws:kms",
        SSEKMSKeyId=setup["key"],
    )
    assert out["SSEKMSKeyId"] == setup["key"]
    assert s3.get_object(Bucket="role-exports", Key=f"{PREFIX}/job.zip")["Body"].read() == b"zip bytes"
    assert role.get_bucket_policy_status  # the policy also grants GetBucketPolicyStatus


def test_multipart_under_prefix(setup: dict[str, Any], s3: Any) -> None:
    role = setup["role"]
    key = f"{PREFIX}/multi.zip"
    upload = role.create_multipart_upload(
        Bucket="role-exports", Key=key, ServerSideEncryption="aws:kms", SSEKMSKeyId=setup["key"]
    )["UploadId"]
    part1 = role.upload_part(
        Bucket="role-exports", Key=key, UploadId=upload, PartNumber=1, Body=b"a" * (5 << 20)
    )
    part2 = role.upload_part(Bucket="role-exports", Key=key, UploadId=upload, PartNumber=2, Body=b"b")
    role.complete_multipart_upload(
        Bucket="role-exports",
        Key=key,
        UploadId=upload,
        MultipartUpload={
            "Parts": [{"PartNumber": 1, "ETag": part1["ETag"]}, {"PartNumber": 2, "ETag": part2["ETag"]}]
        },
    )
    assert s3.head_object(Bucket="role-exports", Key=key)["ContentLength"] == (5 << 20) + 1
    aborted = role.create_multipart_upload(
        Bucket="role-exports", Key=key, ServerSideEncryption="aws:kms", SSEKMSKeyId=setup["key"]
    )["UploadId"]
    role.abort_multipart_upload(Bucket="role-exports", Key=key, UploadId=aborted)


@pytest.mark.parametrize(
    ("key", "which_key"),
    [("outside/job.zip", "key"), (f"{PREFIX}/job.zip", "other_key")],
)
def test_denied_outside_prefix_or_with_another_key(setup: dict[str, Any], key: str, which_key: str) -> None:
    role = setup["role"]
    with pytest.raises(ClientError) as exc:
        role.put_object(
            Bucket="role-exports",
            Key=key,
            Body=b"x",
            ServerSideEncryption="aws:kms",
            SSEKMSKeyId=setup[which_key],
        )
    assert code_of(exc) == "AccessDenied"
    with pytest.raises(ClientError) as exc:
        role.create_multipart_upload(
            Bucket="role-exports", Key=key, ServerSideEncryption="aws:kms", SSEKMSKeyId=setup[which_key]
        )
    assert code_of(exc) == "AccessDenied"


def test_denied_without_kms_permissions(setup: dict[str, Any]) -> None:
    with pytest.raises(ClientError) as exc:
        setup["no_kms"].put_object(
            Bucket="role-exports",
            Key=f"{PREFIX}/x.zip",
            Body=b"x",
            ServerSideEncryption="aws:kms",
            SSEKMSKeyId=setup["key"],
        )
    assert code_of(exc) == "AccessDenied"


def test_get_needs_kms_decrypt(server: MailcrateServer, setup: dict[str, Any], s3: Any) -> None:
    s3.put_object(
        Bucket="role-exports",
        Key=f"{PREFIX}/read-me",
        Body=b"secret",
        ServerSideEncryption="aws:kms",
        SSEKMSKeyId=setup["key"],
    )
    bucket = "role-exports"
    reader_policy = json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {"Effect": "Allow", "Action": "s3:GetObject", "Resource": f"arn:aws:s3:::{bucket}/*"}
            ],
        }
    )
    reader = _role_client(server, "ReaderWithoutKms", reader_policy)
    with pytest.raises(ClientError) as exc:
        reader.get_object(Bucket=bucket, Key=f"{PREFIX}/read-me")
    assert code_of(exc) == "AccessDenied"
    s3.put_object(Bucket=bucket, Key="plain-sse-s3", Body=b"readable")
    assert reader.get_object(Bucket=bucket, Key="plain-sse-s3")["Body"].read() == b"readable"
    with_kms = json.loads(reader_policy)
    with_kms["Statement"].append({"Effect": "Allow", "Action": "kms:Decrypt", "Resource": setup["key"]})
    full = _role_client(server, "ReaderWithKms", json.dumps(with_kms))
    assert full.get_object(Bucket=bucket, Key=f"{PREFIX}/read-me")["Body"].read() == b"secret"
