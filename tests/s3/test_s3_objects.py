"""Objects through boto3: round trips, SSE headers, ranges, listing, copy, delete, KMS refusals."""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.s3.support import code_of, status_of


def test_put_get_head_default_sse_s3(s3: Any, bucket: str) -> None:
    put = s3.put_object(
        Bucket=bucket, Key="a/b.txt", Body=b"hello", ContentType="text/plain", Metadata={"who": "me"}
    )
    assert put["ETag"] == f'"{hashlib.md5(b"hello").hexdigest()}"'
    assert put["ServerSideEncryption"] == "AES256"
    got = s3.get_object(Bucket=bucket, Key="a/b.txt")
    assert got["Body"].read() == b"hello"
    assert got["ContentType"] == "text/plain" and got["Metadata"] == {"who": "me"}
    head = s3.head_object(Bucket=bucket, Key="a/b.txt")
    assert (
        head["ContentLength"] == 5
        and head["ETag"] == put["ETag"]
        and head["ServerSideEncryption"] == "AES256"
    )


def test_sse_kms_headers_and_key_forms(s3: Any, kms: Any, bucket: str, kms_key: dict[str, Any]) -> None:
    kms.create_alias(AliasName="alias/s3-tests", TargetKeyId=kms_key["KeyId"])
    for ref in (kms_key["KeyId"], kms_key["Arn"], "alias/s3-tests"):
        put = s3.put_object(
            Bucket=bucket, Key="k", Body=b"x" * 10, ServerSideEncryption="aws:kms", SSEKMSKeyId=ref
        )
        assert put["SSEKMSKeyId"] == kms_key["Arn"]
        head = s3.head_object(Bucket=bucket, Key="k")
        assert head["ServerSideEncryption"] == "aws:kms" and head["SSEKMSKeyId"] == kms_key["Arn"]
    default = s3.put_object(Bucket=bucket, Key="aws-managed", Body=b"x", ServerSideEncryption="aws:kms")
    assert kms.describe_key(KeyId="alias/aws/s3")["KeyMetadata"]["Arn"] == default["SSEKMSKeyId"]


def test_bucket_default_encryption(s3: Any, bucket: str, kms_key: dict[str, Any]) -> None:
    assert (
        s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"][0][
            "ApplyServerSideEncryptionByDefault"
        ]["SSEAlgorithm"]
        == "AES256"
    )
    s3.put_bucket_encryption(
        Bucket=bucket,
        ServerSideEncryptionConfiguration={
            "Rules": [
                {
                    "ApplyServerSideEncryptionByDefault": {
                        "SSEAlgorithm": "aws:kms",
                        "KMSMasterKeyID": kms_key["Arn"],
                    }
                }
            ]
        },
    )
    put = s3.put_object(Bucket=bucket, Key="d", Body=b"data")
    assert put["ServerSideEncryption"] == "aws:kms" and put["SSEKMSKeyId"] == kms_key["Arn"]


