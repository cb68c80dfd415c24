"""Unsigned requests: S3 serves them when a bucket policy grants ``Principal: "*"`` and the
bucket's public access block lets that policy count; nothing else gets anonymous access.

AWS's rules checked here:
- a public-read bucket policy lets anyone GET and HEAD objects ("Granting read-only permission
  to a public anonymous user", S3 User Guide, example-bucket-policies.html);
- without s3:ListBucket a missing key is 403, not 404 (GetObject, S3 API Reference: "If you
  don't have the s3:ListBucket permission, Amazon S3 returns an HTTP status code 403");
- RestrictPublicBuckets keeps anonymous callers out whatever the policy says, the owner still
  reads ("Blocking public access to your Amazon S3 storage", S3 User Guide);
- anonymous requests cannot read SSE-KMS objects (400 InvalidArgument, "Requests specifying
  Server Side Encryption with AWS KMS managed keys require AWS Signature Version 4",
  https://repost.aws/knowledge-center/s3-kms-signature-version-error);
- WorkMail, KMS, IAM and STS requests without a signature are MissingAuthenticationToken.
mailcrate's own decision: unsigned writes are refused whatever a policy grants.
"""

from __future__ import annotations

import json
import time
from typing import Any
from xml.etree import ElementTree as ET

import boto3
import httpx
import pytest
from botocore import UNSIGNED
from botocore.config import Config
from botocore.exceptions import ClientError

from tests.s3.support import code_of, status_of
from tests.support.mailcrate_server import MailcrateServer

OFF = dict.fromkeys(
    ("BlockPublicAcls", "IgnorePublicAcls", "BlockPublicPolicy", "RestrictPublicBuckets"), False
)


@pytest.fixture(scope="module")
def anon(server: MailcrateServer) -> Any:
    """boto3 as a browser or curl would be: no credentials, nothing signed."""
    return boto3.session.Session().client(
        "s3",
        endpoint_url=server.endpoint,
        region_name=server.region,
        config=Config(signature_version=UNSIGNED, retries={"max_attempts": 1}),
    )


def _public(s3: Any, bucket: str, *actions: str, condition: dict[str, Any] | None = None) -> None:
    """Remove the public access block and grant ``actions`` to everyone."""
    s3.put_public_access_block(Bucket=bucket, PublicAccessBlockConfiguration=OFF)
    statements = []
    objects = [a for a in actions if a == "s3:GetObject" or a == "s3:PutObject" or a == "s3:DeleteObject"]
    if objects:
        statements.append({"Effect": "Allow", "Principal": "*", "Action": objects,
                           "Resource": f"arn:aws:s3:::{bucket}/*"})  # fmt: skip
    if "s3:ListBucket" in actions:
        statements.append({"Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "s3:ListBucket",
                           "Resource": f"arn:aws:s3:::{bucket}"})  # fmt: skip
    if condition:
        for statement in statements:
            statement["Condition"] = condition
    s3.put_bucket_policy(Bucket=bucket, Policy=json.dumps({"Version": "2012-10-17", "Statement": statements}))


def _xml(response: httpx.Response) -> tuple[str, str]:
    root = ET.fromstring(response.content)
    return root.findtext("Code") or "", root.findtext("Message") or ""


def test_public_policy_serves_anonymous_reads(
    server: MailcrateServer, s3: Any, anon: Any, bucket: str
) -> None:
    s3.put_object(Bucket=bucket, Key="docs/readme.txt", Body=b"hello, world")
    with pytest.raises(ClientError) as exc:  # still private
        anon.get_object(Bucket=bucket, Key="docs/readme.txt")
    assert (status_of(exc), code_of(exc)) == (403, "AccessDenied")
    _public(s3, bucket, "s3:GetObject")

    assert anon.get_object(Bucket=bucket, Key="docs/readme.txt")["Body"].read() == b"hello, world"
    assert anon.head_object(Bucket=bucket, Key="docs/readme.txt")["ContentLength"] == 12
    assert anon.get_object(Bucket=bucket, Key="docs/readme.txt", Range="bytes=7-")["Body"].read() == b"world"
    # raw HTTP, as curl or a browser sends it
    url = f"{server.endpoint}/{bucket}/docs/readme.txt"
    reply = httpx.get(url)
    assert (reply.status_code, reply.content) == (200, b"hello, world")
    assert reply.headers["x-amz-server-side-encryption"] == "AES256"
    # the policy grants objects, not listing: a missing key and the listing stay hidden
    reply = httpx.get(f"{server.endpoint}/{bucket}/docs/absent.txt")
    assert (reply.status_code, _xml(reply)) == (403, ("AccessDenied", "Access Denied"))
    with pytest.raises(ClientError) as exc:
        anon.list_objects_v2(Bucket=bucket)
    assert (status_of(exc), code_of(exc)) == (403, "AccessDenied")


