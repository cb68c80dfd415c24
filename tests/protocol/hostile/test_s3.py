"""Hostile, signed S3 requests (REST-XML) against a real ``mailcrate serve``: odd keys, ranges,
bodies that lie about their length, chunked uploads, and writes refused without a trace."""

from __future__ import annotations

import base64
import hashlib
import http.client
import json
import time
import uuid
from datetime import timedelta
from typing import Any
from urllib.parse import quote

import pytest
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

from tests.protocol.hostile.support import (
    REGION,
    SERVE_ARGS,  # noqa: F401 - read by the server fixture (tests/conftest.py)
    Build,
    Reply,
    World,
    _DeclaredPayloadSigner,
    _deep,
    assert_error,
    s3,
    send,
    signature_of,
    stored_files,
)
from tests.support.signing import signed_chunked_body


def _chunked(chunks: list[bytes], trailer: str = "") -> bytes:
    out = b"".join(f"{len(c):x}\r\n".encode() + c + b"\r\n" for c in chunks if c)
    return out + b"0\r\n" + trailer.encode() + b"\r\n"


def _unsigned_trailer_headers(decoded: int | str) -> dict[str, str]:
    return {"Content-Encoding": "aws-chunked", "X-Amz-Decoded-Content-Length": str(decoded)}


def _put_chunked(w: World, key: str, body: bytes, decoded: int | str) -> Reply:
    return s3(
        w,
        "PUT",
        key,
        body=body,
        headers=_unsigned_trailer_headers(decoded),
        declared_sha256="STREAMING-UNSIGNED-PAYLOAD-TRAILER",
    )


def _put_signed_chunks(w: World, key: str, data: bytes, *, bad_signature: bool) -> Reply:
    """STREAMING-AWS4-HMAC-SHA256-PAYLOAD with the chunk signatures a client computes, one of them
    wrong when asked."""
    server = w.server
    path = f"/{w.bucket}/{key}"
    headers = {"Content-Encoding": "aws-chunked", "X-Amz-Decoded-Content-Length": str(len(data))}
    request = AWSRequest(method="PUT", url=server.endpoint + path, data=b"", headers=headers)
    signer = _DeclaredPayloadSigner(
        Credentials(server.access_key_id, server.secret_access_key),
        REGION,
        "STREAMING-AWS4-HMAC-SHA256-PAYLOAD",
    )
    signer.add_auth(request)
    amz_date = request.headers["X-Amz-Date"]
    body = signed_chunked_body(
        server.secret_access_key,
        amz_date,
        REGION,
        signature_of(dict(request.headers.items())),
        [data],
        bad_signature=bad_signature,
    )
    sent = dict(request.headers.items())
    sent["Host"] = f"127.0.0.1:{server.port}"
    sent["Content-Length"] = str(len(body))
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=15)
    try:
        conn.putrequest("PUT", path, skip_host=True, skip_accept_encoding=True)
        for name, value in sent.items():
            conn.putheader(name, value)
        conn.endheaders(body)
        response = conn.getresponse()
        return Reply(response.status, {k.lower(): v for k, v in response.getheaders()}, response.read())
    finally:
        conn.close()


def _complete(w: World, xml: bytes | str) -> Reply:
    return s3(w, "POST", w.upload_key, query=f"uploadId={w.upload_id}", body=xml)


def _parts_xml(*parts: tuple[str, str]) -> str:
    inner = "".join(f"<Part><PartNumber>{n}</PartNumber><ETag>{e}</ETag></Part>" for n, e in parts)
    return f'<CompleteMultipartUpload xmlns="http://s3.amazonaws.com/doc/2006-03-01/">{inner}</CompleteMultipartUpload>'


_LAUGHS = (
    '<?xml version="1.0"?><!DOCTYPE l [<!ENTITY a "aaaaaaaaaa">'
    + "".join(f'<!ENTITY {chr(98 + i)} "{("&" + chr(97 + i) + ";") * 10}">' for i in range(9))
    + "]><CompleteMultipartUpload><Part><PartNumber>&j;</PartNumber></Part></CompleteMultipartUpload>"
)


