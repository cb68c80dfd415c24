"""Multipart uploads: boto3's transfer manager with SSE-KMS, listing, assembly by reference."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

from boto3.s3.transfer import TransferConfig

MiB = 1024 * 1024


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(8 * MiB):
            digest.update(chunk)
    return digest.hexdigest()


def test_200_mib_upload_download_with_sse_kms(
    s3: Any, bucket: str, kms_key: dict[str, Any], tmp_path: Path
) -> None:
    source = tmp_path / "export.zip"
    with source.open("wb") as f:
        block = os.urandom(MiB)
        for i in range(200):
            f.write(hashlib.sha256(i.to_bytes(4, "big")).digest() + block[32:])
    config = TransferConfig(multipart_threshold=8 * MiB, multipart_chunksize=8 * MiB, max_concurrency=4)
    extra = {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": kms_key["Arn"]}
    s3.upload_file(str(source), bucket, "exports/job-1.zip", ExtraArgs=extra, Config=config)

    head = s3.head_object(Bucket=bucket, Key="exports/job-1.zip")
    assert head["ContentLength"] == 200 * MiB
    assert head["ServerSideEncryption"] == "aws:kms" and head["SSEKMSKeyId"] == kms_key["Arn"]
    assert head["ETag"].endswith('-25"')  # md5-of-md5s, 25 parts of 8 MiB
    with source.open("rb") as f:
        md5s = b"".join(hashlib.md5(f.read(8 * MiB)).digest() for _ in range(25))
    assert head["ETag"] == f'"{hashlib.md5(md5s).hexdigest()}-25"'

    target = tmp_path / "downloaded.zip"
    s3.download_file(bucket, "exports/job-1.zip", str(target), Config=config)
    assert _sha256(target) == _sha256(source)


def test_manual_multipart_with_checksums_and_listing(s3: Any, bucket: str, kms_key: dict[str, Any]) -> None:
    upload = s3.create_multipart_upload(
        Bucket=bucket,
        Key="m.bin",
        ServerSideEncryption="aws:kms",
        SSEKMSKeyId=kms_key["KeyId"],
        ChecksumAlgorithm="CRC32",
    )
    assert upload["SSEKMSKeyId"] == kms_key["Arn"]
    uid = upload["UploadId"]
    assert [u["UploadId"] for u in s3.list_multipart_uploads(Bucket=bucket)["Uploads"]] == [uid]
    blobs = [os.urandom(5 * MiB), os.urandom(5 * MiB), b"tail"]
    parts = []
    for n, blob in enumerate(blobs, 1):
        out = s3.upload_part(
            Bucket=bucket, Key="m.bin", UploadId=uid, PartNumber=n, Body=blob, ChecksumAlgorithm="CRC32"
        )
        parts.append({"PartNumber": n, "ETag": out["ETag"], "ChecksumCRC32": out["ChecksumCRC32"]})
    # replacing a part keeps only the newest
    out = s3.upload_part(
        Bucket=bucket, Key="m.bin", UploadId=uid, PartNumber=3, Body=b"TAIL!", ChecksumAlgorithm="CRC32"
    )
    parts[2] = {"PartNumber": 3, "ETag": out["ETag"], "ChecksumCRC32": out["ChecksumCRC32"]}
    listed = s3.list_parts(Bucket=bucket, Key="m.bin", UploadId=uid)["Parts"]
    assert [(p["PartNumber"], p["Size"]) for p in listed] == [(1, 5 * MiB), (2, 5 * MiB), (3, 5)]
    done = s3.complete_multipart_upload(
        Bucket=bucket, Key="m.bin", UploadId=uid, MultipartUpload={"Parts": parts}
    )
    assert done["ETag"].endswith('-3"') and done["ChecksumCRC32"].endswith("-3")
    assert done["SSEKMSKeyId"] == kms_key["Arn"]
    body = s3.get_object(Bucket=bucket, Key="m.bin")["Body"].read()
    assert body == blobs[0] + blobs[1] + b"TAIL!"
    ranged = s3.get_object(Bucket=bucket, Key="m.bin", Range=f"bytes={5 * MiB - 3}-{5 * MiB + 2}")[
        "Body"
    ].read()
    assert ranged == (blobs[0] + blobs[1])[5 * MiB - 3 : 5 * MiB + 3]
    assert s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []
