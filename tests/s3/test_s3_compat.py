"""What real clients rely on beyond PUT/GET: server-side part copies, conditional writes,
partNumber reads, listing markers, SigV4 with ``Date``, ListObjectVersions and the smaller
answers S3 gives (each as AWS documents it; the page is named at each test)."""

from __future__ import annotations

import hashlib
import os
from email.utils import formatdate
from typing import Any

import httpx
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

from tests.s3.support import code_of, status_of
from tests.support.mailcrate_server import MailcrateServer

MIB = 1024 * 1024


def _multipart(s3: Any, bucket: str, key: str, parts: list[bytes], **extra: Any) -> dict[str, Any]:
    upload = s3.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
    done = [
        {
            "PartNumber": n,
            "ETag": s3.upload_part(Bucket=bucket, Key=key, UploadId=upload, PartNumber=n, Body=d)["ETag"],
        }
        for n, d in enumerate(parts, 1)
    ]
    return dict(
        s3.complete_multipart_upload(
            Bucket=bucket, Key=key, UploadId=upload, MultipartUpload={"Parts": done}, **extra
        )
    )


# -- UploadPartCopy (https://docs.aws.amazon.com/AmazonS3/latest/API/API_UploadPartCopy.html) --
def test_upload_part_copy_ranges_and_whole(s3: Any, bucket: str) -> None:
    source = os.urandom(12 * MIB + 3)
    s3.put_object(Bucket=bucket, Key="src", Body=source)
    upload = s3.create_multipart_upload(Bucket=bucket, Key="dst")["UploadId"]
    spans = [(0, 5 * MIB), (5 * MIB, 10 * MIB), (10 * MIB, len(source))]
    parts = []
    for number, (start, end) in enumerate(spans, 1):
        result = s3.upload_part_copy(
            Bucket=bucket,
            Key="dst",
            UploadId=upload,
            PartNumber=number,
            CopySource={"Bucket": bucket, "Key": "src"},
            CopySourceRange=f"bytes={start}-{end - 1}",
        )["CopyPartResult"]
        assert result["ETag"] == '"' + hashlib.md5(source[start:end]).hexdigest() + '"'
        parts.append({"PartNumber": number, "ETag": result["ETag"]})
    s3.complete_multipart_upload(Bucket=bucket, Key="dst", UploadId=upload, MultipartUpload={"Parts": parts})
    assert s3.get_object(Bucket=bucket, Key="dst")["Body"].read() == source
    # Without a range the whole source is the part.
    upload = s3.create_multipart_upload(Bucket=bucket, Key="whole")["UploadId"]
    etag = s3.upload_part_copy(
        Bucket=bucket, Key="whole", UploadId=upload, PartNumber=1, CopySource=f"{bucket}/src"
    )["CopyPartResult"]["ETag"]
    s3.complete_multipart_upload(
        Bucket=bucket,
        Key="whole",
        UploadId=upload,
        MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": etag}]},
    )
    assert s3.get_object(Bucket=bucket, Key="whole")["Body"].read() == source


@pytest.mark.parametrize(
    ("copy_range", "code"),
    [
        ("bytes=0-21", "InvalidRange"),
        ("bytes=0", "InvalidArgument"),
        ("0-2", "InvalidArgument"),
        ("bytes=3-1", "InvalidArgument"),
    ],
)
def test_upload_part_copy_bad_range(s3: Any, bucket: str, copy_range: str, code: str) -> None:
    s3.put_object(Bucket=bucket, Key="src", Body=b"12345")
    upload = s3.create_multipart_upload(Bucket=bucket, Key="dst")["UploadId"]
    with pytest.raises(ClientError) as exc:
        s3.upload_part_copy(
            Bucket=bucket,
            Key="dst",
            UploadId=upload,
            PartNumber=1,
            CopySource=f"{bucket}/src",
            CopySourceRange=copy_range,
        )
    assert code_of(exc) == code
    assert s3.list_parts(Bucket=bucket, Key="dst", UploadId=upload).get("Parts", []) == []


