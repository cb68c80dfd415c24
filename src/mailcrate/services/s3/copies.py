"""Server-side copies: CopyObject and UploadPartCopy (the multipart copy ``aws s3 cp s3://...
s3://...`` uses above 8 MB).

Both read the source through :meth:`Store.open` (files open before the copy starts, so an
overwrite of the source meanwhile cannot cut it short) and re-encrypt under the destination's
data key: the source's files are never shared between objects.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
from collections.abc import Iterator
from typing import Any
from urllib.parse import unquote

from mailcrate.services.base import Call
from mailcrate.services.s3 import buckets, errors
from mailcrate.services.s3.acls import check_object_acl
from mailcrate.services.s3.multipart import MAX_PART, _upload, check_part_number, save_part
from mailcrate.services.s3.objects import (
    CONTENT_FIELDS,
    _check_copy_conditions,
    _commit,
    check_key,
    check_metadata,
    content_attributes,
    object_arn,
    sse_context,
)
from mailcrate.services.s3.sse import Encryption, new_data_key, open_data_key
from mailcrate.services.s3.store import ObjectBody, ObjectRecord, Store, Vanished
from mailcrate.storage.db import utcnow

OPEN_ATTEMPTS = 5
_COPY_RANGE_RE = re.compile(r"^bytes=(\d+)-(\d+)$")


def _source_name(p: dict[str, Any]) -> tuple[str, str]:
    """(bucket, key) of ``x-amz-copy-source`` (``bucket/key`` or ``/bucket/key``, URL-encoded,
    optionally ``?versionId=``: only ``null`` exists here)."""
    raw, _, query = p["CopySource"].partition("?")
    source = unquote(raw).lstrip("/")
    bucket, _, key = source.partition("/")
    if not bucket or not key:
        raise errors.InvalidArgument(
            "Copy Source must mention the source bucket and key: sourcebucket/sourcekey",
            ArgumentName="x-amz-copy-source",
        )
    if query.startswith("versionId=") and query[len("versionId=") :] != "null":
        raise errors.InvalidArgument("Invalid version id specified", ArgumentName="x-amz-copy-source")
    return bucket, key


def _copy_range(header: str | None, size: int) -> tuple[int, int]:
    """(start, end exclusive) of ``x-amz-copy-source-range`` (``bytes=first-last``, both given)."""
    if header is None:
        return 0, size
    match = _COPY_RANGE_RE.match(header.strip())
    if match is None or int(match[2]) < int(match[1]):
        raise errors.InvalidArgument(
            "The x-amz-copy-source-range value must be of the form bytes=first-last where first and last "
            "are the zero-based offsets of the first and last bytes to copy",
            ArgumentName="x-amz-copy-source-range",
            ArgumentValue=header,
        )
    first, last = int(match[1]), int(match[2])
    if last >= size:
        raise errors.InvalidRange(
            "The requested range is not satisfiable", RangeRequested=header, ActualObjectSize=size
        )
    return first, last + 1


def _open_source(
    call: Call, store: Store, p: dict[str, Any], range_header: str | None = None
) -> tuple[buckets.Bucket, ObjectRecord, ObjectBody, int]:
    """The source object (authorized ``s3:GetObject``, copy conditions checked), its bytes in
    ``range_header`` open for reading, and the length of that range."""
    bucket_name, key = _source_name(p)
    check_key(key)
    for _ in range(OPEN_ATTEMPTS):
        with call.context.db.read() as conn:
            bucket = buckets.visible(conn, call, bucket_name, "s3:GetObject", object_arn(bucket_name, key))
            record = Store.get(conn, bucket.name, key)
        if record is None:
            raise errors.NoSuchKey(key)
        _check_copy_conditions(p, record)
        start, end = _copy_range(range_header, record.size)
        data_key = open_data_key(
            call, bucket, key, Encryption.from_attributes(record.attributes), record.data_key_blob
        )
        try:
            return bucket, record, store.open(record, data_key, start, end), end - start
        except Vanished:
            continue  # overwritten between reading its record and opening its files
    raise errors.ServiceError(
        "The source object is being rewritten too often to be copied; please try again.",
        code="SlowDown",
        status=503,
    )


def _hashed(body: ObjectBody, md5: Any) -> Iterator[bytes]:
    with body:
        for chunk in body:
            md5.update(chunk)
            yield chunk


def copy_object(call: Call, store: Store) -> dict[str, Any]:
    p = call.params
    key = check_key(p.get("Key"))
    directive = p.get("MetadataDirective", "COPY")
    if directive == "REPLACE":  # with COPY the request's metadata is ignored, whatever its size
        check_metadata(p)
    check_object_acl(p)
    with call.context.db.read() as conn:
        bucket = buckets.visible(
            conn, call, p["Bucket"], "s3:PutObject", object_arn(p["Bucket"], key), sse_context(p)
        )
    if _source_name(p) == (bucket.name, key) and directive != "REPLACE" and not p.get("ServerSideEncryption"):
        raise errors.InvalidRequest(
            "This copy request is illegal because it is trying to copy an object to itself without changing the "
            "object's metadata, storage class, website redirect location or encryption attributes."
        )
    _, record, body, _ = _open_source(call, store, p)
    with body:
        encryption, data_key, blob = new_data_key(call, bucket, key, p)
        md5 = hashlib.md5()
        file_id, size = store.write_file(data_key, _hashed(body, md5))
    attrs = (
        content_attributes(p)
        if directive == "REPLACE"
        else {k: v for k, v in record.attributes.items() if k in (*CONTENT_FIELDS, "Expires", "Metadata")}
    )
    if record.attributes.get("checksum", {}).get("type") == "FULL_OBJECT":
        attrs["checksum"] = record.attributes["checksum"]
    attrs.update(encryption.attributes())
    new = ObjectRecord(
        bucket.name,
        key,
        secrets.token_hex(16),
        size,
        f'"{md5.hexdigest()}"',
        utcnow(),
        attrs,
        [(file_id, size)],
        blob,
    )
    _commit(call, store, new, [file_id])
    return {
        "CopyObjectResult": {"ETag": new.etag, "LastModified": new.last_modified},
        **encryption.response(),
    }


def upload_part_copy(call: Call, store: Store) -> dict[str, Any]:
    """A part made of a byte range of an existing object (``x-amz-copy-source-range``, else all
    of it), encrypted under the upload's data key like any UploadPart."""
    p = call.params
    key = check_key(p.get("Key"))
    number = p["PartNumber"]
    check_part_number(number)
    with call.context.db.read() as conn:
        bucket = buckets.visible(conn, call, p["Bucket"], "s3:PutObject", object_arn(p["Bucket"], key))
        upload = _upload(conn, bucket.name, key, p["UploadId"])
    _, _, body, length = _open_source(call, store, p, p.get("CopySourceRange"))
    with body:
        if length > MAX_PART:
            raise errors.ServiceError(
                "Your proposed upload exceeds the maximum allowed size", code="EntityTooLarge"
            )
        encryption = Encryption.from_attributes(json.loads(upload.attributes))
        data_key = open_data_key(call, bucket, key, encryption, upload.data_key_blob)
        md5 = hashlib.md5()
        file_id, size = store.write_file(data_key, _hashed(body, md5))
    etag = f'"{md5.hexdigest()}"'
    modified = save_part(call, store, bucket.name, key, upload.upload_id, number, file_id, size, etag, None)
    return {"CopyPartResult": {"ETag": etag, "LastModified": modified}, **encryption.response()}
