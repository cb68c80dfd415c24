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
