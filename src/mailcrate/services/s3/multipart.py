"""Multipart uploads: create, upload parts, complete by reference, abort, list, and clean up.

The upload's data key is made at CreateMultipartUpload (``kms:GenerateDataKey`` as the caller);
each UploadPart opens it again (``kms:Decrypt``, as S3 requires) and writes the part as its own
encrypted file. CompleteMultipartUpload turns the chosen parts into the object's segments in one
transaction, without touching their bytes.
"""

from __future__ import annotations

import itertools
import json
import secrets
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, insert, select

from mailcrate.services.base import Call
from mailcrate.services.s3 import buckets, checksums, errors
from mailcrate.services.s3.acls import check_object_acl
from mailcrate.services.s3.objects import (
    MAX_KEY_BYTES,
    check_key,
    check_metadata,
    check_write_conditions,
    content_attributes,
    object_arn,
    sse_context,
)
from mailcrate.services.s3.payload import Payload
from mailcrate.services.s3.sse import Encryption, new_data_key, open_data_key
from mailcrate.services.s3.store import ObjectRecord, Store
from mailcrate.storage.db import as_utc, utcnow
from mailcrate.storage.tables_kms_s3 import s3_parts, s3_uploads

MIN_PART = 5 * 1024 * 1024
MAX_PART = 5 * 1024**3
MAX_PARTS = 10000
del MAX_KEY_BYTES


def _upload(conn: Any, bucket: str, key: str, upload_id: str) -> Any:
    row = conn.execute(select(s3_uploads).where(s3_uploads.c.upload_id == upload_id)).first()
    if row is None or row.bucket != bucket or row.key != key:
        raise errors.NoSuchUpload(upload_id)
    return row


def create(call: Call, store: Store) -> dict[str, Any]:
    p = call.params
    key = check_key(p.get("Key"))
    check_metadata(p)
    check_object_acl(p)
    with call.context.db.read() as conn:
        bucket = buckets.visible(
            conn, call, p["Bucket"], "s3:PutObject", object_arn(p["Bucket"], key), sse_context(p)
        )
    encryption, _, blob = new_data_key(call, bucket, key, p)
    algorithm = p.get("ChecksumAlgorithm")
    if algorithm and algorithm not in checksums.ALGORITHMS:
        raise errors.InvalidRequest(f"Checksum algorithm {algorithm} is not supported.")
    attrs = {**content_attributes(p), **encryption.attributes(), "checksum_algorithm": algorithm}
    upload_id = secrets.token_urlsafe(48)
    with call.context.db.begin() as conn:
        call.guard_write(conn)
        conn.execute(
            insert(s3_uploads).values(
                upload_id=upload_id,
                bucket=bucket.name,
                key=key,
                account_id=bucket.account_id,
                initiator_arn=call.principal.arn,
                initiated=utcnow(),
                attributes=json.dumps(attrs),
                data_key_blob=blob,
            )
        )
    out = {"Bucket": bucket.name, "Key": key, "UploadId": upload_id, **encryption.response()}
    if algorithm:
        out["ChecksumAlgorithm"] = algorithm
        out["ChecksumType"] = "COMPOSITE"
    return out


def upload_part(call: Call, store: Store) -> dict[str, Any]:
    p = call.params
    key = check_key(p.get("Key"))
    number = p["PartNumber"]
    check_part_number(number)
    body: Payload = p["Body"]
    body.signing_secret = call.principal.secret_access_key
    with call.context.db.read() as conn:
        bucket = buckets.visible(conn, call, p["Bucket"], "s3:PutObject", object_arn(p["Bucket"], key))
        upload = _upload(conn, bucket.name, key, p["UploadId"])
    attrs = json.loads(upload.attributes)
    encryption = Encryption.from_attributes(attrs)
    data_key = open_data_key(call, bucket, key, encryption, upload.data_key_blob)
    file_id, size = body.write_into(store, data_key, MAX_PART)
    checksum = {"algorithm": body.algorithm, "value": body.checksum} if body.checksum else None
    etag = f'"{body.md5_digest.hex()}"'
    save_part(call, store, bucket.name, key, upload.upload_id, number, file_id, size, etag, checksum)
    out: dict[str, Any] = {"ETag": etag, **encryption.response()}
    if checksum:
        out[f"Checksum{body.algorithm}"] = body.checksum
    return out


