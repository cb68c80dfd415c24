"""Hostile and malformed input: S3's error codes, never a 500, nothing written outside the data dir."""

from __future__ import annotations

import base64
import hashlib
import os
import zlib
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.s3.support import code_of, signed, xml_code
from tests.support.mailcrate_server import MailcrateServer
from tests.support.signing import signed_chunked_body


@pytest.mark.parametrize(
    "name",
    [
        "ab",
        "a" * 64,
        "Upper-Case",
        "under_score",
        "-leading",
        "trailing-",
        "two..dots",
        "192.168.1.1",
        "xn--punycode",
        "bucket-s3alias",
        "dot.-hyphen",
    ],
)
def test_bad_bucket_names(s3: Any, name: str) -> None:
    with pytest.raises(ClientError) as exc:
        s3.create_bucket(Bucket=name)
    assert code_of(exc) == "InvalidBucketName"


def test_keys_never_escape_the_data_dir(
    server: MailcrateServer, s3: Any, bucket: str, tmp_path: Path
) -> None:
    before = set(Path("/").glob("*")) | set(server.data_dir.parent.glob("**/*"))
    hostile = [
        "../../../../../../tmp/escaped",
        "../x",
        "a/../../b",
        "/abs/path",
        "./dot",
        "..",
        "%2e%2e/enc",
        "a\\..\\b",
    ]
    for key in hostile:
        s3.put_object(Bucket=bucket, Key=key, Body=key.encode())
        assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == key.encode()
    listed = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]]
    assert sorted(listed) == sorted(hostile)
    assert not Path("/tmp/escaped").exists()
    after = set(Path("/").glob("*")) | set(server.data_dir.parent.glob("**/*"))
    outside = {
        p for p in after - before if server.data_dir not in p.parents and not p.name.endswith("-serve.log")
    }
    assert outside == set()
    for path in server.data_dir.rglob("*"):
        assert ".." not in path.name and "escaped" not in str(path)


def test_key_too_long_and_nul(s3: Any, bucket: str) -> None:
    with pytest.raises(ClientError) as exc:
        s3.put_object(Bucket=bucket, Key="k" * 2048, Body=b"x")
    assert code_of(exc) == "KeyTooLongError"
    s3.put_object(Bucket=bucket, Key="k" * 1024, Body=b"x")  # the limit itself is fine
    with pytest.raises(ClientError) as exc:
        s3.put_object(Bucket=bucket, Key="nul\x00key", Body=b"x")
    assert code_of(exc) == "InvalidArgument"
    with pytest.raises(ClientError) as exc:
        s3.get_object(Bucket=bucket, Key="é" * 600)
    assert code_of(exc) == "KeyTooLongError"


def test_wrong_content_md5_and_checksums(s3: Any, bucket: str) -> None:
    wrong_md5 = base64.b64encode(hashlib.md5(b"other").digest()).decode()
    with pytest.raises(ClientError) as exc:
        s3.put_object(Bucket=bucket, Key="m", Body=b"data", ContentMD5=wrong_md5)
    assert code_of(exc) == "BadDigest"
    with pytest.raises(ClientError) as exc:
        s3.put_object(Bucket=bucket, Key="m", Body=b"data", ContentMD5="not-base64!")
    assert code_of(exc) == "InvalidDigest"
    with pytest.raises(ClientError) as exc:
        s3.put_object(Bucket=bucket, Key="m", Body=b"data", ChecksumCRC32="AAAAAA==")
    assert code_of(exc) == "BadDigest"
    with pytest.raises(ClientError) as exc:
        s3.put_object(
            Bucket=bucket, Key="m", Body=b"data", ChecksumSHA256=base64.b64encode(b"\0" * 32).decode()
        )
    assert code_of(exc) == "BadDigest"
    assert s3.list_objects_v2(Bucket=bucket)["KeyCount"] == 0  # nothing was committed
    good = base64.b64encode(hashlib.md5(b"data").digest()).decode()
    s3.put_object(Bucket=bucket, Key="m", Body=b"data", ContentMD5=good)


def test_payload_sha256_mismatch(server: MailcrateServer, bucket: str) -> None:
    response, _ = signed(
        server, "PUT", f"/{bucket}/x", b"actual body", declared=hashlib.sha256(b"other").hexdigest()
    )
    assert response.status_code == 400 and xml_code(response) == "XAmzContentSHA256Mismatch"


def _chunked(pieces: list[bytes], trailer: str = "") -> bytes:
    out = b"".join(f"{len(p):x}\r\n".encode() + p + b"\r\n" for p in pieces)
    return out + b"0\r\n" + trailer.encode() + b"\r\n"