_EXTERNAL = (
    '<?xml version="1.0"?><!DOCTYPE c [<!ENTITY e SYSTEM "file:///etc/passwd">]>'
    "<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>&e;</ETag></Part></CompleteMultipartUpload>"
)


S3_CASES: list[Any] = [
    # Keys.
    pytest.param(lambda w: s3(w, "PUT", "k" * 1025, body=b"x"), 400, "KeyTooLongError", id="key-1025-bytes"),
    pytest.param(
        lambda w: s3(w, "PUT", "%C3%A9" * 513, body=b"x"), 400, "KeyTooLongError", id="key-1026-utf8-bytes"
    ),
    pytest.param(lambda w: s3(w, "PUT", "a%00b", body=b"x"), 400, "InvalidArgument", id="key-nul"),
    pytest.param(lambda w: s3(w, "PUT", "a%FFb", body=b"x"), 400, "InvalidURI", id="key-not-utf8"),
    pytest.param(lambda w: s3(w, "GET", "..%2F..%2Fetc%2Fpasswd"), 404, "NoSuchKey", id="key-escape-encoded"),
    pytest.param(lambda w: s3(w, "GET", "../../../../etc/passwd"), 404, "NoSuchKey", id="key-escape-raw"),
    pytest.param(lambda w: s3(w, "GET", "a%01b%1Fc"), 404, "NoSuchKey", id="key-control-characters"),
    pytest.param(lambda w: s3(w, "GET", "obj/"), 404, "NoSuchKey", id="key-trailing-slash"),
    pytest.param(lambda w: s3(w, "GET", "obj%2F%2E%2E%2Fobj"), 404, "NoSuchKey", id="key-dots-encoded"),
    # Bodies that do not keep their promises.
    pytest.param(
        lambda w: s3(w, "PUT", "sha-not-hex", body=b"x", declared_sha256="abc"),
        400,
        "InvalidArgument",
        id="content-sha256-not-hex",
    ),
    pytest.param(
        lambda w: s3(w, "PUT", "sha-wrong", body=b"x", declared_sha256=hashlib.sha256(b"y").hexdigest()),
        400,
        "XAmzContentSHA256Mismatch",
        id="content-sha256-wrong",
    ),
    pytest.param(
        lambda w: s3(w, "PUT", "sha-unknown", body=b"x", declared_sha256="STREAMING-NOPE"),
        501,
        "NotImplemented",
        id="content-sha256-unknown-streaming",
    ),
    pytest.param(
        lambda w: s3(w, "PUT", "md5-bad", body=b"x", headers={"Content-MD5": "not-base64!"}),
        400,
        "InvalidDigest",
        id="content-md5-garbage",
    ),
    pytest.param(
        lambda w: s3(
            w, "PUT", "md5-wrong", body=b"x", headers={"Content-MD5": base64.b64encode(b"0" * 16).decode()}
        ),
        400,
        "BadDigest",
        id="content-md5-wrong",
    ),
    pytest.param(
        lambda w: s3(
            w,
            "PUT",
            "cl-6gb",
            body=b"x",
            declared_sha256="UNSIGNED-PAYLOAD",
            replace_headers={"Content-Length": str(6 * 1024**3)},
        ),
        400,
        "EntityTooLarge",
        id="content-length-6gb",
    ),
    pytest.param(
        lambda w: _put_chunked(w, "chunk-size-garbage", b"zz\r\nabc\r\n0\r\n\r\n", 3),
        400,
        "IncompleteBody",
        id="chunked-size-garbage",
    ),
    pytest.param(
        lambda w: _put_chunked(w, "chunk-size-lies", b"ff\r\nabc\r\n0\r\n\r\n", 3),
        400,
        "IncompleteBody",
        id="chunked-size-larger-than-body",
    ),
    pytest.param(
        lambda w: _put_chunked(w, "chunk-size-negative", b"-3\r\nabc\r\n0\r\n\r\n", 3),
        400,
        "IncompleteBody",
        id="chunked-size-negative",
    ),
    pytest.param(
        lambda w: _put_chunked(w, "chunk-decoded-lies", _chunked([b"abc"]), 4),
        400,
        "IncompleteBody",
        id="chunked-decoded-length-lies",
    ),
    pytest.param(
        lambda w: _put_chunked(w, "chunk-decoded-negative", _chunked([b"abc"]), -1),
        400,
        "InvalidArgument",
        id="chunked-decoded-length-negative",
    ),
    pytest.param(
        lambda w: _put_chunked(w, "chunk-decoded-huge", _chunked([b"abc"]), "9" * 30),
        400,
        "InvalidArgument",
        id="chunked-decoded-length-huge",
    ),
    pytest.param(
        lambda w: _put_chunked(w, "chunk-decoded-nan", _chunked([b"abc"]), "abc"),
        400,
        "InvalidArgument",
        id="chunked-decoded-length-not-number",
    ),
    pytest.param(
        lambda w: _put_chunked(w, "chunk-no-end", b"3\r\nabc\r\n", 3),
        400,
        "IncompleteBody",
        id="chunked-no-final-chunk",
    ),
    pytest.param(
        lambda w: _put_chunked(
            w, "chunk-undeclared-trailer", _chunked([b"abc"], "x-amz-checksum-crc32:AAAAAA==\r\n"), 3
        ),
        400,
        "InvalidRequest",
        id="chunked-undeclared-trailer",
    ),
    pytest.param(
        lambda w: _put_signed_chunks(w, "chunk-bad-signature", b"abc", bad_signature=True),
        403,
        "SignatureDoesNotMatch",
        id="chunked-bad-chunk-signature",
    ),
    pytest.param(
        lambda w: s3(
            w,
            "PUT",
            "sse-context-deep",
            body=b"x",
            headers={
                "x-amz-server-side-encryption": "aws:kms",
                "x-amz-server-side-encryption-context": base64.b64encode(_deep(3000).encode()).decode(),
            },
        ),
        400,
        "InvalidArgument",
        id="sse-context-nested",
    ),
    pytest.param(
        lambda w: s3(
            w,
            "PUT",
            "sse-context-garbage",
            body=b"x",
            headers={"x-amz-server-side-encryption": "aws:kms", "x-amz-server-side-encryption-context": "!!"},
        ),
        400,
        "InvalidArgument",
        id="sse-context-not-base64",
    ),
    pytest.param(
        lambda w: s3(w, "PUT", "sse-unknown", body=b"x", headers={"x-amz-server-side-encryption": "rot13"}),
        400,
        "InvalidArgument",
        id="sse-unknown-algorithm",
    ),
    # Multipart: part numbers, listing markers, CompleteMultipartUpload bodies.
    *[
        pytest.param(
            lambda w, n=n: s3(w, "PUT", "mpu", query=f"partNumber={n}&uploadId={w.upload_id}", body=b"x"),
            400,
            "InvalidArgument",
            id=f"part-number-{n[:12]}",
        )
        for n in ("0", "10001", "-1", "abc", "9" * 30, "1.5")
    ],
    pytest.param(
        lambda w: s3(w, "PUT", "mpu", query="partNumber=1&uploadId=no-such-upload", body=b"x"),
        404,
        "NoSuchUpload",
        id="upload-part-unknown-upload",
    ),
    pytest.param(
        lambda w: s3(w, "GET", "mpu", query=f"uploadId={w.upload_id}&part-number-marker={'9' * 20}"),
        400,
        "InvalidArgument",
        id="list-parts-marker-huge",
    ),
    pytest.param(
        lambda w: s3(w, "GET", "mpu", query=f"uploadId={w.upload_id}&part-number-marker=abc"),
        400,
        "InvalidArgument",
        id="list-parts-marker-not-number",
    ),
    pytest.param(
        lambda w: s3(w, "GET", "mpu", query=f"uploadId={w.upload_id}&max-parts={'9' * 20}"),
        400,
        "InvalidArgument",
        id="list-parts-max-huge",
    ),
    pytest.param(
        lambda w: s3(w, "GET", query="uploads=&max-uploads=-5"),
        400,
        "InvalidArgument",
        id="list-uploads-max-neg",
    ),
    pytest.param(
        lambda w: s3(w, "GET", "mpu", query=f"uploadId={w.upload_id}&max-parts=-1"),
        400,
        "InvalidArgument",
        id="list-parts-max-neg",
    ),
    pytest.param(lambda w: _complete(w, b"<not xml"), 400, "MalformedXML", id="complete-not-xml"),
    pytest.param(lambda w: _complete(w, b""), 400, "MalformedXML", id="complete-empty"),
    pytest.param(
        lambda w: _complete(w, b"<CompleteMultipartUpload/>"), 400, "MalformedXML", id="complete-no-parts"
    ),
    pytest.param(lambda w: _complete(w, b"\xff\xfe<a/>"), 400, "MalformedXML", id="complete-not-utf8"),
    pytest.param(lambda w: _complete(w, _LAUGHS), 400, "MalformedXML", id="complete-billion-laughs"),
    pytest.param(lambda w: _complete(w, _EXTERNAL), 400, "MalformedXML", id="complete-external-entity"),
    pytest.param(
        lambda w: _complete(w, "<a>" * 100_000 + "</a>" * 100_000),
        400,
        "MalformedXML",
        id="complete-nested-100000",
    ),
    pytest.param(
        lambda w: _complete(
            w,
            "<CompleteMultipartUpload>"
            + "<Part><PartNumber>1</PartNumber></Part>" * 200_000
            + "</CompleteMultipartUpload>",
        ),
        400,
        "EntityTooLarge",
        id="complete-over-4mb",
    ),
    pytest.param(
        lambda w: _complete(w, _parts_xml(("abc", w.part_etag))), 400, "MalformedXML", id="complete-part-abc"
    ),
    pytest.param(
        lambda w: _complete(w, _parts_xml(("9" * 30, w.part_etag))),
        400,
        "InvalidPart",
        id="complete-part-huge",
    ),
    pytest.param(
        lambda w: _complete(w, _parts_xml(("-1", w.part_etag))),
        400,
        "InvalidPart",
        id="complete-part-negative",
    ),
    pytest.param(
        lambda w: _complete(w, _parts_xml(("2", w.part_etag), ("1", w.part_etag))),
        400,
        "InvalidPartOrder",
        id="complete-parts-descending",
    ),
    pytest.param(
        lambda w: _complete(w, _parts_xml(("1", '"0000"'))), 400, "InvalidPart", id="complete-wrong-etag"
    ),
    pytest.param(
        lambda w: s3(w, "POST", "mpu", query="uploadId=no-such-upload", body=_parts_xml(("1", w.part_etag))),
        404,
        "NoSuchUpload",
        id="complete-unknown-upload",
    ),
    # Ranges.
    pytest.param(
        lambda w: s3(w, "GET", "obj", headers={"Range": "bytes=10-"}),
        416,
        "InvalidRange",
        id="range-past-end",
    ),
    pytest.param(
        lambda w: s3(w, "GET", "obj", headers={"Range": "bytes=-0"}),
        416,
        "InvalidRange",
        id="range-empty-suffix",
    ),
    pytest.param(
        lambda w: s3(w, "GET", "obj", headers={"Range": "bytes=" + "9" * 40 + "-"}),
        416,
        "InvalidRange",
        id="range-start-huge",
    ),
    # Response header overrides from the query string.
    *[
        pytest.param(
            lambda w, name=name, value=value: s3(w, "GET", "obj", query=f"{name}={quote(value, safe='')}"),
            400,
            "InvalidArgument",
            id=f"{name}-{label}",
        )
        for name, value, label in (
            ("response-content-type", "text/html\r\nX-Injected: 1", "crlf"),
            ("response-content-type", "text/\u2603", "beyond-latin1"),
            ("response-content-disposition", "attachment; filename=\u2603.txt", "beyond-latin1"),
            ("response-cache-control", "no-cache\x00", "nul"),
        )
    ],
    # Listing.
    pytest.param(
        lambda w: s3(w, "GET", query="list-type=2&max-keys=-1"), 400, "InvalidArgument", id="max-keys-neg"
    ),
    pytest.param(
        lambda w: s3(w, "GET", query="list-type=2&max-keys=abc"), 400, "InvalidArgument", id="max-keys-abc"
    ),
    pytest.param(
        # base64 of bytes that are not UTF-8
        lambda w: s3(w, "GET", query="list-type=2&continuation-token=__79"),
        400,
        "InvalidArgument",
        id="continuation-token-garbage",
    ),
    # Headers of other types.
    pytest.param(
        lambda w: s3(w, "GET", "obj", headers={"If-Modified-Since": "yesterday at noon"}),
        400,
        "InvalidArgument",
        id="if-modified-since-garbage",
    ),
    # Authentication.
    pytest.param(lambda w: s3(w, "GET", "obj", sign=False), 403, "AccessDenied", id="s3-unsigned"),
    pytest.param(
        lambda w: s3(w, "GET", "obj", replace_headers={"Authorization": "AWS AKIA:abc"}),
        (400, 403),
        "AuthorizationHeaderMalformed",
        id="s3-sigv2",
    ),
    pytest.param(
        lambda w: s3(
            w, "GET", "obj", replace_headers={"x-amz-content-sha256": hashlib.sha256(b"z").hexdigest()}
        ),
        403,
        "SignatureDoesNotMatch",
        id="s3-content-sha256-swapped-after-signing",
    ),
    pytest.param(
        lambda w: s3(w, "GET", "obj", replace_headers={"Authorization": "AWS4-HMAC-SHA256 Credential=x"}),
        (400, 403),
        "AuthorizationHeaderMalformed",
        id="s3-sigv4-garbled",
    ),
    pytest.param(
        lambda w: send(w.server, "PUT", "/Bad_Bucket_Name", service="s3"),
        400,
        "InvalidBucketName",
        id="bucket-name-invalid",
    ),
]