def test_public_listing_and_missing_keys(s3: Any, anon: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="a/1", Body=b"1")
    s3.put_object(Bucket=bucket, Key="b/2", Body=b"2")
    _public(s3, bucket, "s3:GetObject", "s3:ListBucket")
    listed = anon.list_objects_v2(Bucket=bucket, Delimiter="/")
    assert [p["Prefix"] for p in listed["CommonPrefixes"]] == ["a/", "b/"]
    assert [o["Key"] for o in anon.list_objects(Bucket=bucket)["Contents"]] == ["a/1", "b/2"]
    with pytest.raises(ClientError) as exc:  # with s3:ListBucket a missing key is news
        anon.get_object(Bucket=bucket, Key="c/3")
    assert (status_of(exc), code_of(exc)) == (404, "NoSuchKey")
    anon.head_bucket(Bucket=bucket)


def test_restrict_public_buckets_and_conditions_keep_anonymous_out(
    server: MailcrateServer, s3: Any, anon: Any, bucket: str
) -> None:
    s3.put_object(Bucket=bucket, Key="k", Body=b"v")
    _public(s3, bucket, "s3:GetObject")
    assert anon.get_object(Bucket=bucket, Key="k")["Body"].read() == b"v"
    s3.put_public_access_block(
        Bucket=bucket, PublicAccessBlockConfiguration={**OFF, "RestrictPublicBuckets": True}
    )
    reply = httpx.get(f"{server.endpoint}/{bucket}/k")
    assert (reply.status_code, _xml(reply)) == (403, ("AccessDenied", "Access Denied"))
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"v"  # the owner still reads
    # a public grant limited to addresses the caller does not come from
    s3.delete_public_access_block(Bucket=bucket)
    _public(s3, bucket, "s3:GetObject", condition={"IpAddress": {"aws:SourceIp": "192.0.2.0/24"}})
    with pytest.raises(ClientError) as exc:
        anon.get_object(Bucket=bucket, Key="k")
    assert code_of(exc) == "AccessDenied"
    _public(s3, bucket, "s3:GetObject", condition={"IpAddress": {"aws:SourceIp": "127.0.0.0/8"}})
    assert anon.get_object(Bucket=bucket, Key="k")["Body"].read() == b"v"


def test_private_buckets_answer_access_denied_in_s3_shape(
    server: MailcrateServer, s3: Any, bucket: str
) -> None:
    s3.put_object(Bucket=bucket, Key="secret", Body=b"x")
    for path in (
        f"/{bucket}/secret",
        f"/{bucket}/absent",
        f"/{bucket}?list-type=2",
        f"/{bucket}?policy",
        "/",
    ):
        reply = httpx.get(server.endpoint + path)
        assert reply.status_code == 403, path
        assert reply.headers["content-type"].startswith("application/xml"), path
        assert _xml(reply)[0] == "AccessDenied", path
    assert httpx.head(f"{server.endpoint}/{bucket}/secret").status_code == 403
    reply = httpx.get(f"{server.endpoint}/no-such-bucket-anywhere/k")
    assert (reply.status_code, _xml(reply)[0]) == (404, "NoSuchBucket")


