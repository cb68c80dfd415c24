"""What an export writes through (:class:`ExportDestination`), and the checks before any byte is
written, shared by every destination (:class:`Checks`)."""

from __future__ import annotations

import logging
from typing import Any, Protocol

from botocore.exceptions import ClientError

from mailcrate.export.destination.errors import ExportError, classify, error_answer, error_code
from mailcrate.jobs.records import ExportJob

__all__ = ["Checks", "ExportDestination"]

log = logging.getLogger("mailcrate.export")


class ExportDestination(Protocol):
    """What an export writes through: checks, one multipart upload, the log object.

    Every method raises :class:`ExportError` (or :class:`TransientExportError`) with a message
    saying what to fix; ``abort_upload`` and ``delete_object`` are best effort and never raise
    (``abort_upload`` says whether the upload is gone)."""

    def preflight(self) -> None: ...

    def check_not_public(self, *, again: bool = False) -> None: ...

    def create_upload(self, key: str) -> str: ...

    def upload_part(self, key: str, upload_id: str, number: int, data: Any) -> str: ...

    def complete_upload(self, key: str, upload_id: str, etags: list[str]) -> None: ...

    def abort_upload(self, key: str, upload_id: str) -> bool: ...

    def put_object(self, key: str, body: bytes, content_type: str) -> None: ...

    def delete_object(self, key: str) -> None: ...


class Checks:
    """What both destinations share: the checks before any byte is written, and the best-effort
    clean-ups. Subclasses supply the calls (``_policy_status``, ``_location``, ``_describe_key``,
    ``_abort``, ``_delete``); failures are ``ClientError`` or ``ServiceError`` (see
    :func:`error_code`)."""

    job: ExportJob

    def _abort(self, key: str, upload_id: str) -> None:
        raise NotImplementedError

    def _delete(self, key: str) -> None:
        raise NotImplementedError

    def abort_upload(self, key: str, upload_id: str) -> bool:
        """Best effort: True once the upload is gone (an upload already gone, completed or
        aborted, is fine); False when the abort failed (the sweeper tries again later)."""
        try:
            self._abort(key, upload_id)
        except Exception as exc:
            if error_code(exc) == "NoSuchUpload":
                return True
            log.warning("job %s: aborting upload failed: %s", self.job.job_id, exc)
            return False
        return True

    def delete_object(self, key: str) -> None:
        """Best effort (the documented role policy grants no s3:DeleteObject)."""
        try:
            self._delete(key)
        except Exception as exc:
            log.warning("job %s: could not remove %s after a failure: %s", self.job.job_id, key, exc)

    def _policy_status(self) -> dict[str, Any]:
        raise NotImplementedError

    def _location(self) -> dict[str, Any]:
        raise NotImplementedError

    def _describe_key(self) -> dict[str, Any]:
        raise NotImplementedError

    def known_bucket_region(self) -> str | None:
        """The bucket's region when the destination knows it without the role (the embedded S3
        knows its own buckets'); None otherwise (real S3 answers a request signed for the
        wrong region with a redirect naming the right one, which :func:`classify` reports)."""
        return None

    def preflight(self) -> None:
        """Checks before any byte is written: the bucket exists, is in the job's region and is
        not public; the key (when the role may describe it) is an enabled symmetric key."""
        bucket = self.job.s3_bucket_name
        bucket_region = self.known_bucket_region()
        if bucket_region and bucket_region != self.job.region:
            raise ExportError(
                f"The bucket {bucket} is in {bucket_region}, not in {self.job.region}: the bucket, the "
                "KMS key and the organization must be in one region."
            )
        self.check_not_public()
        self._check_bucket_region()
        self._check_key()

    def check_not_public(self, *, again: bool = False) -> None:
        """Refuse a public bucket: before any byte is written, and ``again`` right before the
        upload completes (a bucket made public while the job ran gets no zip)."""
        bucket = self.job.s3_bucket_name
        try:
            status = self._policy_status()
            public = bool(status.get("PolicyStatus", {}).get("IsPublic"))
        except Exception as exc:
            if error_code(exc) != "NoSuchBucketPolicy":
                raise classify(exc, self.job, "GetBucketPolicyStatus") from exc
            public = False
        if public:
            when = " became public while the export ran" if again else " is public"
            raise ExportError(
                f"The bucket {bucket}{when} (its bucket policy grants access to anyone). "
                "WorkMail does not export mailboxes to public buckets: remove the public statements"
                + (" and start the export again." if again else ".")
            )

    def _check_bucket_region(self) -> None:
        """Best effort: the documented role policy grants no s3:GetBucketLocation, so AccessDenied
        here proves nothing; a region mismatch otherwise shows on the first write."""
        try:
            answer = self._location()
        except Exception as exc:
            headers = (error_answer(exc) or ("", "", 0, {}))[3]
            if error_code(exc) == "NoSuchBucket" or headers.get("x-amz-bucket-region"):
                raise classify(exc, self.job, "GetBucketLocation") from exc
            return
        region = answer.get("LocationConstraint") or "us-east-1"
        if region == "EU":
            region = "eu-west-1"
        if region != self.job.region:
            raise ExportError(
                f"The bucket {self.job.s3_bucket_name} is in {region}, not in {self.job.region}: the "
                "bucket, the KMS key and the organization must be in one region."
            )

    def _check_key(self) -> None:
        """Best effort as well (the documented policy grants no kms:DescribeKey); S3 reports the
        same problems as KMS.* errors on the first write, which :func:`classify` explains."""
        try:
            meta = self._describe_key()["KeyMetadata"]
        except Exception as exc:
            if error_code(exc) == "NotFoundException":
                raise ExportError(
                    f"The KMS key {self.job.kms_key_arn} does not exist in {self.job.region}. Correct KmsKeyArn."
                ) from exc
            return
        if meta.get("KeyState") == "Disabled":
            raise classify(refusal("KMS.DisabledException"), self.job, "DescribeKey")
        if meta.get("KeyState") in ("PendingDeletion", "PendingImport", "Unavailable"):
            raise classify(refusal("KMS.KMSInvalidStateException"), self.job, "DescribeKey")
        spec = meta.get("KeySpec") or meta.get("CustomerMasterKeySpec")
        if (spec and spec != "SYMMETRIC_DEFAULT") or meta.get(
            "KeyUsage", "ENCRYPT_DECRYPT"
        ) != "ENCRYPT_DECRYPT":
            raise classify(refusal("KMS.InvalidKeyUsageException"), self.job, "DescribeKey")


def refusal(code: str) -> ClientError:
    """An answer of the code the key's state would have earned, for :func:`classify`."""
    return ClientError({"Error": {"Code": code, "Message": ""}}, "DescribeKey")