@pytest.mark.parametrize(("build", "status", "code"), S3_CASES)
def test_s3_rejects_hostile_input(
    world: World, build: Build, status: int | tuple[int, ...], code: str
) -> None:
    assert_error(build(world), "s3", status, code)


def test_rejected_s3_writes_store_nothing(world: World) -> None:
    """Every rejected PUT above used its own key: none of them exists, and the upload still has
    exactly its one part (no CompleteMultipartUpload above succeeded)."""
    client = world.server.client("s3")
    keys = {obj["Key"] for obj in client.list_objects_v2(Bucket=world.bucket).get("Contents", [])}
    assert keys == {"obj"}, keys
    parts = client.list_parts(Bucket=world.bucket, Key="mpu", UploadId=world.upload_id)["Parts"]
    assert [(p["PartNumber"], p["ETag"]) for p in parts] == [(1, world.part_etag)]
    assert client.get_object(Bucket=world.bucket, Key="obj")["Body"].read() == b"0123456789"


def test_pathological_wildcards_in_a_policy_cannot_hang_a_request(world: World) -> None:
    """A bucket policy Resource of many stars (*a*a*...*b), evaluated against a long key: a
    plain wildcard regex backtracked for hours on it (a request thread spinning for good);
    the answer now comes at once, and the pattern still means what it says."""
    client = world.server.client("s3")
    bucket = "wild-" + uuid.uuid4().hex[:12]
    client.create_bucket(Bucket=bucket)
    pattern = f"arn:aws:s3:::{bucket}/" + "*a" * 24 + "*b"
    statement = {"Effect": "Deny", "Principal": "*", "Action": "s3:GetObject", "Resource": pattern}
    client.put_bucket_policy(
        Bucket=bucket, Policy=json.dumps({"Version": "2012-10-17", "Statement": [statement]})
    )
    try:
        started = time.monotonic()
        reply = send(world.server, "GET", f"/{bucket}/" + "a" * 400, service="s3", timeout=10)
        assert_error(reply, "s3", 404, "NoSuchKey")  # no b at the end: not denied, just absent
        assert time.monotonic() - started < 2
        reply = send(world.server, "GET", f"/{bucket}/" + "xa" * 30 + "b", service="s3", timeout=10)
        assert_error(reply, "s3", 403, "AccessDenied")  # 24 a's then a final b: denied
    finally:
        client.delete_bucket_policy(Bucket=bucket)
        client.delete_bucket(Bucket=bucket)


