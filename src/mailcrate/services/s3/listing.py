"""ListObjectsV2 and ListObjects: prefix, delimiter (common prefixes), pagination, url encoding."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from sqlalchemy import select

from mailcrate.services.base import Call
from mailcrate.services.pagination import decode_cursor, encode_token
from mailcrate.services.s3 import buckets, errors
from mailcrate.storage.db import as_utc
from mailcrate.storage.tables_kms_s3 import s3_objects

_BATCH = 1000
_SENTINEL = "\U0010ffff"  # sorts after every key that starts with a common prefix
_MAX_CURSOR_BYTES = 1024 + len(_SENTINEL.encode("utf-8"))  # a key, or a common prefix + sentinel


def _scope(bucket: str) -> str:
    return f"s3:ListObjectsV2:{bucket}"


def _token(bucket: str, key: str) -> str:
    """An opaque token naming the key a page ended with, checksummed and bound to its bucket."""
    return encode_token(_scope(bucket), [key])


def _untoken(bucket: str, token: str) -> str:
    """The key a token of this bucket names (an object key, or a common prefix plus the
    sentinel); anything else is S3's InvalidArgument.

    Tokens were plain base64 of the key, decoded leniently: garbage often decoded to some key (or
    to nothing) and the listing silently restarted instead of failing as S3 does.
    """
    key = decode_cursor(_scope(bucket), token, _MAX_CURSOR_BYTES)
    if key is None:
        raise errors.InvalidArgument(
            "The continuation token provided is incorrect", ArgumentName="continuation-token"
        )
    return key


def _scan(
    conn: Any, bucket: str, prefix: str, delimiter: str, after: str, limit: int
) -> tuple[list[Any], list[str], bool, str]:
    """Up to ``limit`` entries (objects and common prefixes) after ``after``; returns the last one."""
    contents: list[Any] = []
    prefixes: list[str] = []
    cursor = after
    while True:
        query = select(
            s3_objects.c.key,
            s3_objects.c.size,
            s3_objects.c.etag,
            s3_objects.c.last_modified,
            s3_objects.c.attributes,
        ).where(s3_objects.c.bucket == bucket, s3_objects.c.key > cursor)
        if prefix:
            query = query.where(s3_objects.c.key >= prefix)
        rows = conn.execute(query.order_by(s3_objects.c.key).limit(_BATCH)).all()
        if not rows:
            return contents, prefixes, False, cursor
        for row in rows:
            if not row.key.startswith(prefix):
                if row.key > prefix:
                    return contents, prefixes, False, cursor
                cursor = row.key
                continue
            if len(contents) + len(prefixes) >= limit:
                return contents, prefixes, True, cursor
            if delimiter:
                at = row.key.find(delimiter, len(prefix))
                if at >= 0:
                    common = row.key[: at + len(delimiter)]
                    if not prefixes or prefixes[-1] != common:
                        prefixes.append(common)
                    cursor = common + _SENTINEL
                    break  # skip the rest of this common prefix with a fresh query
            contents.append(row)
            cursor = row.key
        else:
            if len(rows) < _BATCH:
                return contents, prefixes, False, cursor


def _render(rows: list[Any], encode: bool) -> list[dict[str, Any]]:
    import json

    out = []
    for row in rows:
        item = {
            "Key": quote(row.key, safe="/") if encode else row.key,
            "LastModified": as_utc(row.last_modified),
            "ETag": row.etag,
            "Size": row.size,
            "StorageClass": "STANDARD",
        }
        checksum = json.loads(row.attributes).get("checksum")
        if checksum:
            item["ChecksumAlgorithm"] = [checksum["algorithm"]]
            item["ChecksumType"] = checksum["type"]
        out.append(item)
    return out


def list_objects(call: Call, *, v2: bool) -> dict[str, Any]:
    p = call.params
    prefix = p.get("Prefix") or ""
    delimiter = p.get("Delimiter") or ""
    max_keys = p.get("MaxKeys", 1000)
    if max_keys < 0:
        raise errors.InvalidArgument(
            "Argument maxKeys must be an integer between 0 and 2147483647", ArgumentName="maxKeys"
        )
    max_keys = min(max_keys, 1000)
    encoding = p.get("EncodingType")
    if encoding not in (None, "url"):
        raise errors.InvalidArgument(
            "Invalid Encoding Method specified in Request", ArgumentName="encoding-type"
        )
    encode = encoding == "url"
    context = {"s3:prefix": prefix, "s3:max-keys": max_keys}
    if delimiter:
        context["s3:delimiter"] = delimiter
    if v2:
        after = (
            _untoken(p["Bucket"], p["ContinuationToken"])
            if p.get("ContinuationToken") is not None  # an empty one was not issued either
            else (p.get("StartAfter") or "")
        )
    else:
        after = p.get("Marker") or ""
    with call.context.db.read() as conn:
        bucket = buckets.visible(conn, call, p["Bucket"], "s3:ListBucket", context=context)
        rows, commons, truncated, last = (
            _scan(conn, bucket.name, prefix, delimiter, after, max_keys)
            if max_keys
            else ([], [], False, after)
        )

    def enc(value: str | None) -> str | None:
        return quote(value, safe="/") if (encode and value) else value

    out: dict[str, Any] = {
        "Name": bucket.name,
        "Prefix": enc(prefix),
        "Delimiter": enc(delimiter) or None,
        "MaxKeys": max_keys,
        "IsTruncated": truncated,
        "Contents": _render(rows, encode) or None,
        "CommonPrefixes": [{"Prefix": enc(c)} for c in commons] or None,
        "EncodingType": encoding,
    }
    if v2:
        out["KeyCount"] = len(rows) + len(commons)
        out["ContinuationToken"] = p.get("ContinuationToken")
        out["StartAfter"] = enc(p.get("StartAfter"))
        if truncated:
            out["NextContinuationToken"] = _token(p["Bucket"], last)
    else:
        out["Marker"] = enc(p.get("Marker") or "")
        if truncated and delimiter:
            out["NextMarker"] = enc(last)
    return out