def check_part_number(number: int) -> None:
    if not 1 <= number <= MAX_PARTS:
        raise errors.InvalidArgument(
            "Part number must be an integer between 1 and 10000, inclusive", ArgumentName="partNumber"
        )


def save_part(
    call: Call,
    store: Store,
    bucket: str,
    key: str,
    upload_id: str,
    number: int,
    file_id: str,
    size: int,
    etag: str,
    checksum: dict[str, str] | None,
) -> datetime:
    """Commit a written part file as part ``number`` (replacing an earlier one) if the upload
    is still there; the file is freed if not. Returns the part's LastModified."""
    now = utcnow()
    try:
        with call.context.db.begin() as conn:
            call.guard_write(conn)
            _upload(conn, bucket, key, upload_id)  # still there?
            old = conn.execute(
                select(s3_parts.c.file_id).where(
                    s3_parts.c.upload_id == upload_id, s3_parts.c.part_number == number
                )
            ).first()
            released = []
            if old is not None:
                conn.execute(
                    delete(s3_parts).where(
                        s3_parts.c.upload_id == upload_id, s3_parts.c.part_number == number
                    )
                )
                released = Store.release(conn, [old.file_id])
            conn.execute(
                insert(s3_parts).values(
                    upload_id=upload_id,
                    part_number=number,
                    file_id=file_id,
                    size=size,
                    etag=etag,
                    checksum=json.dumps(checksum) if checksum else None,
                    last_modified=now,
                )
            )
            Store.claim(conn, [file_id])
    except BaseException:
        store.free([file_id])
        raise
    store.free(released)
    return now


def complete(call: Call, store: Store) -> dict[str, Any]:
    p = call.params
    key = check_key(p.get("Key"))
    wanted = (p.get("MultipartUpload") or {}).get("Parts") or []
    if not wanted:
        raise errors.ServiceError(
            "The XML you provided was not well-formed or did not validate against our published schema",
            code="MalformedXML",
        )
    with call.context.db.read() as conn:
        bucket = buckets.visible(conn, call, p["Bucket"], "s3:PutObject", object_arn(p["Bucket"], key))
    with call.context.db.begin() as conn:
        call.guard_write(conn)
        try:
            upload = _upload(conn, bucket.name, key, p["UploadId"])
        except errors.NoSuchUpload:
            done = Store.get(conn, bucket.name, key)
            if done is None or done.attributes.get("upload_id") != p["UploadId"]:
                raise
            # Completed already (a retry whose first answer was lost): S3 answers it again.
            return _completed(bucket.name, key, done.etag, done.attributes)
        stored = {
            r.part_number: r
            for r in conn.execute(select(s3_parts).where(s3_parts.c.upload_id == upload.upload_id))
        }
        attrs = json.loads(upload.attributes)
        numbers = [part.get("PartNumber") for part in wanted]
        if None in numbers or any(b <= a for a, b in itertools.pairwise(numbers)):
            raise errors.InvalidPartOrder(
                "The list of parts was not in ascending order. Parts must be ordered by part number."
            )
        chosen = []
        for index, part in enumerate(wanted):
            number = part["PartNumber"]
            row = stored.get(number)
            if row is None or (part.get("ETag") or "").strip('"') != row.etag.strip('"'):
                raise errors.InvalidPart(
                    "One or more of the specified parts could not be found. The part may not have been "
                    "uploaded, or the specified entity tag may not have matched the part's entity tag.",
                    PartNumber=number,
                    UploadId=upload.upload_id,
                )
            part_checksum = json.loads(row.checksum) if row.checksum else None
            for algorithm in checksums.ALGORITHMS:
                given = part.get(f"Checksum{algorithm}")
                if given is not None and (part_checksum is None or part_checksum.get("value") != given):
                    raise errors.InvalidPart(
                        f"The {algorithm} checksum of part {number} does not match.", PartNumber=number
                    )
            if index < len(wanted) - 1 and row.size < MIN_PART:
                raise errors.EntityTooSmall(
                    "Your proposed upload is smaller than the minimum allowed object size.",
                    ProposedSize=row.size,
                    MinSizeAllowed=MIN_PART,
                    PartNumber=number,
                    ETag=row.etag,
                )
            chosen.append((row, part_checksum))
        algorithm = attrs.pop("checksum_algorithm", None)
        object_checksum = None
        if algorithm and all(c is not None and c["algorithm"] == algorithm for _, c in chosen):
            digests = [checksums.base64.b64decode(c["value"]) for _, c in chosen]  # type: ignore[index]
            object_checksum = {
                "algorithm": algorithm,
                "value": checksums.composite_checksum(algorithm, digests),
                "type": "COMPOSITE",
            }
        for name in checksums.ALGORITHMS:  # the client's own composite checksum, if it sent one
            given = p.get(f"Checksum{name}")
            if given is not None and (
                object_checksum is None
                or object_checksum["algorithm"] != name
                or given != object_checksum["value"]
            ):
                raise checksums.BadDigest(f"The {name} you specified did not match the calculated checksum.")
        size = sum(row.size for row, _ in chosen)
        if p.get("MpuObjectSize") is not None and p["MpuObjectSize"] != size:
            raise errors.InvalidRequest("The provided MpuObjectSize does not match the size of the object.")
        etag = checksums.multipart_etag([bytes.fromhex(row.etag.strip('"')) for row, _ in chosen])
        attrs["parts"] = len(chosen)
        attrs["upload_id"] = upload.upload_id
        if object_checksum:
            attrs["checksum"] = object_checksum
        record = ObjectRecord(
            bucket.name,
            key,
            secrets.token_hex(16),
            size,
            etag,
            utcnow(),
            attrs,
            [(row.file_id, row.size) for row, _ in chosen],
            upload.data_key_blob,
        )
        used = {row.file_id for row, _ in chosen}
        unused = Store.release(conn, [r.file_id for r in stored.values() if r.file_id not in used])
        check_write_conditions(conn, record, p)
        conn.execute(delete(s3_parts).where(s3_parts.c.upload_id == upload.upload_id))
        conn.execute(delete(s3_uploads).where(s3_uploads.c.upload_id == upload.upload_id))
        released = store.commit(conn, record)
    store.free(unused + released)
    return _completed(bucket.name, key, etag, attrs)