def test_rejected_uploads_leave_no_file(world: World) -> None:
    """A body refused mid-stream or at its end is removed from disk, not only from the listing."""
    before = stored_files(world.server)
    replies = [
        s3(world, "PUT", "disk-sha", body=b"x" * 100_000, declared_sha256=hashlib.sha256(b"y").hexdigest()),
        _put_chunked(world, "disk-lies", _chunked([b"a" * 100_000]), 100_001),
        _put_chunked(world, "disk-longer", _chunked([b"a" * 100_000]), 10),
        _put_signed_chunks(world, "disk-signature", b"s" * 100_000, bad_signature=True),
        s3(
            world,
            "PUT",
            "mpu",
            query=f"partNumber=2&uploadId={world.upload_id}",
            body=b"p" * 1000,
            headers={"Content-MD5": base64.b64encode(b"0" * 16).decode()},
        ),
    ]
    assert [r.status for r in replies] == [400, 400, 400, 403, 400], [r.body[:200] for r in replies]
    assert stored_files(world.server) == before


@pytest.mark.parametrize(
    ("header", "status", "body"),
    [
        ("bytes=abc", 200, b"0123456789"),  # S3 ignores a malformed range
        ("bytes=5-1", 200, b"0123456789"),  # and an inverted one
        ("bytes=0-1,3-4", 200, b"0123456789"),  # and multiple ranges
        ("bytes=2-" + "9" * 40, 206, b"23456789"),  # an end past the object is clamped
        ("bytes=-" + "9" * 40, 206, b"0123456789"),  # a suffix longer than the object is all of it
    ],
)
def test_odd_ranges(world: World, header: str, status: int, body: bytes) -> None:
    reply = s3(world, "GET", "obj", headers={"Range": header})
    assert (reply.status, reply.body) == (status, body)


