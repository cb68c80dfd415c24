"""Object operations: PutObject, GetObject (ranges, conditions), HeadObject, DeleteObject(s), CopyObject."""

from __future__ import annotations

import email.header
import re
import secrets
from datetime import datetime
from typing import Any

from mailcrate.protocol.errors import ServiceError
from mailcrate.services.base import Call
from mailcrate.services.s3 import buckets, errors
from mailcrate.services.s3.acls import check_object_acl
from mailcrate.services.s3.payload import Payload
from mailcrate.services.s3.sse import Encryption, new_data_key
from mailcrate.services.s3.store import ObjectRecord, Store
from mailcrate.storage.db import utcnow

MAX_KEY_BYTES = 1024
MAX_PUT = 5 * 1024**3
MAX_METADATA_BYTES = 2 * 1024  # user-defined metadata, keys (without x-amz-meta-) plus values
CONTENT_FIELDS = ("ContentType", "CacheControl", "ContentDisposition", "ContentEncoding", "ContentLanguage")
_RANGE_RE = re.compile(r"^bytes=(\d*)-(\d*)$")
# What an HTTP/1.1 header value may carry (tab, visible ASCII, obs-text): response-* overrides
# come from the query string, where CR/LF or a character beyond latin-1 broke the response.
_NOT_HEADER_TEXT = re.compile(r"[^\t\x20-\x7e\x80-\xff]")


def object_arn(bucket: str, key: str) -> str:
    return f"arn:aws:s3:::{bucket}/{key}"


def check_key(key: str | None) -> str:
    if not key:
        raise errors.InvalidArgument("Object key must not be empty.")
    if len(key.encode("utf-8")) > MAX_KEY_BYTES:
        raise errors.KeyTooLong(
            "Your key is too long", Size=len(key.encode("utf-8")), MaxSizeAllowed=MAX_KEY_BYTES
        )
    if "\x00" in key:
        raise errors.InvalidArgument("Object key must not contain a NUL character.", ArgumentName="key")
    return key


def _wire_bytes(text: str) -> int:
    """Bytes ``text`` took on the wire: headers arrive latin-1 decoded (a character per byte sent,
    so UTF-8 sent raw counts its UTF-8 bytes); anything else is counted as UTF-8."""
    try:
        return len(text.encode("latin-1"))
    except UnicodeEncodeError:
        return len(text.encode("utf-8", "surrogatepass"))


def _header_text(value: str) -> str:
    """A metadata value as the text the client meant: headers arrive latin-1 decoded, and a
    client that sent UTF-8 (urllib3 2, browsers) meant its characters, not their bytes."""
    try:
        return value.encode("latin-1").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        return value


def _header_value(value: str) -> str:
    """A stored metadata value as a response header: as is if latin-1 carries it (one byte per
    character, as clients read headers), else RFC 2047 encoded as S3 sends non-ASCII metadata."""
    try:
        value.encode("latin-1")
        return value
    except UnicodeEncodeError:
        return email.header.Header(value, "utf-8").encode()


def check_metadata(params: dict[str, Any]) -> None:
    """Refuse user metadata over S3's 2 KB, before any body is read or anything is stored.

    There was no limit: any amount the HTTP server let through was stored with the object.
    """
    metadata = params.get("Metadata") or {}
    size = sum(_wire_bytes(name) + _wire_bytes(value) for name, value in metadata.items())
    if size > MAX_METADATA_BYTES:
        raise errors.MetadataTooLarge(size, MAX_METADATA_BYTES)


def content_attributes(params: dict[str, Any]) -> dict[str, Any]:
    attrs: dict[str, Any] = {name: params[name] for name in CONTENT_FIELDS if params.get(name)}
    encoding = attrs.get("ContentEncoding")
    if encoding:  # aws-chunked is transport framing, not the object's encoding
        kept = [e.strip() for e in encoding.split(",") if e.strip() and e.strip() != "aws-chunked"]
        if kept:
            attrs["ContentEncoding"] = ", ".join(kept)  # as HTTP lists them, and S3 returns them
        else:
            del attrs["ContentEncoding"]
    if params.get("Expires") is not None:
        attrs["Expires"] = params["Expires"].isoformat()
    attrs["ContentType"] = attrs.get("ContentType") or "binary/octet-stream"
    attrs["Metadata"] = {name: _header_text(value) for name, value in (params.get("Metadata") or {}).items()}
    return attrs