def _completed(bucket: str, key: str, etag: str, attrs: dict[str, Any]) -> dict[str, Any]:
    """CompleteMultipartUpload's answer for the object it made."""
    out = {
        "Location": f"/{bucket}/{key}",
        "Bucket": bucket,
        "Key": key,
        "ETag": etag,
        **Encryption.from_attributes(attrs).response(),
    }
    checksum = attrs.get("checksum")
    if checksum:
        out[f"Checksum{checksum['algorithm']}"] = checksum["value"]
        out["ChecksumType"] = checksum["type"]
    return out


def _drop(conn: Any, upload_id: str) -> list[str]:
    files = [
        r.file_id for r in conn.execute(select(s3_parts.c.file_id).where(s3_parts.c.upload_id == upload_id))
    ]
    conn.execute(delete(s3_parts).where(s3_parts.c.upload_id == upload_id))
    conn.execute(delete(s3_uploads).where(s3_uploads.c.upload_id == upload_id))
    return Store.release(conn, files)


def abort(call: Call, store: Store) -> dict[str, Any]:
    p = call.params
    key = check_key(p.get("Key"))
    with call.context.db.begin() as conn:
        bucket = buckets.visible(
            conn, call, p["Bucket"], "s3:AbortMultipartUpload", object_arn(p["Bucket"], key)
        )
        upload = _upload(conn, bucket.name, key, p["UploadId"])
        call.guard_write(conn)
        released = _drop(conn, upload.upload_id)
    store.free(released)
    return {}


def abort_all(conn: Any, bucket: str) -> list[str]:
    ids = [
        r.upload_id for r in conn.execute(select(s3_uploads.c.upload_id).where(s3_uploads.c.bucket == bucket))
    ]
    return [f for upload_id in ids for f in _drop(conn, upload_id)]