@pytest.mark.parametrize(
    "raw_key",
    ["a/../b", "./x", "dir/", "dir//x", "%E2%98%83/%F0%9F%98%80", "k%20with%20spaces", "%25%25"],
)
def test_odd_keys_are_literal(world: World, raw_key: str) -> None:
    """Dot segments, trailing and doubled slashes and unicode are a key's own characters: the
    object is stored and read back under exactly that key."""
    from urllib.parse import unquote

    put = s3(world, "PUT", raw_key, body=b"odd")
    assert put.status == 200, put.body
    try:
        got = s3(world, "GET", raw_key)
        assert (got.status, got.body) == (200, b"odd")
        listed = world.server.client("s3").list_objects_v2(Bucket=world.bucket, Prefix=unquote(raw_key))
        assert [obj["Key"] for obj in listed["Contents"]] == [unquote(raw_key)]
    finally:
        assert s3(world, "DELETE", raw_key).status == 204


def test_zero_page_sizes_list_nothing(world: World) -> None:
    """max-parts=0 / max-uploads=0 with parts and uploads present: an empty, truncated page (it
    raised IndexError looking for the page's last item to continue after)."""
    client = world.server.client("s3")
    parts = client.list_parts(Bucket=world.bucket, Key="mpu", UploadId=world.upload_id, MaxParts=0)
    assert parts.get("Parts", []) == [] and parts["IsTruncated"] is True
    uploads = client.list_multipart_uploads(Bucket=world.bucket, MaxUploads=0)
    assert uploads.get("Uploads", []) == [] and uploads["IsTruncated"] is True
    reply = s3(
        world, "GET", "obj", query="response-content-type=" + quote("text/plain; charset=\u00e9", safe="")
    )
    assert reply.status == 200 and reply.headers["content-type"] == "text/plain; charset=\u00e9"