def test_aws_cli_copies_a_100_mib_sse_kms_object(
    server: MailcrateServer, s3: Any, bucket: str, kms_key: dict[str, Any], tmp_path: Any
) -> None:
    """``aws s3 cp s3://... s3://...`` of an export-sized SSE-KMS object uses multipart copy
    (UploadPartCopy above 8 MB); the copy is the same bytes, encrypted with the same key."""
    data = os.urandom(100 * MIB)
    src = tmp_path / "export.zip"
    src.write_bytes(data)
    key_args = ["--sse", "aws:kms", "--sse-kms-key-id", kms_key["Arn"]]
    server.aws("s3", "cp", str(src), f"s3://{bucket}/exports/job.zip", *key_args, "--only-show-errors")
    del data
    server.aws(
        "s3",
        "cp",
        f"s3://{bucket}/exports/job.zip",
        f"s3://{bucket}/archive/job.zip",
        *key_args,
        "--only-show-errors",
    )
    head = s3.head_object(Bucket=bucket, Key="archive/job.zip")
    assert head["ContentLength"] == 100 * MIB
    assert head["ServerSideEncryption"] == "aws:kms"
    assert head["SSEKMSKeyId"] == kms_key["Arn"]
    assert head["PartsCount"] > 1  # it was a multipart copy
    out = tmp_path / "copy.zip"
    server.aws("s3", "cp", f"s3://{bucket}/archive/job.zip", str(out), "--only-show-errors")
    assert hashlib.sha256(out.read_bytes()).digest() == hashlib.sha256(src.read_bytes()).digest()


# -- conditional writes (https://docs.aws.amazon.com/AmazonS3/latest/userguide/conditional-writes.html) --
def test_put_object_conditional_writes(s3: Any, bucket: str) -> None:
    etag = s3.put_object(Bucket=bucket, Key="k", Body=b"one", IfNoneMatch="*")["ETag"]
    for kwargs in ({"IfNoneMatch": "*"}, {"IfNoneMatch": etag}, {"IfMatch": '"0123"'}):
        with pytest.raises(ClientError) as exc:
            s3.put_object(Bucket=bucket, Key="k", Body=b"lost", **kwargs)
        assert (status_of(exc), code_of(exc)) == (412, "PreconditionFailed")
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"one"
    s3.put_object(Bucket=bucket, Key="k", Body=b"two", IfMatch=etag)
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"two"
    with pytest.raises(ClientError) as exc:
        s3.put_object(Bucket=bucket, Key="absent", Body=b"x", IfMatch="*")
    assert (status_of(exc), code_of(exc)) == (404, "NoSuchKey")


def test_complete_multipart_conditional_writes(s3: Any, bucket: str) -> None:
    first = _multipart(s3, bucket, "mp", [b"a" * 10], IfNoneMatch="*")
    with pytest.raises(ClientError) as exc:
        _multipart(s3, bucket, "mp", [b"b" * 10], IfNoneMatch="*")
    assert (status_of(exc), code_of(exc)) == (412, "PreconditionFailed")
    with pytest.raises(ClientError) as exc:
        _multipart(s3, bucket, "mp", [b"b" * 10], IfMatch='"bad"')
    assert code_of(exc) == "PreconditionFailed"
    assert s3.get_object(Bucket=bucket, Key="mp")["Body"].read() == b"a" * 10
    _multipart(s3, bucket, "mp", [b"c" * 10], IfMatch=first["ETag"])
    assert s3.get_object(Bucket=bucket, Key="mp")["Body"].read() == b"c" * 10


def test_second_complete_of_a_completed_upload_answers_the_same(s3: Any, bucket: str) -> None:
    upload = s3.create_multipart_upload(Bucket=bucket, Key="again")["UploadId"]
    etag = s3.upload_part(Bucket=bucket, Key="again", UploadId=upload, PartNumber=1, Body=b"x")["ETag"]
    parts = {"Parts": [{"PartNumber": 1, "ETag": etag}]}
    first = s3.complete_multipart_upload(Bucket=bucket, Key="again", UploadId=upload, MultipartUpload=parts)
    second = s3.complete_multipart_upload(Bucket=bucket, Key="again", UploadId=upload, MultipartUpload=parts)
    assert first["ETag"] == second["ETag"]
    with pytest.raises(ClientError) as exc:
        s3.complete_multipart_upload(
            Bucket=bucket, Key="again", UploadId="not-an-upload", MultipartUpload=parts
        )
    assert code_of(exc) == "NoSuchUpload"