def abort_stale(store: Store, older_than: timedelta) -> int:
    """Abort uploads initiated longer ago than ``older_than`` (abandoned by their clients)."""
    cutoff = utcnow() - older_than
    with store.data_dir.db.begin() as conn:
        ids = [
            r.upload_id
            for r in conn.execute(select(s3_uploads.c.upload_id).where(s3_uploads.c.initiated < cutoff))
        ]
        released = [f for upload_id in ids for f in _drop(conn, upload_id)]
    store.free(released)
    return len(ids)


def _page_size(p: dict[str, Any], member: str, argument: str) -> int:
    """A max-parts / max-uploads page size: 0..2147483647 as S3 has it, served up to 1000."""
    value = p.get(member, 1000)
    if value < 0:
        raise errors.InvalidArgument(
            f"Argument {argument} must be an integer between 0 and 2147483647", ArgumentName=argument
        )
    return min(value, 1000)


def list_parts(call: Call, store: Store) -> dict[str, Any]:
    p = call.params
    key = check_key(p.get("Key"))
    limit = _page_size(p, "MaxParts", "max-parts")
    marker = p.get("PartNumberMarker") or 0
    with call.context.db.read() as conn:
        bucket = buckets.visible(
            conn, call, p["Bucket"], "s3:ListMultipartUploadParts", object_arn(p["Bucket"], key)
        )
        upload = _upload(conn, bucket.name, key, p["UploadId"])
        rows = conn.execute(
            select(s3_parts)
            .where(s3_parts.c.upload_id == upload.upload_id, s3_parts.c.part_number > int(marker))
            .order_by(s3_parts.c.part_number)
            .limit(limit + 1)
        ).all()
    more = len(rows) > limit
    rows = rows[:limit]
    parts = []
    for row in rows:
        part = {
            "PartNumber": row.part_number,
            "ETag": row.etag,
            "Size": row.size,
            "LastModified": as_utc(row.last_modified),
        }
        if row.checksum:
            c = json.loads(row.checksum)
            part[f"Checksum{c['algorithm']}"] = c["value"]
        parts.append(part)
    out = {
        "Bucket": bucket.name,
        "Key": key,
        "UploadId": upload.upload_id,
        "PartNumberMarker": int(marker),
        "MaxParts": limit,
        "IsTruncated": more,
        "Parts": parts,
        "StorageClass": "STANDARD",
        "Initiator": {"ID": upload.initiator_arn, "DisplayName": upload.initiator_arn.rsplit("/", 1)[-1]},
        "Owner": {"ID": upload.account_id},
    }
    if more and rows:  # max-parts=0 has no last part to continue after
        out["NextPartNumberMarker"] = rows[-1].part_number
    return out


def list_uploads(call: Call, store: Store) -> dict[str, Any]:
    p = call.params
    limit = _page_size(p, "MaxUploads", "max-uploads")
    prefix = p.get("Prefix") or ""
    with call.context.db.read() as conn:
        bucket = buckets.visible(conn, call, p["Bucket"], "s3:ListBucketMultipartUploads")
        query = select(s3_uploads).where(s3_uploads.c.bucket == bucket.name)
        if p.get("KeyMarker"):
            query = query.where(s3_uploads.c.key > p["KeyMarker"])
        rows = [
            r
            for r in conn.execute(query.order_by(s3_uploads.c.key, s3_uploads.c.initiated))
            if r.key.startswith(prefix)
        ]
    more = len(rows) > limit
    rows = rows[:limit]
    out: dict[str, Any] = {
        "Bucket": bucket.name,
        "Prefix": prefix or None,
        "MaxUploads": limit,
        "IsTruncated": more,
        "Uploads": [
            {
                "UploadId": r.upload_id,
                "Key": r.key,
                "Initiated": as_utc(r.initiated),
                "StorageClass": "STANDARD",
                "Initiator": {"ID": r.initiator_arn},
                "Owner": {"ID": r.account_id},
            }
            for r in rows
        ],
    }
    if more and rows:  # max-uploads=0 has no last upload to continue after
        out["NextKeyMarker"] = rows[-1].key
        out["NextUploadIdMarker"] = rows[-1].upload_id
    return out