def test_copy_source_preconditions_are_kept(world: World) -> None:
    """A CopyObject whose x-amz-copy-source-if-* condition fails is 412 PreconditionFailed and
    writes nothing (the conditions were ignored: the copy was always made)."""
    client = world.server.client("s3")
    head = client.head_object(Bucket=world.bucket, Key="obj")
    etag, modified = head["ETag"], head["LastModified"]
    source = {"Bucket": world.bucket, "Key": "obj"}
    past, future = modified - timedelta(days=1), modified + timedelta(days=1)
    failing = [
        {"CopySourceIfMatch": '"00000000000000000000000000000000"'},
        {"CopySourceIfNoneMatch": etag},
        {"CopySourceIfNoneMatch": "*"},
        {"CopySourceIfModifiedSince": future},
        {"CopySourceIfUnmodifiedSince": past},
    ]
    for condition in failing:
        with pytest.raises(ClientError) as caught:
            client.copy_object(Bucket=world.bucket, Key="copy-cond", CopySource=source, **condition)
        assert caught.value.response["Error"]["Code"] == "PreconditionFailed", condition
        assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 412
    keys = {o["Key"] for o in client.list_objects_v2(Bucket=world.bucket).get("Contents", [])}
    assert "copy-cond" not in keys
    holding = [
        {"CopySourceIfMatch": etag},
        {"CopySourceIfMatch": etag, "CopySourceIfUnmodifiedSince": past},  # If-Match wins, as S3 has it
        {"CopySourceIfNoneMatch": '"0000"', "CopySourceIfModifiedSince": future},
        {"CopySourceIfModifiedSince": past, "CopySourceIfUnmodifiedSince": future},
    ]
    for condition in holding:
        client.copy_object(Bucket=world.bucket, Key="copy-cond", CopySource=source, **condition)
    assert client.get_object(Bucket=world.bucket, Key="copy-cond")["Body"].read() == b"0123456789"
    client.delete_object(Bucket=world.bucket, Key="copy-cond")


