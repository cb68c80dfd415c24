"""GetObject and HeadObject: conditions, ranges, ``partNumber``, and a body read whole.

The files of the object are opened before the answer starts (:meth:`Store.open`), so an
overwrite or delete that commits while the body streams cannot cut it short: the client gets
the object it asked for whole, or (if the files were freed before they could be opened and the
record keeps changing) an error before any byte.
"""

from __future__ import annotations

import errno
from typing import Any

from mailcrate.services.base import Call
from mailcrate.services.s3 import errors
from mailcrate.services.s3.blobstore import CorruptObject
from mailcrate.services.s3.objects import _NOT_HEADER_TEXT, _check_conditions, _load, describe, parse_range
from mailcrate.services.s3.sse import Encryption, open_data_key
from mailcrate.services.s3.store import ObjectBody, ObjectRecord, Store, Vanished

# Attempts at opening the files of an object that is being overwritten meanwhile: each retry
# reads the record again, so only an object rewritten faster than a record read fails them all.
OPEN_ATTEMPTS = 5
_RESPONSE_OVERRIDES = (
    "ResponseContentType",
    "ResponseContentDisposition",
    "ResponseCacheControl",
    "ResponseContentEncoding",
    "ResponseContentLanguage",
)
# SSE-KMS / SSE-S3 are chosen when an object is written; S3 refuses these headers on a read.
_WRITE_ONLY_SSE_HEADERS = ("x-amz-server-side-encryption", "x-amz-server-side-encryption-aws-kms-key-id")


def get_object(call: Call, store: Store, *, head: bool = False) -> dict[str, Any]:
    for name in _WRITE_ONLY_SSE_HEADERS:
        if call.request.headers.get(name) is not None:
            raise errors.InvalidArgument(
                f"The {name} header is not supported for this operation.", ArgumentName=name
            )
    for _ in range(OPEN_ATTEMPTS):
        try:
            return _answer(call, store, head)
        except Vanished:
            continue  # overwritten between reading its record and opening its files: read again
    raise errors.ServiceError(
        "The object is being rewritten too often to be read; please try again.", code="SlowDown", status=503
    )


def head_object(call: Call, store: Store) -> dict[str, Any]:
    return get_object(call, store, head=True)


def part_span(record: ObjectRecord, number: int) -> tuple[int, int]:
    """(start, end exclusive) of part ``number`` (1-based) of ``record``; a single-part upload
    (PutObject, CopyObject) is part 1 whole."""
    sizes = [size for _, size in record.segments] if record.attributes.get("parts") else [record.size]
    if not 1 <= number <= len(sizes):
        raise errors.ServiceError(
            "The requested partnumber is not satisfiable", code="InvalidPartNumber", status=416
        )
    start = sum(sizes[: number - 1])
    return start, start + sizes[number - 1]


def _answer(call: Call, store: Store, head: bool) -> dict[str, Any]:
    p = call.params
    bucket, record = _load(call, "s3:GetObject", p.get("VersionId"))
    number = p.get("PartNumber")
    if number is not None and p.get("Range"):
        raise errors.InvalidRequest("Cannot specify both Range header and partNumber query parameter")
    if number is not None and not 1 <= number <= 10000:
        raise errors.InvalidArgument(
            "Part number must be an integer between 1 and 10000, inclusive", ArgumentName="partNumber"
        )
    status = _check_conditions(p, record)
    out = describe(record, p.get("ChecksumMode"))
    if status == 304:
        return {"__status__": 304, "ETag": record.etag, "LastModified": record.last_modified}
    span = part_span(record, number) if number is not None else parse_range(p.get("Range"), record.size)
    if number is not None:
        out["PartsCount"] = record.attributes.get("parts") or 1
    if span is not None:
        start, end = span
        out.update(
            __status__=206,
            ContentLength=end - start,
            ContentRange=f"bytes {start}-{end - 1}/{record.size}" if end > start else None,
        )
        for name in [k for k in out if k.startswith("Checksum")]:
            del out[name]
    else:
        start, end = 0, record.size
    for name in _RESPONSE_OVERRIDES:
        if p.get(name):
            if _NOT_HEADER_TEXT.search(p[name]):
                raise errors.InvalidArgument(
                    f"{name} contains characters an HTTP header cannot carry.", ArgumentName=name
                )
            out[name[len("Response") :]] = p[name]
    if head:
        return out
    encryption = Encryption.from_attributes(record.attributes)
    data_key = open_data_key(call, bucket, record.key, encryption, record.data_key_blob)
    try:
        body = store.open(record, data_key, start, end)
    except OSError as exc:
        if exc.errno in (errno.EMFILE, errno.ENFILE):  # too many files open: say so before any byte
            raise errors.ServiceError(
                "Please reduce your request rate.", code="SlowDown", status=503
            ) from None
        raise
    out["Body"] = _Guarded(body, record)
    return out


class _Guarded:
    """The body as the server streams it (its own iterator, so closing what the server iterates
    closes the files even if no byte was asked for): a stored file failing authentication is
    named, the connection is cut and the client sees a short body."""

    def __init__(self, body: ObjectBody, record: ObjectRecord) -> None:
        self._body = body
        self._record = record
        self._chunks = iter(body)

    def __iter__(self) -> _Guarded:
        return self

    def __next__(self) -> bytes:
        try:
            return next(self._chunks)
        except CorruptObject as exc:
            self.close()
            raise errors.InternalError(f"Stored data of {self._record.key} failed authentication") from exc

    def close(self) -> None:
        self._chunks.close()  # type: ignore[attr-defined]
        self._body.close()
