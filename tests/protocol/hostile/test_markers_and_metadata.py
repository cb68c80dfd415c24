"""Pagination tokens mailcrate never issued, and oversized user metadata, against a real serve.

As in AWS: an S3 ListObjectsV2 continuation-token that is not one S3 issued is 400
``InvalidArgument``; a KMS ListKeys / ListAliases Marker that is not one KMS issued is 400
``InvalidMarkerException``; user metadata (``x-amz-meta-*``) over 2 KB (UTF-8 bytes of each
key, without the prefix, plus its value) is 400 ``MetadataTooLarge`` on PutObject, CopyObject
with REPLACE and CreateMultipartUpload, before any body is read. Before, garbage tokens and
markers silently listed from the start and metadata had no limit. Tokens and markers that were
issued still page through everything exactly once.

Requests go through boto3 where it can send them, raw signed requests (the hostile-request
suite's ``send``) otherwise; its ``still_answering`` fixture checks the server after each test.
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from botocore.exceptions import ClientError

from mailcrate.services.pagination import encode_token
from tests.protocol.hostile.support import assert_error, send, stored_files
from tests.support.mailcrate_server import MailcrateServer

SERVE_ARGS = ("--export-workers", "0")
KEYS = ["a/1", "a/2", "b", "c", "d/x/1", "e"]
LIMIT = 2048


def _refused(call: Any, status: int, code: str) -> ClientError:
    with pytest.raises(ClientError) as caught:
        call()
    error = caught.value.response
    assert (error["ResponseMetadata"]["HTTPStatusCode"], error["Error"]["Code"]) == (status, code), error
    return caught.value


# --- S3 continuation tokens ----------------------------------------------------------------------
@pytest.fixture(scope="module")
def s3(server: MailcrateServer) -> Any:
    return server.client("s3")


@pytest.fixture(scope="module")
def listed(s3: Any) -> str:
    bucket = "tokens-" + uuid.uuid4().hex[:12]
    s3.create_bucket(Bucket=bucket)
    for key in KEYS:
        s3.put_object(Bucket=bucket, Key=key, Body=key.encode())
    return bucket


def _keys(s3: Any, bucket: str) -> list[str]:
    return [o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])]


def test_issued_continuation_tokens_page_through_everything(s3: Any, listed: str) -> None:
    pages = list(
        s3.get_paginator("list_objects_v2").paginate(Bucket=listed, PaginationConfig={"PageSize": 2})
    )
    assert len(pages) == 3
    assert [o["Key"] for page in pages for o in page.get("Contents", [])] == KEYS
    grouped = list(
        s3.get_paginator("list_objects_v2").paginate(
            Bucket=listed, Delimiter="/", PaginationConfig={"PageSize": 1}
        )
    )
    assert [o["Key"] for page in grouped for o in page.get("Contents", [])] == ["b", "c", "e"]
    assert [p["Prefix"] for page in grouped for p in page.get("CommonPrefixes", [])] == ["a/", "d/"]


def _valid_token(s3: Any, bucket: str) -> str:
    return s3.list_objects_v2(Bucket=bucket, MaxKeys=1)["NextContinuationToken"]


def _tampered(token: str) -> str:
    raw = bytearray(base64.urlsafe_b64decode(token))
    raw[-3] ^= 0x01  # one bit near the end of the payload
    return base64.urlsafe_b64encode(bytes(raw)).decode()


def _scope(token: str) -> str:
    """The scope a token or marker mailcrate issued is bound to (its payload's first member)."""
    return json.loads(base64.urlsafe_b64decode(token)[8:])[0]


def _forged(s3: Any, bucket: str, key: Any) -> str:
    """A token with a valid checksum (anyone can compute one) around a key no page ended with."""
    return encode_token(_scope(_valid_token(s3, bucket)), [key] if not isinstance(key, list) else key)


TOKENS = {
    "not-base64": lambda s3, b, other: "this is not a token!",
    "bad-padding": lambda s3, b, other: "x",
    "not-utf8": lambda s3, b, other: "__79",
    "plain-base64-of-a-key": lambda s3, b, other: base64.urlsafe_b64encode(b"c").decode(),  # the old tokens
    "tampered": lambda s3, b, other: _tampered(_valid_token(s3, b)),
    "other-buckets": lambda s3, b, other: _valid_token(s3, other),
    "forged-nul": lambda s3, b, other: _forged(s3, b, "a\x00"),
    "forged-surrogate": lambda s3, b, other: _forged(s3, b, "\ud800"),
    "forged-long": lambda s3, b, other: _forged(s3, b, "k" * 2000),
    "forged-number": lambda s3, b, other: _forged(s3, b, 7),
    "forged-two-keys": lambda s3, b, other: _forged(s3, b, ["a", "b"]),
}


@pytest.fixture(scope="module")
def other_bucket(s3: Any) -> str:
    bucket = "tokens-other-" + uuid.uuid4().hex[:8]
    s3.create_bucket(Bucket=bucket)
    for key in ("a", "b"):
        s3.put_object(Bucket=bucket, Key=key, Body=b"x")
    return bucket


@pytest.mark.parametrize("make", TOKENS.values(), ids=TOKENS.keys())
def test_continuation_tokens_never_issued_are_refused(
    s3: Any, listed: str, other_bucket: str, make: Any
) -> None:
    token = make(s3, listed, other_bucket)
    error = _refused(
        lambda: s3.list_objects_v2(Bucket=listed, ContinuationToken=token), 400, "InvalidArgument"
    )
    assert error.response["Error"]["Message"] == "The continuation token provided is incorrect"
    assert error.response["Error"]["ArgumentName"] == "continuation-token"
    assert _keys(s3, listed) == KEYS  # the listing itself is untouched


def test_an_empty_continuation_token_starts_the_listing(
    server: MailcrateServer, s3: Any, listed: str
) -> None:
    """S3 takes an empty continuation-token as none (Ceph's s3-tests
    test_bucket_listv2_continuationtoken_empty, run against AWS); one it did not issue is refused."""
    empty = s3.list_objects_v2(Bucket=listed, ContinuationToken="")
    assert empty["ContinuationToken"] == "" and [o["Key"] for o in empty["Contents"]] == KEYS
    reply = send(server, "GET", f"/{listed}", service="s3", query="list-type=2&continuation-token=%C3%A9")
    assert_error(reply, "s3", 400, "InvalidArgument")
    assert _keys(s3, listed) == KEYS


# --- KMS markers ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def kms(server: MailcrateServer) -> Any:
    return server.client("kms")


@pytest.fixture(scope="module")
def kms_keys(kms: Any) -> list[str]:
    """Three keys; the first has three aliases, the second one."""
    ids = [kms.create_key(Description=f"marker {n}")["KeyMetadata"]["KeyId"] for n in range(3)]
    for name in ("alias/m-one", "alias/m-two", "alias/m-three"):
        kms.create_alias(AliasName=name, TargetKeyId=ids[0])
    kms.create_alias(AliasName="alias/m-other", TargetKeyId=ids[1])
    return ids


def _all(kms: Any, operation: str, item: str, field: str, **kw: Any) -> list[str]:
    pages = kms.get_paginator(operation).paginate(**kw, PaginationConfig={"PageSize": 1})
    return [entry[field] for page in pages for entry in page[item]]


def test_issued_markers_page_through_everything(kms: Any, kms_keys: list[str]) -> None:
    listed = _all(kms, "list_keys", "Keys", "KeyId")
    assert sorted(listed) == listed and set(kms_keys) <= set(listed) and len(set(listed)) == len(listed)
    aliases = _all(kms, "list_aliases", "Aliases", "AliasName", KeyId=kms_keys[0])
    assert aliases == ["alias/m-one", "alias/m-three", "alias/m-two"]
    everything = _all(kms, "list_aliases", "Aliases", "AliasName")
    assert {"alias/m-one", "alias/m-three", "alias/m-two", "alias/m-other"} <= set(everything)
    assert len(set(everything)) == len(everything)


def _next(kms: Any, operation: str, **kw: Any) -> str:
    reply = getattr(kms, operation)(Limit=1, **kw)
    assert reply["Truncated"], reply
    return reply["NextMarker"]


def _forged_marker(kms: Any, operation: str, key: Any) -> str:
    return encode_token(_scope(_next(kms, operation)), [key])


MARKERS = {
    "garbage": lambda kms, ids, op: "garbage",
    "not-ascii-base64": lambda kms, ids, op: "\u00e9\u00e9\u00e9\u00e9",
    "a-key-id": lambda kms, ids, op: ids[0],  # what ListKeys' NextMarker used to be
    "an-alias-name": lambda kms, ids, op: "alias/m-one",  # and ListAliases'
    "tampered": lambda kms, ids, op: _tampered(_next(kms, op)),
    "forged-nul": lambda kms, ids, op: _forged_marker(kms, op, "a\x00"),
    "forged-empty": lambda kms, ids, op: _forged_marker(kms, op, ""),
    "forged-number": lambda kms, ids, op: _forged_marker(kms, op, 3),
    "forged-long": lambda kms, ids, op: _forged_marker(kms, op, "alias/" + "x" * 300),
}


@pytest.mark.parametrize("operation", ["list_keys", "list_aliases"])
@pytest.mark.parametrize("make", MARKERS.values(), ids=MARKERS.keys())
def test_markers_never_issued_are_refused(kms: Any, kms_keys: list[str], operation: str, make: Any) -> None:
    marker = make(kms, kms_keys, operation)
    error = _refused(lambda: getattr(kms, operation)(Marker=marker), 400, "InvalidMarkerException")
    assert error.response["Error"]["Message"]


def test_markers_do_not_cross_lists(kms: Any, kms_keys: list[str]) -> None:
    """A marker continues only the list it came from: ListKeys' is not ListAliases', and one
    key's aliases are not another's (nor the account's)."""
    keys_marker = _next(kms, "list_keys")
    _refused(lambda: kms.list_aliases(Marker=keys_marker), 400, "InvalidMarkerException")
    aliases_marker = _next(kms, "list_aliases")
    _refused(lambda: kms.list_keys(Marker=aliases_marker), 400, "InvalidMarkerException")
    one_key = _next(kms, "list_aliases", KeyId=kms_keys[0])
    _refused(lambda: kms.list_aliases(Marker=one_key), 400, "InvalidMarkerException")
    _refused(lambda: kms.list_aliases(KeyId=kms_keys[1], Marker=one_key), 400, "InvalidMarkerException")
    assert kms.list_aliases(KeyId=kms_keys[0], Marker=one_key)["Aliases"]  # its own list goes on


# --- S3 user metadata ----------------------------------------------------------------------------
def _metadata(total: int, entries: int = 1) -> dict[str, str]:
    """``entries`` pairs whose keys and values add up to ``total`` bytes."""
    out: dict[str, str] = {}
    share = total // entries
    for n in range(entries):
        name = f"k{n}"
        size = (share if n < entries - 1 else total - share * (entries - 1)) - len(name)
        out[name] = "v" * size
    return out


def test_metadata_up_to_2kb_is_stored(s3: Any, listed: str) -> None:
    for entries in (1, 4):
        key = f"meta-ok-{entries}"
        s3.put_object(Bucket=listed, Key=key, Body=b"x", Metadata=_metadata(LIMIT, entries))
        assert s3.head_object(Bucket=listed, Key=key)["Metadata"] == _metadata(LIMIT, entries)
        s3.delete_object(Bucket=listed, Key=key)


@pytest.fixture
def files_unchanged(server: MailcrateServer, s3: Any, listed: str) -> Iterator[None]:
    """The bucket lists the same keys and the data directory holds the same files after the test."""
    before = stored_files(server)
    yield
    assert _keys(s3, listed) == KEYS
    assert stored_files(server) == before


@pytest.mark.usefixtures("files_unchanged")
@pytest.mark.parametrize("entries", [1, 5])
def test_oversized_metadata_is_refused_everywhere(s3: Any, listed: str, entries: int) -> None:
    metadata = _metadata(LIMIT + 1, entries)
    error = _refused(
        lambda: s3.put_object(Bucket=listed, Key="meta-big", Body=b"x" * 100_000, Metadata=metadata),
        400,
        "MetadataTooLarge",
    )
    assert error.response["Error"]["Size"] == str(LIMIT + 1)
    assert error.response["Error"]["MaxSizeAllowed"] == str(LIMIT)
    _refused(
        lambda: s3.copy_object(
            Bucket=listed,
            Key="meta-copy",
            CopySource=f"{listed}/b",
            MetadataDirective="REPLACE",
            Metadata=metadata,
        ),
        400,
        "MetadataTooLarge",
    )
    _refused(
        lambda: s3.create_multipart_upload(Bucket=listed, Key="meta-mpu", Metadata=metadata),
        400,
        "MetadataTooLarge",
    )
    assert s3.list_multipart_uploads(Bucket=listed).get("Uploads", []) == []


def test_copy_keeps_metadata_when_not_replacing(s3: Any, listed: str) -> None:
    """With the COPY directive the request's metadata is ignored, so its size does not matter."""
    s3.copy_object(
        Bucket=listed, Key="meta-copied", CopySource=f"{listed}/c", Metadata=_metadata(LIMIT + 500)
    )
    try:
        assert s3.head_object(Bucket=listed, Key="meta-copied").get("Metadata", {}) == {}
    finally:
        s3.delete_object(Bucket=listed, Key="meta-copied")


def _raw_put(server: MailcrateServer, bucket: str, key: str, value: bytes, body: bytes) -> Any:
    # http.client sends header text as latin-1: this puts the value's UTF-8 bytes on the wire.
    headers = {"x-amz-meta-k": value.decode("latin-1")}
    return send(server, "PUT", f"/{bucket}/{key}", service="s3", body=body, headers=headers)


@pytest.mark.usefixtures("files_unchanged")
def test_metadata_size_counts_utf8_bytes(server: MailcrateServer, s3: Any, listed: str) -> None:
    """1 + 2 * 1023 bytes of key and UTF-8 value fit; 1 + 2 * 1024 do not (though 1025 characters)."""
    fits = _raw_put(server, listed, "meta-utf8", ("\u00e9" * 1023).encode(), b"x")
    assert fits.status == 200, fits.body
    # The UTF-8 the client sent is kept as its text and returned one byte per character (what
    # boto3 reads back as the same text; Ceph s3-tests test_object_set_get_unicode_metadata).
    assert s3.head_object(Bucket=listed, Key="meta-utf8")["Metadata"]["k"] == "\u00e9" * 1023
    s3.delete_object(Bucket=listed, Key="meta-utf8")
    reply = _raw_put(server, listed, "meta-utf8", ("\u00e9" * 1024).encode(), b"y" * 256 * 1024)
    assert_error(reply, "s3", 400, "MetadataTooLarge")