def test_unsigned_writes_are_refused_whatever_the_policy(
    server: MailcrateServer, s3: Any, anon: Any, bucket: str
) -> None:
    s3.put_object(Bucket=bucket, Key="keep", Body=b"kept")
    _public(s3, bucket, "s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:ListBucket")
    for call in (
        lambda: anon.put_object(Bucket=bucket, Key="dropped", Body=b"x" * 2048),
        lambda: anon.put_object(Bucket=bucket, Key="keep", Body=b"overwritten"),
        lambda: anon.delete_object(Bucket=bucket, Key="keep"),
        lambda: anon.create_multipart_upload(Bucket=bucket, Key="mpu"),
        lambda: anon.put_bucket_policy(Bucket=bucket, Policy="{}"),
        lambda: anon.create_bucket(Bucket=f"{bucket}-anon"),
    ):
        with pytest.raises(ClientError) as exc:
            call()
        assert (status_of(exc), code_of(exc)) == (403, "AccessDenied")
    assert [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]] == ["keep"]
    assert s3.get_object(Bucket=bucket, Key="keep")["Body"].read() == b"kept"
    assert s3.list_multipart_uploads(Bucket=bucket).get("Uploads") is None
    with pytest.raises(ClientError):
        s3.head_bucket(Bucket=f"{bucket}-anon")
    with pytest.raises(ClientError) as exc:  # ListBuckets names no bucket: nobody's to grant
        anon.list_buckets()
    assert (status_of(exc), code_of(exc)) == (403, "AccessDenied")


def test_anonymous_callers_cannot_read_sse_kms_objects(
    s3: Any, anon: Any, bucket: str, kms_key: dict[str, Any]
) -> None:
    s3.put_object(
        Bucket=bucket, Key="kms", Body=b"k", ServerSideEncryption="aws:kms", SSEKMSKeyId=kms_key["Arn"]
    )
    s3.put_object(Bucket=bucket, Key="s3", Body=b"s")
    _public(s3, bucket, "s3:GetObject")
    assert anon.get_object(Bucket=bucket, Key="s3")["Body"].read() == b"s"
    with pytest.raises(ClientError) as exc:
        anon.get_object(Bucket=bucket, Key="kms")
    assert (status_of(exc), code_of(exc)) == (400, "InvalidArgument")
    assert "Signature Version 4" in exc.value.response["Error"]["Message"]


@pytest.mark.parametrize(
    ("headers", "body", "code"),
    [
        ({"X-Amz-Target": "WorkMailService.ListOrganizations", "Content-Type": "application/x-amz-json-1.1"},
         b"{}", "MissingAuthenticationTokenException"),
        ({"X-Amz-Target": "TrentService.ListKeys", "Content-Type": "application/x-amz-json-1.1"},
         b"{}", "MissingAuthenticationTokenException"),
        ({"Content-Type": "application/x-www-form-urlencoded"},
         b"Action=ListUsers&Version=2010-05-08", "MissingAuthenticationToken"),
        ({"Content-Type": "application/x-www-form-urlencoded"},
         b"Action=GetCallerIdentity&Version=2011-06-15", "MissingAuthenticationToken"),
    ],
    ids=["workmail", "kms", "iam", "sts"],
)  # fmt: skip
def test_other_services_still_require_a_signature(
    server: MailcrateServer, headers: dict[str, str], body: bytes, code: str
) -> None:
    reply = httpx.post(server.endpoint + "/", headers=headers, content=body)
    assert reply.status_code == 403
    assert code in reply.text


def test_anonymous_reads_are_in_the_bucket_owners_trail(
    server: MailcrateServer, s3: Any, anon: Any, bucket: str
) -> None:
    s3.put_object(Bucket=bucket, Key="audited", Body=b"a")
    _public(s3, bucket, "s3:GetObject")
    anon.get_object(Bucket=bucket, Key="audited")
    trail = server.client("cloudtrail")
    anonymous = {"type": "AWSAccount", "principalId": "", "accountId": "anonymous"}
    deadline = time.monotonic() + 10
    while True:  # a call's event is committed within the audit writer's linger (250 ms)
        events = trail.lookup_events(
            LookupAttributes=[
                {"AttributeKey": "ResourceName", "AttributeValue": f"arn:aws:s3:::{bucket}/audited"}
            ]
        )["Events"]
        identities = [
            json.loads(e["CloudTrailEvent"])["userIdentity"] for e in events if e["EventName"] == "GetObject"
        ]
        if anonymous in identities or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert anonymous in identities