def test_aws_chunked_unsigned_trailer(server: MailcrateServer, s3: Any, bucket: str) -> None:
    pieces = [os.urandom(70_000), os.urandom(12_345)]
    data = b"".join(pieces)
    crc = base64.b64encode(zlib.crc32(data).to_bytes(4, "big")).decode()
    headers = {
        "content-encoding": "aws-chunked",
        "x-amz-decoded-content-length": str(len(data)),
        "x-amz-trailer": "x-amz-checksum-crc32",
        "x-amz-sdk-checksum-algorithm": "CRC32",
    }
    body = _chunked(pieces, f"x-amz-checksum-crc32:{crc}\r\n")
    response, _ = signed(
        server, "PUT", f"/{bucket}/chunked", body, headers, declared="STREAMING-UNSIGNED-PAYLOAD-TRAILER"
    )
    assert response.status_code == 200, response.text
    assert response.headers["x-amz-checksum-crc32"] == crc
    assert s3.get_object(Bucket=bucket, Key="chunked")["Body"].read() == data
    bad = _chunked(pieces, "x-amz-checksum-crc32:AAAAAA==\r\n")
    response, _ = signed(
        server, "PUT", f"/{bucket}/bad", bad, headers, declared="STREAMING-UNSIGNED-PAYLOAD-TRAILER"
    )
    assert response.status_code == 400 and xml_code(response) == "BadDigest"
    truncated = body[: len(body) // 2]
    response, _ = signed(
        server, "PUT", f"/{bucket}/bad", truncated, headers, declared="STREAMING-UNSIGNED-PAYLOAD-TRAILER"
    )
    assert response.status_code == 400 and xml_code(response) == "IncompleteBody"


def test_aws_chunked_signed_chunks(server: MailcrateServer, s3: Any, bucket: str) -> None:
    pieces = [b"a" * 65536, b"b" * 100]
    data = b"".join(pieces)
    headers = {"content-encoding": "aws-chunked", "x-amz-decoded-content-length": str(len(data))}
    declared = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"
    # Sign the headers first to learn the seed signature, then chain the chunk signatures from it.
    _, request = signed(
        server,
        "PUT",
        f"/{bucket}/probe",
        b"",
        {**headers, "x-amz-decoded-content-length": "0"},
        declared=declared,
    )

    import httpx
    from botocore.awsrequest import AWSRequest

    from tests.s3.support import Credentials, _DeclaredPayload  # type: ignore[attr-defined]

    for tamper in (False, True):
        url = f"{server.endpoint}/{bucket}/signed-chunks"
        req = AWSRequest(method="PUT", url=url, headers={"x-amz-content-sha256": declared, **headers})
        _DeclaredPayload(Credentials(server.access_key_id, server.secret_access_key), declared).add_auth(req)
        seed = req.headers["Authorization"].rsplit("Signature=", 1)[1]
        body = (
            signed_chunked_body(
                server.secret_access_key, req.headers["X-Amz-Date"], "us-east-1", seed, pieces, tamper=tamper
            )
            + b"\r\n"
        )
        response = httpx.put(url, content=body, headers=dict(req.headers.items()), timeout=30)
        if tamper:
            assert response.status_code == 403 and xml_code(response) == "SignatureDoesNotMatch"
        else:
            assert response.status_code == 200, response.text
            assert s3.get_object(Bucket=bucket, Key="signed-chunks")["Body"].read() == data
    del request


def test_unknown_upload_ids_and_parts(s3: Any, bucket: str) -> None:
    for call in (
        lambda: s3.upload_part(Bucket=bucket, Key="k", UploadId="nope", PartNumber=1, Body=b"x"),
        lambda: s3.complete_multipart_upload(
            Bucket=bucket,
            Key="k",
            UploadId="nope",
            MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": '"x"'}]},
        ),
        lambda: s3.abort_multipart_upload(Bucket=bucket, Key="k", UploadId="nope"),
        lambda: s3.list_parts(Bucket=bucket, Key="k", UploadId="nope"),
    ):
        with pytest.raises(ClientError) as exc:
            call()
        assert code_of(exc) == "NoSuchUpload"
    upload = s3.create_multipart_upload(Bucket=bucket, Key="k")["UploadId"]
    with pytest.raises(ClientError) as exc:  # an upload id is bound to its key
        s3.upload_part(Bucket=bucket, Key="other", UploadId=upload, PartNumber=1, Body=b"x")
    assert code_of(exc) == "NoSuchUpload"
    with pytest.raises(ClientError) as exc:
        s3.upload_part(Bucket=bucket, Key="k", UploadId=upload, PartNumber=10001, Body=b"x")
    assert code_of(exc) == "InvalidArgument"
    small = s3.upload_part(Bucket=bucket, Key="k", UploadId=upload, PartNumber=1, Body=b"small")
    last = s3.upload_part(Bucket=bucket, Key="k", UploadId=upload, PartNumber=2, Body=b"last")
    parts = [{"PartNumber": 1, "ETag": small["ETag"]}, {"PartNumber": 2, "ETag": last["ETag"]}]
    with pytest.raises(ClientError) as exc:
        s3.complete_multipart_upload(
            Bucket=bucket, Key="k", UploadId=upload, MultipartUpload={"Parts": parts}
        )
    assert code_of(exc) == "EntityTooSmall"
    with pytest.raises(ClientError) as exc:
        s3.complete_multipart_upload(
            Bucket=bucket, Key="k", UploadId=upload, MultipartUpload={"Parts": parts[::-1]}
        )
    assert code_of(exc) == "InvalidPartOrder"
    with pytest.raises(ClientError) as exc:
        s3.complete_multipart_upload(
            Bucket=bucket,
            Key="k",
            UploadId=upload,
            MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": '"0000"'}]},
        )
    assert code_of(exc) == "InvalidPart"
    s3.abort_multipart_upload(Bucket=bucket, Key="k", UploadId=upload)
    assert s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []


def test_missing_objects_buckets_and_other_accounts(server: MailcrateServer, s3: Any, bucket: str) -> None:
    with pytest.raises(ClientError) as exc:
        s3.get_object(Bucket=bucket, Key="missing")
    assert code_of(exc) == "NoSuchKey"
    with pytest.raises(ClientError) as exc:
        s3.list_objects_v2(Bucket="no-such-bucket-anywhere")
    assert code_of(exc) == "NoSuchBucket"


@pytest.mark.parametrize(
    ("method", "path", "headers", "body", "code"),
    [
        ("PUT", "/{b}?policy", {}, b"{bad", "MalformedPolicy"),
        ("PUT", "/{b}?publicAccessBlock", {}, b"<not-xml", "MalformedXML"),
        ("POST", "/{b}?delete", {}, b"<Delete><Object><Key>k</Key></Object></Delete>", "InvalidRequest"),
        ("GET", "/{b}?list-type=2&max-keys=abc", {}, b"", "InvalidArgument"),
        ("GET", "/{b}?list-type=2&continuation-token=x", {}, b"", "InvalidArgument"),
        ("GET", "/{b}/%FF%FE", {}, b"", "InvalidURI"),
        ("GET", "/{b}?acl", {}, b"", "NotImplemented"),
        ("PATCH", "/{b}/k", {}, b"", "MethodNotAllowed"),
        ("PUT", "/{b}/k", {"x-amz-content-sha256": "garbage"}, b"x", "InvalidArgument"),
    ],
)
def test_raw_malformed_requests(
    server: MailcrateServer,
    bucket: str,
    method: str,
    path: str,
    headers: dict[str, str],
    body: bytes,
    code: str,
) -> None:
    declared = headers.pop("x-amz-content-sha256", None)
    response, _ = signed(server, method, path.format(b=bucket), body, headers, declared=declared)
    assert 400 <= response.status_code < 500 or response.status_code == 501, response.text
    assert xml_code(response) == code


def test_auth_errors(server: MailcrateServer, bucket: str) -> None:
    import httpx

    response = httpx.get(f"{server.endpoint}/{bucket}?list-type=2")
    assert response.status_code == 403 and xml_code(response) == "AccessDenied"
    wrong = server.client("s3", secret_access_key="x" * 40)
    with pytest.raises(ClientError) as exc:
        wrong.list_objects_v2(Bucket=bucket)
    assert code_of(exc) == "SignatureDoesNotMatch"
    unknown = server.client("s3", access_key_id="AKIAUNKNOWNUNKNOWN00")
    with pytest.raises(ClientError) as exc:
        unknown.list_objects_v2(Bucket=bucket)
    assert code_of(exc) == "InvalidAccessKeyId"


def test_presigned_get_and_expiry(server: MailcrateServer, s3: Any, bucket: str) -> None:
    import time

    import httpx

    s3.put_object(Bucket=bucket, Key="shared file.txt", Body=b"presigned!")
    s3 = server.client("s3", signature_version="s3v4")  # mailcrate speaks SigV4 only
    url = s3.generate_presigned_url(
        "get_object", Params={"Bucket": bucket, "Key": "shared file.txt"}, ExpiresIn=60
    )
    response = httpx.get(url)
    assert response.status_code == 200 and response.content == b"presigned!"
    short = s3.generate_presigned_url(
        "get_object", Params={"Bucket": bucket, "Key": "shared file.txt"}, ExpiresIn=1
    )
    time.sleep(2.1)
    response = httpx.get(short)
    assert response.status_code == 403 and xml_code(response) == "AccessDenied"
    assert "expired" in response.text


def test_virtual_host_addressing(server: MailcrateServer, bucket: str) -> None:
    from tests.s3.support import signed as signed_request

    signed_request(server, "PUT", f"/{bucket}/vhost-key", b"via path")
    for host in (f"{bucket}.localhost:{server.port}", f"{bucket}.s3.localhost:{server.port}"):
        response, _ = signed_request(server, "GET", "/vhost-key", host=host)
        assert response.status_code == 200 and response.content == b"via path", response.text
