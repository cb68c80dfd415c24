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
from typing import Any

import pytest
from botocore.exceptions import ClientError

from mailcrate.services.pagination import encode_token
from tests.protocol.test_hostile_requests import (
    assert_error,
    send,
    still_answering,  # noqa: F401  (autouse: the server answers /health after every test)
)
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


def test_an_empty_continuation_token_is_refused(server: MailcrateServer, s3: Any, listed: str) -> None:
    reply = send(server, "GET", f"/{listed}", service="s3", query="list-type=2&continuation-token=")
    assert_error(reply, "s3", 400, "InvalidArgument")
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
