"""ListObjectsV2 and ListObjects: prefix, delimiter (common prefixes), pagination, url encoding."""

from __future__ import annotations

import json
from collections.abc import Callable
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
                    if common <= after:  # the marker is this common prefix (a NextMarker): sent
                        cursor = common + _SENTINEL
                        break
                    if not prefixes or prefixes[-1] != common:
                        prefixes.append(common)
                    cursor = common + _SENTINEL
                    break  # skip the rest of this common prefix with a fresh query
            contents.append(row)
            cursor = row.key
        else:
            if len(rows) < _BATCH:
                return contents, prefixes, False, cursor


def _render(rows: list[Any], encode: bool, owner: dict[str, str] | None = None) -> list[dict[str, Any]]:
    out = []
    for row in rows:
        item = {
            "Key": quote(row.key, safe="/") if encode else row.key,
            "LastModified": as_utc(row.last_modified),
            "ETag": row.etag,
            "Size": row.size,
            "StorageClass": "STANDARD",
        }
        if owner is not None:
            item["Owner"] = owner
        checksum = json.loads(row.attributes).get("checksum")
        if checksum:
            item["ChecksumAlgorithm"] = [checksum["algorithm"]]
            item["ChecksumType"] = checksum["type"]
        out.append(item)
    return out


def _owner(bucket: buckets.Bucket) -> dict[str, str]:
    """Objects here belong to the bucket's account (there are no ACLs to hand them to another)."""
    return {"ID": bucket.account_id, "DisplayName": bucket.account_id}


def _page_args(p: dict[str, Any]) -> tuple[str, str, int, str | None]:
    """(prefix, delimiter, max-keys up to 1000, encoding-type) of a listing, checked."""
    max_keys = p.get("MaxKeys", 1000)
    if max_keys < 0:
        raise errors.InvalidArgument(
            "Argument maxKeys must be an integer between 0 and 2147483647", ArgumentName="maxKeys"
        )
    encoding = p.get("EncodingType")
    if encoding not in (None, "url"):
        raise errors.InvalidArgument(
            "Invalid Encoding Method specified in Request", ArgumentName="encoding-type"
        )
    return p.get("Prefix") or "", p.get("Delimiter") or "", min(max_keys, 1000), encoding


def _page(
    call: Call, action: str, prefix: str, delimiter: str, max_keys: int, after: str
) -> tuple[buckets.Bucket, list[Any], list[str], bool, str]:
    """One page of a listing, authorized with ``action`` and S3's listing condition keys."""
    context: dict[str, Any] = {"s3:prefix": prefix, "s3:max-keys": max_keys}
    if delimiter:
        context["s3:delimiter"] = delimiter
    with call.context.db.read() as conn:
        bucket = buckets.visible(conn, call, call.params["Bucket"], action, context=context)
        rows, commons, truncated, last = (
            _scan(conn, bucket.name, prefix, delimiter, after, max_keys)
            if max_keys
            else ([], [], False, after)
        )
    return bucket, rows, commons, truncated, last


def _encoder(encode: bool) -> Callable[[str | None], str | None]:
    """``encoding-type=url``: names percent-encoded (``/`` kept), else as they are."""

    def enc(value: str | None) -> str | None:
        return quote(value, safe="/") if (encode and value) else value

    return enc


def list_object_versions(call: Call) -> dict[str, Any]:
    """ListObjectVersions of a bucket that has never had versioning: every object is its one
    version, ``null``, and the latest (what S3 answers for an unversioned bucket; tools that
    empty a bucket before deleting it list versions). A version-id-marker of ``null`` (the only
    version) continues after its key.
    https://docs.aws.amazon.com/AmazonS3/latest/userguide/AddingObjectstoVersionSuspendedBuckets.html"""
    p = call.params
    prefix, delimiter, max_keys, encoding = _page_args(p)
    marker = p.get("KeyMarker") or ""
    version_marker = p.get("VersionIdMarker")
    if version_marker and not marker:
        raise errors.InvalidArgument(
            "A version-id marker cannot be specified without a key marker.", ArgumentName="version-id-marker"
        )
    if version_marker not in (None, "", "null"):
        raise errors.InvalidArgument("Invalid version id specified", ArgumentName="version-id-marker")
    bucket, rows, commons, truncated, last = _page(
        call, "s3:ListBucketVersions", prefix, delimiter, max_keys, marker
    )
    encode = encoding == "url"
    enc = _encoder(encode)

    versions = _render(rows, encode, _owner(bucket))
    for version in versions:
        version.update(VersionId="null", IsLatest=True)
    out: dict[str, Any] = {
        "Name": bucket.name,
        "Prefix": enc(prefix),
        "Delimiter": enc(delimiter) or None,
        "KeyMarker": enc(marker),
        "VersionIdMarker": version_marker or None,
        "MaxKeys": max_keys,
        "IsTruncated": truncated,
        "Versions": versions or None,
        "CommonPrefixes": [{"Prefix": enc(c)} for c in commons] or None,
        "EncodingType": encoding,
    }
    if truncated:
        out["NextKeyMarker"] = enc(last.removesuffix(_SENTINEL))
        out["NextVersionIdMarker"] = "null"
    return out


def list_objects(call: Call, *, v2: bool) -> dict[str, Any]:
    p = call.params
    prefix, delimiter, max_keys, encoding = _page_args(p)
    encode = encoding == "url"
    if v2:
        after = (
            _untoken(p["Bucket"], p["ContinuationToken"])
            if p.get("ContinuationToken")  # an empty one is no token, as S3 takes it
            else (p.get("StartAfter") or "")
        )
    else:
        after = p.get("Marker") or ""
    bucket, rows, commons, truncated, last = _page(call, "s3:ListBucket", prefix, delimiter, max_keys, after)
    enc = _encoder(encode)

    out: dict[str, Any] = {
        "Name": bucket.name,
        # v1 sends its Prefix as given even with encoding-type=url (botocore decodes only
        # Marker, NextMarker, Delimiter and the keys and common prefixes of a v1 answer).
        "Prefix": enc(prefix) if v2 else prefix,
        "Delimiter": enc(delimiter) or None,
        "MaxKeys": max_keys,
        "IsTruncated": truncated,
        "Contents": _render(rows, encode, _owner(bucket) if p.get("FetchOwner") or not v2 else None) or None,
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
        if truncated and delimiter:  # the last key or common prefix sent, as S3 names it
            out["NextMarker"] = enc(last.removesuffix(_SENTINEL))
    return out