# -- partNumber (https://docs.aws.amazon.com/AmazonS3/latest/API/API_GetObject.html#API_GetObject_RequestSyntax) --
def test_get_and_head_by_part_number(s3: Any, bucket: str) -> None:
    parts = [os.urandom(5 * MIB), os.urandom(5 * MIB), os.urandom(1000)]
    etag = _multipart(s3, bucket, "mp", parts)["ETag"]
    offset = 0
    for number, data in enumerate(parts, 1):
        head = s3.head_object(Bucket=bucket, Key="mp", PartNumber=number)
        assert (head["PartsCount"], head["ContentLength"], head["ETag"]) == (3, len(data), etag)
        got = s3.get_object(Bucket=bucket, Key="mp", PartNumber=number)
        assert got["ContentRange"] == f"bytes {offset}-{offset + len(data) - 1}/{sum(map(len, parts))}"
        assert got["Body"].read() == data
        offset += len(data)
    with pytest.raises(ClientError) as exc:
        s3.get_object(Bucket=bucket, Key="mp", PartNumber=4)
    assert (status_of(exc), code_of(exc)) == (416, "InvalidPartNumber")
    with pytest.raises(ClientError) as exc:
        s3.head_object(Bucket=bucket, Key="mp", PartNumber=4)
    assert status_of(exc) == 416
    s3.put_object(Bucket=bucket, Key="single", Body=b"body")
    assert s3.get_object(Bucket=bucket, Key="single", PartNumber=1)["Body"].read() == b"body"
    with pytest.raises(ClientError) as exc:
        s3.get_object(Bucket=bucket, Key="single", PartNumber=1, Range="bytes=0-1")
    assert code_of(exc) == "InvalidRequest"


# -- listing --------------------------------------------------------------------------------
def test_list_objects_v1_next_marker_is_the_last_common_prefix(s3: Any, bucket: str) -> None:
    for key in ("asdf", "boo/bar", "boo/baz/xyzzy", "cquux/thud", "cquux/bla"):
        s3.put_object(Bucket=bucket, Key=key, Body=b"")
    seen, marker = [], ""
    while True:
        page = s3.list_objects(Bucket=bucket, Delimiter="/", MaxKeys=1, Marker=marker)
        seen += [o["Key"] for o in page.get("Contents", [])] + [
            c["Prefix"] for c in page.get("CommonPrefixes", [])
        ]
        if not page["IsTruncated"]:
            break
        marker = page["NextMarker"]
        assert marker == seen[-1]
    assert seen == ["asdf", "boo/", "cquux/"]


def test_list_objects_v1_prefix_is_not_encoded_unless_asked(
    server: MailcrateServer, s3: Any, bucket: str
) -> None:
    s3.put_object(Bucket=bucket, Key="a b+c/d", Body=b"")
    from tests.s3.support import signed

    response, _ = signed(server, "GET", f"/{bucket}?prefix=a%20b%2Bc%2F")
    assert b"<Prefix>a b+c/</Prefix>" in response.content
    assert b"<Key>a b+c/d</Key>" in response.content


def test_fetch_owner_and_empty_continuation_token(s3: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="k", Body=b"")
    listed = s3.list_objects_v2(Bucket=bucket, FetchOwner=True, ContinuationToken="")
    assert listed["Contents"][0]["Owner"]["ID"] == "111122223333"
    assert "Owner" not in s3.list_objects_v2(Bucket=bucket)["Contents"][0]


def test_list_buckets_max_buckets_pages(s3: Any) -> None:
    names = [f"maxb-{n}" for n in range(3)]
    for name in names:
        s3.create_bucket(Bucket=name)
    seen, token = [], None
    while True:
        page = s3.list_buckets(
            MaxBuckets=1, Prefix="maxb-", **({"ContinuationToken": token} if token else {})
        )
        assert len(page["Buckets"]) <= 1
        seen += [b["Name"] for b in page["Buckets"]]
        token = page.get("ContinuationToken")
        if not token:
            break
    assert seen == names


