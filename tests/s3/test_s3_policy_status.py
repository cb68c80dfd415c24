"""GetBucketPolicyStatus: IsPublic from the bucket policy and the public access block."""

from __future__ import annotations

import json
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.s3.support import code_of

OFF = dict.fromkeys(
    ("BlockPublicAcls", "IgnorePublicAcls", "BlockPublicPolicy", "RestrictPublicBuckets"), False
)


def _policy(bucket: str, principal: Any, condition: dict[str, Any] | None = None) -> str:
    statement = {
        "Effect": "Allow",
        "Principal": principal,
        "Action": "s3:GetObject",
        "Resource": f"arn:aws:s3:::{bucket}/*",
    }
    if condition:
        statement["Condition"] = condition
    return json.dumps({"Version": "2012-10-17", "Statement": [statement]})


def test_new_buckets_block_public_access(s3: Any, bucket: str) -> None:
    config = s3.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"]
    assert all(config[name] for name in OFF)
    with pytest.raises(ClientError) as exc:
        s3.get_bucket_policy_status(Bucket=bucket)
    assert code_of(exc) == "NoSuchBucketPolicy"
    with pytest.raises(ClientError) as exc:  # BlockPublicPolicy refuses a public policy
        s3.put_bucket_policy(Bucket=bucket, Policy=_policy(bucket, "*"))
    assert code_of(exc) == "AccessDenied"


def test_public_policy_with_block_off_is_public(s3: Any, bucket: str) -> None:
    s3.put_public_access_block(Bucket=bucket, PublicAccessBlockConfiguration=OFF)
    s3.put_bucket_policy(Bucket=bucket, Policy=_policy(bucket, "*"))
    assert s3.get_bucket_policy_status(Bucket=bucket)["PolicyStatus"]["IsPublic"] is True
    s3.put_bucket_policy(Bucket=bucket, Policy=_policy(bucket, {"AWS": "*"}))
    assert s3.get_bucket_policy_status(Bucket=bucket)["PolicyStatus"]["IsPublic"] is True
    # turning RestrictPublicBuckets on neutralises the public policy
    s3.put_public_access_block(
        Bucket=bucket, PublicAccessBlockConfiguration={**OFF, "RestrictPublicBuckets": True}
    )
    assert s3.get_bucket_policy_status(Bucket=bucket)["PolicyStatus"]["IsPublic"] is False
    s3.delete_public_access_block(Bucket=bucket)
    with pytest.raises(ClientError) as exc:
        s3.get_public_access_block(Bucket=bucket)
    assert code_of(exc) == "NoSuchPublicAccessBlockConfiguration"
    assert s3.get_bucket_policy_status(Bucket=bucket)["PolicyStatus"]["IsPublic"] is True


@pytest.mark.parametrize(
    ("principal", "condition"),
    [
        ({"AWS": "arn:aws:iam::111122223333:root"}, None),
        ({"AWS": "arn:aws:iam::444455556666:role/Other"}, None),
        ("*", {"StringEquals": {"aws:SourceAccount": "111122223333"}}),
        ("*", {"IpAddress": {"aws:SourceIp": "10.0.0.0/24"}}),
        ({"Service": "export.workmail.amazonaws.com"}, None),
    ],
)
def test_non_public_policies(s3: Any, bucket: str, principal: Any, condition: Any) -> None:
    s3.put_public_access_block(Bucket=bucket, PublicAccessBlockConfiguration=OFF)
    s3.put_bucket_policy(Bucket=bucket, Policy=_policy(bucket, principal, condition))
    assert s3.get_bucket_policy_status(Bucket=bucket)["PolicyStatus"]["IsPublic"] is False


def test_cli_policy_status(server: Any, s3: Any, bucket: str) -> None:
    s3.put_public_access_block(Bucket=bucket, PublicAccessBlockConfiguration=OFF)
    s3.put_bucket_policy(Bucket=bucket, Policy=_policy(bucket, "*"))
    assert (
        server.aws("s3api", "get-bucket-policy-status", "--bucket", bucket)["PolicyStatus"]["IsPublic"]
        is True
    )