def test_signed_chunks_are_accepted_when_right(world: World) -> None:
    """The chunk signer of the hostile cases is right: the same body with good signatures is stored."""
    reply = _put_signed_chunks(world, "chunk-good", b"abc", bad_signature=False)
    assert reply.status == 200, reply.body
    try:
        assert s3(world, "GET", "chunk-good").body == b"abc"
    finally:
        s3(world, "DELETE", "chunk-good")


def test_content_length_lies(world: World) -> None:
    """A negative Content-Length is refused at the HTTP layer; a body shorter than its
    Content-Length (the client gives up) leaves no object and the server answering."""
    negative = s3(world, "PUT", "cl-negative", body=b"x", replace_headers={"Content-Length": "-1"})
    assert negative.status == 400
    request = AWSRequest(method="PUT", url=f"{world.server.endpoint}/{world.bucket}/cl-short", data=b"x" * 10)
    S3SigV4Auth(
        Credentials(world.server.access_key_id, world.server.secret_access_key), "s3", REGION
    ).add_auth(request)
    conn = http.client.HTTPConnection("127.0.0.1", world.server.port, timeout=2)
    conn.putrequest("PUT", f"/{world.bucket}/cl-short")
    for name, value in request.headers.items():
        conn.putheader(name, value)
    conn.putheader("Content-Length", "100")
    conn.endheaders(b"x" * 10)
    conn.close()  # 90 bytes never come
    with pytest.raises(ClientError) as caught:
        world.server.client("s3").head_object(Bucket=world.bucket, Key="cl-short")
    assert caught.value.response["Error"]["Code"] == "404"