def test_kms_refusals_surface_as_s3_errors(s3: Any, kms: Any, bucket: str) -> None:
    asym = kms.create_key(KeySpec="RSA_2048", KeyUsage="ENCRYPT_DECRYPT")["KeyMetadata"]["Arn"]
    with pytest.raises(ClientError) as exc:
        s3.put_object(Bucket=bucket, Key="k", Body=b"x", ServerSideEncryption="aws:kms", SSEKMSKeyId=asym)
    assert code_of(exc) == "KMS.InvalidKeyUsageException"
    disabled = kms.create_key()["KeyMetadata"]["Arn"]
    s3.put_object(
        Bucket=bucket, Key="before", Body=b"x", ServerSideEncryption="aws:kms", SSEKMSKeyId=disabled
    )
    kms.disable_key(KeyId=disabled)
    with pytest.raises(ClientError) as exc:
        s3.put_object(Bucket=bucket, Key="k", Body=b"x", ServerSideEncryption="aws:kms", SSEKMSKeyId=disabled)
    assert code_of(exc) == "KMS.DisabledException"
    with pytest.raises(ClientError) as exc:
        s3.get_object(Bucket=bucket, Key="before")
    assert code_of(exc) == "KMS.DisabledException"
    with pytest.raises(ClientError) as exc:
        s3.put_object(
            Bucket=bucket, Key="k", Body=b"x", ServerSideEncryption="aws:kms", SSEKMSKeyId="alias/none"
        )
    assert code_of(exc) == "KMS.NotFoundException"
    with pytest.raises(ClientError) as exc:
        s3.put_object(Bucket=bucket, Key="k", Body=b"x", ServerSideEncryption="bogus")
    assert code_of(exc) == "InvalidArgument"


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("bytes=0-4", b"01234"),
        ("bytes=5-", b"56789"),
        ("bytes=-3", b"789"),
        ("bytes=8-100", b"89"),
        ("bytes=3-1", b"0123456789"),
        ("bytes=a-b", b"0123456789"),
        ("bytes=0-1,3-4", b"0123456789"),
    ],
)
def test_ranges(s3: Any, bucket: str, header: str, expected: bytes) -> None:
    s3.put_object(Bucket=bucket, Key="r", Body=b"0123456789")
    got = s3.get_object(Bucket=bucket, Key="r", Range=header)
    assert got["Body"].read() == expected
    assert got["ResponseMetadata"]["HTTPStatusCode"] == (206 if expected != b"0123456789" else 200)


def test_unsatisfiable_range(s3: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="r", Body=b"0123456789")
    for header in ("bytes=10-", "bytes=100-200", "bytes=-0"):
        with pytest.raises(ClientError) as exc:
            s3.get_object(Bucket=bucket, Key="r", Range=header)
        assert code_of(exc) == "InvalidRange" and status_of(exc) == 416


def test_range_across_chunks_and_conditions(s3: Any, bucket: str) -> None:
    data = bytes(range(256)) * 12289  # a little over 3 MiB: several encrypted chunks
    put = s3.put_object(Bucket=bucket, Key="big", Body=data)
    got = s3.get_object(Bucket=bucket, Key="big", Range="bytes=1048570-2097160")["Body"].read()
    assert got == data[1048570:2097161]
    with pytest.raises(ClientError) as exc:
        s3.get_object(Bucket=bucket, Key="big", IfMatch='"nope"')
    assert status_of(exc) == 412
    with pytest.raises(ClientError) as exc:
        s3.get_object(Bucket=bucket, Key="big", IfNoneMatch=put["ETag"])
    assert status_of(exc) == 304


def test_listing_prefix_delimiter_pagination(s3: Any, bucket: str) -> None:
    keys = [f"p/{i:03d}" for i in range(7)] + ["p/sub/x", "p/sub/y", "q/z", "top"]
    for key in keys:
        s3.put_object(Bucket=bucket, Key=key, Body=key.encode())
    pages = list(
        s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, PaginationConfig={"PageSize": 3})
    )
    assert [o["Key"] for page in pages for o in page.get("Contents", [])] == sorted(keys)
    assert len(pages) == 4
    listed = s3.list_objects_v2(Bucket=bucket, Prefix="p/", Delimiter="/")
    assert [c["Prefix"] for c in listed["CommonPrefixes"]] == ["p/sub/"]
    assert len(listed["Contents"]) == 7 and listed["KeyCount"] == 8
    top = s3.list_objects_v2(Bucket=bucket, Delimiter="/")
    assert [c["Prefix"] for c in top["CommonPrefixes"]] == ["p/", "q/"] and [
        o["Key"] for o in top["Contents"]
    ] == ["top"]
    v1 = s3.list_objects(Bucket=bucket, Prefix="p/s")
    assert [o["Key"] for o in v1["Contents"]] == ["p/sub/x", "p/sub/y"]


