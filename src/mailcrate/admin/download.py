"""Fetch a completed export (zip and log) with the caller's credentials, verify, unpack.

S3 decrypts SSE-KMS objects server-side for callers allowed ``kms:Decrypt`` on the key, so the
download is an ordinary GET. The zip lands as ``<JobId>.zip.part`` and is renamed only when
complete; then the log's sha384Hash and every manifest entry are checked
(:func:`mailcrate.export.verify.verify_export`); only a verified archive is unpacked.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

from mailcrate.admin.archive import ItemReport, verify_opened
from mailcrate.admin.aws import AwsTarget, error_code
from mailcrate.admin.errors import AdminError
from mailcrate.admin.fetch import download_object
from mailcrate.admin.jobs import describe_job
from mailcrate.admin.unpack import unpack_maildir, unpack_mbox
from mailcrate.export.verify import VerifyReport

__all__ = ["Downloaded", "download_export", "log_key_for"]


@dataclass
class Downloaded:
    job: dict[str, Any]
    zip_path: Path
    log_path: Path | None
    report: VerifyReport
    unpacked: ItemReport | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "jobId": self.job["JobId"],
            "zip": str(self.zip_path),
            "log": str(self.log_path) if self.log_path else None,
            "verified": self.report.ok,
            "items": self.report.items_checked,
            "bytes": self.report.total_bytes,
            "sha384": self.report.sha384_hex,
            "problems": [{"entry": p.entry, "message": p.message} for p in self.report.problems],
        }
        if self.unpacked is not None:
            out["unpacked"] = self.unpacked.to_dict()
        return out


def log_key_for(s3_path: str) -> str:
    """``<S3Prefix>/<JobId>.json`` beside ``<S3Prefix>/<JobId>.zip``."""
    return (s3_path[:-4] if s3_path.endswith(".zip") else s3_path) + ".json"


def download_export(
    target: AwsTarget,
    organization_id: str,
    job_id: str,
    to: Path,
    *,
    progress: Any = None,
    fmt: str = "maildir",
    unpack: bool = True,
) -> Downloaded:
    """Download, verify and (when verified and ``unpack``) unpack into ``to/<JobId>/``."""
    job = describe_job(target, organization_id, job_id)
    state = job.get("State")
    if state != "COMPLETED":
        if state == "RUNNING":
            raise AdminError(
                f"job {job_id} is still RUNNING ({job.get('EstimatedProgress', 0)}%)",
                f"wait for it: mailcrate export wait {job_id} --organization-id {organization_id}",
            )
        raise AdminError(
            f"job {job_id} is {state}, there is nothing to download"
            + (f": {job['ErrorInfo']}" if job.get("ErrorInfo") else ""),
            "start a new export with mailcrate export start",
        )
    bucket, key = job["S3BucketName"], job["S3Path"]
    to.mkdir(parents=True, exist_ok=True, mode=0o700)
    zip_path = to / f"{job_id}.zip"
    part = to / f"{job_id}.zip.part"
    s3 = target.client("s3")
    try:
        size = int(s3.head_object(Bucket=bucket, Key=key)["ContentLength"])
    except ClientError as exc:
        if error_code(exc) in ("404", "NoSuchKey", "NotFound"):
            raise AdminError(
                f"s3://{bucket}/{key} is gone (job {job_id} completed, but the object was deleted)",
                "start a new export",
            ) from None
        raise
    bar = progress(f"download {job_id[:8]}", size) if progress else None
    try:
        if bar is not None:
            with bar:
                download_object(s3, bucket, key, part, on_bytes=bar.advance)
        else:
            download_object(s3, bucket, key, part)
        os.replace(part, zip_path)
    finally:
        part.unlink(missing_ok=True)
    log_path: Path | None = to / f"{job_id}.json"
    try:
        body = s3.get_object(Bucket=bucket, Key=log_key_for(key))["Body"].read()
        log_path.write_bytes(body)  # type: ignore[union-attr]
    except ClientError as exc:
        if error_code(exc) not in ("404", "NoSuchKey", "NotFound"):
            raise
        log_path = None
    # one read of the central directory and manifest, for the verification and the unpack
    report, archive = verify_opened(zip_path, log_path)
    try:
        if log_path is None:
            report.add(
                None, f"export log s3://{bucket}/{log_key_for(key)} not found: the zip's SHA-384 is unchecked"
            )
        result = Downloaded(job, zip_path, log_path, report)
        if report.ok and unpack:
            dest = to / job_id
            into = unpack_mbox if fmt == "mbox" else unpack_maildir
            result.unpacked = into(zip_path, dest, archive=archive)
    finally:
        if archive is not None:
            archive.close()
    return result