def sse_context(params: dict[str, Any]) -> dict[str, Any]:
    ctx: dict[str, Any] = {}
    if params.get("ServerSideEncryption"):
        ctx["s3:x-amz-server-side-encryption"] = params["ServerSideEncryption"]
    if params.get("SSEKMSKeyId"):
        ctx["s3:x-amz-server-side-encryption-aws-kms-key-id"] = params["SSEKMSKeyId"]
    return ctx


def put_object(call: Call, store: Store) -> dict[str, Any]:
    p = call.params
    key = check_key(p.get("Key"))
    body: Payload = p["Body"]
    body.signing_secret = call.principal.secret_access_key
    if body.declared_length is not None and body.declared_length > MAX_PUT:
        raise errors.ServiceError(
            "Your proposed upload exceeds the maximum allowed size", code="EntityTooLarge"
        )
    check_metadata(p)
    check_object_acl(p)
    with call.context.db.read() as conn:
        bucket = buckets.visible(
            conn, call, p["Bucket"], "s3:PutObject", object_arn(p["Bucket"], key), sse_context(p)
        )
    encryption, data_key, blob = new_data_key(call, bucket, key, p)
    file_id, size = store.write_file(data_key, body.chunks(limit=MAX_PUT))
    attrs = {**content_attributes(p), **encryption.attributes()}
    if body.checksum:
        attrs["checksum"] = {"algorithm": body.algorithm, "value": body.checksum, "type": "FULL_OBJECT"}
    record = ObjectRecord(
        bucket.name,
        key,
        secrets.token_hex(16),
        size,
        f'"{body.md5_digest.hex()}"',
        utcnow(),
        attrs,
        [(file_id, size)],
        blob,
    )
    _commit(call, store, record, [file_id])
    out: dict[str, Any] = {"ETag": record.etag, **encryption.response()}
    if body.checksum:
        out[f"Checksum{body.algorithm}"] = body.checksum
        out["ChecksumType"] = "FULL_OBJECT"
    return out


def check_write_conditions(conn: Any, record: ObjectRecord, p: dict[str, Any]) -> None:
    """Conditional writes (If-Match / If-None-Match on PutObject and CompleteMultipartUpload),
    decided in the committing transaction so two writers cannot both pass: If-Match needs the
    object to exist (else NoSuchKey) with that ETag (or ``*``); If-None-Match ``*`` needs it
    absent, an ETag needs it to differ. A failed one is 412 and changes nothing.
    https://docs.aws.amazon.com/AmazonS3/latest/userguide/conditional-writes.html"""
    if_match, if_none_match = p.get("IfMatch"), p.get("IfNoneMatch")
    if if_match is None and if_none_match is None:
        return
    current = Store.get(conn, record.bucket, record.key)
    if if_match is not None:
        if current is None:
            raise errors.NoSuchKey(record.key)
        if if_match.strip() != "*" and current.etag.strip('"') not in _etags(if_match):
            raise _precondition_failed("If-Match")
    if (
        if_none_match is not None
        and current is not None
        and (if_none_match.strip() == "*" or current.etag.strip('"') in _etags(if_none_match))
    ):
        raise _precondition_failed("If-None-Match")


def _commit(call: Call, store: Store, record: ObjectRecord, new_files: list[str]) -> None:
    try:
        with call.context.db.begin() as conn:
            call.guard_write(conn)
            buckets.find(conn, record.bucket)  # deleted meanwhile?
            check_write_conditions(conn, record, call.params)
            released = store.commit(conn, record)
    except BaseException:
        store.free(new_files)
        raise
    store.free(released)