def test_copy_delete_and_delete_objects(s3: Any, bucket: str, kms_key: dict[str, Any]) -> None:
    s3.put_object(Bucket=bucket, Key="src", Body=b"copy me", Metadata={"a": "1"})
    out = s3.copy_object(
        Bucket=bucket,
        Key="dst",
        CopySource={"Bucket": bucket, "Key": "src"},
        ServerSideEncryption="aws:kms",
        SSEKMSKeyId=kms_key["KeyId"],
    )
    assert out["SSEKMSKeyId"] == kms_key["Arn"]
    got = s3.get_object(Bucket=bucket, Key="dst")
    assert got["Body"].read() == b"copy me" and got["Metadata"] == {"a": "1"}
    with pytest.raises(ClientError) as exc:
        s3.copy_object(Bucket=bucket, Key="src", CopySource={"Bucket": bucket, "Key": "src"})
    assert code_of(exc) == "InvalidRequest"
    s3.delete_object(Bucket=bucket, Key="src")
    s3.delete_object(Bucket=bucket, Key="src")  # idempotent, as S3
    result = s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": "dst"}, {"Key": "never"}]})
    assert sorted(d["Key"] for d in result["Deleted"]) == ["dst", "never"]
    assert s3.list_objects_v2(Bucket=bucket)["KeyCount"] == 0


def test_bucket_lifecycle(s3: Any, server: Any) -> None:
    s3.create_bucket(Bucket="life-cycle-bucket")
    assert "life-cycle-bucket" in [b["Name"] for b in s3.list_buckets()["Buckets"]]
    assert s3.get_bucket_location(Bucket="life-cycle-bucket")["LocationConstraint"] is None
    # Re-created by its owner: 200 in us-east-1 (legacy), 409 elsewhere (API_CreateBucket, Errors).
    s3.create_bucket(Bucket="life-cycle-bucket")
    s3.put_object(Bucket="life-cycle-bucket", Key="x", Body=b"x")
    with pytest.raises(ClientError) as exc:
        s3.delete_bucket(Bucket="life-cycle-bucket")
    assert code_of(exc) == "BucketNotEmpty"
    s3.delete_object(Bucket="life-cycle-bucket", Key="x")
    s3.delete_bucket(Bucket="life-cycle-bucket")
    with pytest.raises(ClientError) as exc:
        s3.head_bucket(Bucket="life-cycle-bucket")
    assert status_of(exc) == 404
    west = server.client("s3", region="eu-west-1")
    west.create_bucket(Bucket="west-bucket", CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    assert s3.get_bucket_location(Bucket="west-bucket")["LocationConstraint"] == "eu-west-1"
    with pytest.raises(ClientError) as exc:
        west.create_bucket(
            Bucket="west-bucket", CreateBucketConfiguration={"LocationConstraint": "eu-west-1"}
        )
    assert code_of(exc) == "BucketAlreadyOwnedByYou"
    with pytest.raises(ClientError) as exc:
        s3.create_bucket(Bucket="wrong-region", CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    assert code_of(exc) == "IllegalLocationConstraintException"


def test_bucket_policy_round_trip(s3: Any, bucket: str) -> None:
    with pytest.raises(ClientError) as exc:
        s3.get_bucket_policy(Bucket=bucket)
    assert code_of(exc) == "NoSuchBucketPolicy"
    policy = json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": {"AWS": "arn:aws:iam::111122223333:root"},
                    "Action": "s3:GetObject",
                    "Resource": f"arn:aws:s3:::{bucket}/*",
                }
            ],
        }
    )
    s3.put_bucket_policy(Bucket=bucket, Policy=policy)
    assert json.loads(s3.get_bucket_policy(Bucket=bucket)["Policy"]) == json.loads(policy)
    with pytest.raises(ClientError) as exc:
        s3.put_bucket_policy(Bucket=bucket, Policy="{not json")
    assert code_of(exc) == "MalformedPolicy"
    s3.delete_bucket_policy(Bucket=bucket)


def test_checksums_returned(s3: Any, bucket: str) -> None:
    data = b"checksummed"
    put = s3.put_object(Bucket=bucket, Key="c", Body=data, ChecksumAlgorithm="SHA256")
    expected = base64.b64encode(hashlib.sha256(data).digest()).decode()
    assert put["ChecksumSHA256"] == expected
    head = s3.head_object(Bucket=bucket, Key="c", ChecksumMode="ENABLED")
    assert head["ChecksumSHA256"] == expected