def test_list_object_versions_of_an_unversioned_bucket(s3: Any, bucket: str) -> None:
    """https://docs.aws.amazon.com/AmazonS3/latest/userguide/versioning-workflows.html: objects
    stored before versioning have the version ID null."""
    keys = ["a", "b/c", "d"]
    for key in keys:
        s3.put_object(Bucket=bucket, Key=key, Body=key.encode())
    page = s3.list_object_versions(Bucket=bucket, MaxKeys=2)
    assert [(v["Key"], v["VersionId"], v["IsLatest"]) for v in page["Versions"]] == [
        ("a", "null", True),
        ("b/c", "null", True),
    ]
    assert page["IsTruncated"] and page["NextKeyMarker"] == "b/c" and page["NextVersionIdMarker"] == "null"
    rest = s3.list_object_versions(Bucket=bucket, KeyMarker="b/c", VersionIdMarker="null")
    assert [v["Key"] for v in rest["Versions"]] == ["d"]
    # The way tools empty a bucket before deleting it.
    listed = s3.list_object_versions(Bucket=bucket)["Versions"]
    s3.delete_objects(
        Bucket=bucket, Delete={"Objects": [{"Key": v["Key"], "VersionId": v["VersionId"]} for v in listed]}
    )
    s3.delete_bucket(Bucket=bucket)


# -- smaller answers --------------------------------------------------------------------------
def test_recreating_own_bucket_in_us_east_1_is_200(s3: Any, bucket: str) -> None:
    """https://docs.aws.amazon.com/AmazonS3/latest/API/API_CreateBucket.html (Errors)."""
    s3.put_object(Bucket=bucket, Key="kept", Body=b"x")
    s3.create_bucket(Bucket=bucket)
    assert s3.get_object(Bucket=bucket, Key="kept")["Body"].read() == b"x"


def test_put_bucket_policy_is_204(s3: Any, bucket: str) -> None:
    policy = (
        '{"Version":"2012-10-17","Statement":[{"Effect":"Deny","Principal":"*","Action":"s3:GetObject",'
        f'"Resource":"arn:aws:s3:::{bucket}/secret/*"}}]}}'
    )
    assert s3.put_bucket_policy(Bucket=bucket, Policy=policy)["ResponseMetadata"]["HTTPStatusCode"] == 204


def test_sse_headers_on_get_and_head_are_refused(server: MailcrateServer, s3: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="k", Body=b"x")
    from tests.s3.support import signed

    for method in ("GET", "HEAD"):
        response, _ = signed(
            server, method, f"/{bucket}/k", headers={"x-amz-server-side-encryption": "aws:kms"}
        )
        assert response.status_code == 400


def test_sigv4_with_date_header_instead_of_x_amz_date(server: MailcrateServer, bucket: str) -> None:
    """https://docs.aws.amazon.com/IAM/latest/UserGuide/signing-elements.html: the date may be
    in X-Amz-Date or Date (signed); the string to sign carries it as YYYYMMDD'T'HHMMSS'Z'."""
    import datetime as dt

    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    url = f"{server.endpoint}/{bucket}?list-type=2"
    request = AWSRequest(
        method="GET", url=url, headers={"x-amz-content-sha256": hashlib.sha256(b"").hexdigest()}
    )
    signer = SigV4Auth(Credentials(server.access_key_id, server.secret_access_key), "s3", "us-east-1")
    signer.add_auth(request)
    # Re-sign by hand with Date in place of X-Amz-Date (botocore always writes X-Amz-Date).
    stamp = now.strftime("%Y%m%dT%H%M%SZ")
    headers = {
        "host": f"127.0.0.1:{server.port}",
        "date": formatdate(now.timestamp(), usegmt=True),
        "x-amz-content-sha256": hashlib.sha256(b"").hexdigest(),
    }
    names = sorted(headers)
    canonical = "\n".join(
        [
            "GET",
            f"/{bucket}",
            "list-type=2",
            *[f"{n}:{headers[n]}" for n in names],
            "",
            ";".join(names),
            headers["x-amz-content-sha256"],
        ]
    )
    scope = f"{stamp[:8]}/us-east-1/s3/aws4_request"
    to_sign = "\n".join(["AWS4-HMAC-SHA256", stamp, scope, hashlib.sha256(canonical.encode()).hexdigest()])
    key = signer._sign(("AWS4" + server.secret_access_key).encode(), stamp[:8])
    for part in ("us-east-1", "s3", "aws4_request"):
        key = signer._sign(key, part)
    import hmac

    signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    headers["authorization"] = (
        f"AWS4-HMAC-SHA256 Credential={server.access_key_id}/{scope}, SignedHeaders={';'.join(names)}, Signature={signature}"
    )
    response = httpx.get(url, headers=headers)
    assert response.status_code == 200, response.text
    # The same signature with the date changed is refused.
    headers["date"] = formatdate(now.timestamp() + 1, usegmt=True)
    assert httpx.get(url, headers=headers).status_code == 403