def _load(call: Call, action: str, version_id: str | None = None) -> tuple[buckets.Bucket, ObjectRecord]:
    p = call.params
    key = check_key(p.get("Key"))
    with call.context.db.read() as conn:
        bucket = buckets.visible(conn, call, p["Bucket"], action, object_arn(p["Bucket"], key))
        record = Store.get(conn, bucket.name, key)
    if record is None:
        # "If you don't have the s3:ListBucket permission, Amazon S3 returns an HTTP status code
        # 403 Access Denied error" (GetObject, S3 API Reference): a missing key is news only to
        # those who may list the bucket.
        if not buckets.allows(call, bucket, "s3:ListBucket"):
            raise errors.AccessDenied("Access Denied")
        raise errors.NoSuchKey(key)
    if version_id not in (None, "null"):
        raise errors.InvalidArgument("Invalid version id specified", ArgumentName="versionId")
    return bucket, record


def describe(record: ObjectRecord, checksum_mode: str | None) -> dict[str, Any]:
    attrs = record.attributes
    out: dict[str, Any] = {
        "ETag": record.etag,
        "LastModified": record.last_modified,
        "ContentLength": record.size,
        "AcceptRanges": "bytes",
        "Metadata": {name: _header_value(value) for name, value in attrs["Metadata"].items()}
        if attrs.get("Metadata")
        else None,
        **Encryption.from_attributes(attrs).response(),
    }
    for name in CONTENT_FIELDS:
        if attrs.get(name):
            out[name] = attrs[name]
    if attrs.get("Expires"):
        out["Expires"] = datetime.fromisoformat(attrs["Expires"])
    if attrs.get("parts"):
        out["PartsCount"] = attrs["parts"]
    checksum = attrs.get("checksum")
    if checksum and (checksum_mode or "").upper() == "ENABLED":
        out[f"Checksum{checksum['algorithm']}"] = checksum["value"]
        out["ChecksumType"] = checksum["type"]
    return out


def _failed_condition(
    record: ObjectRecord,
    if_match: str | None,
    if_unmodified_since: datetime | None,
    if_none_match: str | None,
    if_modified_since: datetime | None,
) -> str | None:
    """The first of S3's conditional-request checks that fails on ``record``, named by its
    header (``If-Match``, ``If-Unmodified-Since``, ``If-None-Match``, ``If-Modified-Since``);
    None when all hold. A GET and a copy's source follow the same rules."""
    etag = record.etag.strip('"')
    modified = record.last_modified.replace(microsecond=0)
    if if_match is not None and if_match != "*" and etag not in _etags(if_match):
        return "If-Match"
    if if_match is None and if_unmodified_since is not None and modified > if_unmodified_since:
        return "If-Unmodified-Since"
    if if_none_match is not None and (if_none_match == "*" or etag in _etags(if_none_match)):
        return "If-None-Match"
    if if_none_match is None and if_modified_since is not None and modified <= if_modified_since:
        return "If-Modified-Since"
    return None


def _etags(header: str) -> set[str]:
    return {t.strip().strip('"') for t in header.split(",")}


def _precondition_failed(condition: str) -> errors.PreconditionFailed:
    return errors.PreconditionFailed(
        "At least one of the pre-conditions you specified did not hold", Condition=condition
    )


def _check_conditions(p: dict[str, Any], record: ObjectRecord) -> int | None:
    """304/412 per S3's conditional-request rules; None to proceed."""
    failed = _failed_condition(
        record, p.get("IfMatch"), p.get("IfUnmodifiedSince"), p.get("IfNoneMatch"), p.get("IfModifiedSince")
    )
    if failed in ("If-Match", "If-Unmodified-Since"):
        raise _precondition_failed(failed)
    return 304 if failed is not None else None


def _check_copy_conditions(p: dict[str, Any], record: ObjectRecord) -> None:
    """x-amz-copy-source-if-*: S3's GET rules on the source, except that a failed condition is
    always 412 (a copy has nothing to answer 304 with)."""
    failed = _failed_condition(
        record,
        p.get("CopySourceIfMatch"),
        p.get("CopySourceIfUnmodifiedSince"),
        p.get("CopySourceIfNoneMatch"),
        p.get("CopySourceIfModifiedSince"),
    )
    if failed is not None:
        raise _precondition_failed("x-amz-copy-source-" + failed)


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """(start, end exclusive) of a single ``bytes=`` range; None for absent or ignorable ones."""
    if not header:
        return None
    match = _RANGE_RE.match(header.strip())
    if match is None:
        return None  # S3 ignores malformed and multi-range headers and sends the whole object
    first, last = match.groups()
    if not first and not last:
        return None
    if not first:
        suffix = int(last)
        if suffix == 0:
            raise _unsatisfiable(header, size)
        return max(size - suffix, 0), size
    start = int(first)
    end = size if not last else int(last) + 1
    if last and int(last) < start:
        return None
    if start >= size:
        raise _unsatisfiable(header, size)
    return start, min(end, size)


def _unsatisfiable(header: str, size: int) -> ServiceError:
    return errors.InvalidRange(
        "The requested range is not satisfiable", RangeRequested=header, ActualObjectSize=size
    )


def _directory_bucket_only(name: str) -> ServiceError:
    return ServiceError(f"{name} is only supported for directory buckets", code="NotImplemented", status=501)


def check_delete_condition(
    call: Call, conn: Any, bucket: buckets.Bucket, key: str, if_match: str | None
) -> None:
    """Conditional deletes (If-Match on DeleteObject, an object's ETag in DeleteObjects),
    decided in the deleting transaction: the object must exist (404 NoSuchKey otherwise, as for
    one deleted meanwhile) and, unless ``*``, carry that ETag (412 otherwise); an ETag check also
    needs s3:GetObject. https://docs.aws.amazon.com/AmazonS3/latest/userguide/conditional-deletes.html"""
    if if_match is None:
        return
    if if_match.strip() != "*":
        buckets.authorize(call, bucket, "s3:GetObject", object_arn(bucket.name, key))
    current = Store.get(conn, bucket.name, key)
    if current is None:
        raise errors.NoSuchKey(key)
    if if_match.strip() != "*" and current.etag.strip('"') not in _etags(if_match):
        raise _precondition_failed("If-Match")


def delete_object(call: Call, store: Store) -> dict[str, Any]:
    p = call.params
    key = check_key(p.get("Key"))
    for name, header in (("IfMatchLastModifiedTime", "x-amz-if-match-last-modified-time"),
                         ("IfMatchSize", "x-amz-if-match-size")):  # fmt: skip
        if p.get(name) is not None:  # a condition never silently dropped
            raise _directory_bucket_only(header)
    with call.context.db.begin() as conn:
        bucket = buckets.visible(conn, call, p["Bucket"], "s3:DeleteObject", object_arn(p["Bucket"], key))
        call.guard_write(conn)
        check_delete_condition(call, conn, bucket, key, p.get("IfMatch"))
        released = store.remove(conn, bucket.name, key)
    store.free(released)
    return {}


def delete_objects(call: Call, store: Store) -> dict[str, Any]:
    p = call.params
    payload = call.params.get("Delete") or {}
    items = payload.get("Objects") or []
    if not items or len(items) > 1000:
        raise errors.ServiceError(
            "The XML you provided was not well-formed or did not validate against our published schema",
            code="MalformedXML",
        )
    if not (
        call.request.headers.get("content-md5")
        or any(k.startswith("x-amz-checksum-") for k, _ in call.request.headers.items())
    ):
        raise errors.InvalidRequest(
            "Missing required header for this request: Content-MD5 or x-amz-checksum-*"
        )
    with call.context.db.read() as conn:
        bucket = buckets.find(conn, p["Bucket"])
    deleted, failed = [], []
    for item in items:
        key = item.get("Key") or ""
        try:
            check_key(key)
            buckets.authorize(call, bucket, "s3:DeleteObject", object_arn(bucket.name, key))
            for name in ("LastModifiedTime", "Size"):
                if item.get(name) is not None:
                    raise _directory_bucket_only(name)
            with call.context.db.begin() as conn:
                check_delete_condition(call, conn, bucket, key, item.get("ETag"))
                released = store.remove(conn, bucket.name, key)
            store.free(released)
            deleted.append({"Key": key})
        except ServiceError as error:
            failed.append({"Key": key, "Code": error.code, "Message": error.message})
    return {"Deleted": None if payload.get("Quiet") else deleted, "Errors": failed or None}
