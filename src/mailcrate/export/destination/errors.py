"""How an export's failures are told: permanent (:class:`ExportError`, the administrator must
fix something and the message says what) or transient (:class:`TransientExportError`, retry
later), whichever way the service answered: botocore's ``ClientError`` over HTTP or the embedded
services' ``ServiceError`` in-process. So an ErrorInfo does not depend on the path. Messages
never hold secrets.
"""

from __future__ import annotations

from botocore.exceptions import BotoCoreError, ClientError, HTTPClientError
from botocore.exceptions import ConnectionError as BotoConnectionError

from mailcrate.jobs.records import ExportJob
from mailcrate.protocol.errors import ServiceError
from mailcrate.storage.faults import StorageFault

__all__ = [
    "TRANSIENT_CODES",
    "ExportError",
    "TransientExportError",
    "classify",
    "error_answer",
    "error_code",
]


class ExportError(Exception):
    """A permanent failure: the job fails with this message as ErrorInfo."""


class TransientExportError(ExportError):
    """A failure that retrying later may fix (throttling, 5xx, dropped connections)."""


TRANSIENT_CODES = {
    "SlowDown",
    "InternalError",
    "ServiceUnavailable",
    "RequestTimeout",
    "RequestTimeTooSkewed",
    "Throttling",
    "ThrottlingException",
    "RequestLimitExceeded",
    "KMS.KMSInternalException",
    "KMS.DependencyTimeoutException",
    "KMS.ThrottlingException",
}


def error_code(exc: BaseException) -> str:
    """The AWS error code of a botocore ``ClientError`` or an embedded ``ServiceError`` ("" else)."""
    if isinstance(exc, ClientError):
        return str(exc.response.get("Error", {}).get("Code", ""))
    if isinstance(exc, ServiceError):
        return str(exc.code)
    return ""


def error_answer(exc: BaseException) -> tuple[str, str, int, dict[str, str]] | None:
    """(code, message, HTTP status, headers) of a service's error answer, whichever way it came:
    over HTTP through botocore, or raised by the embedded S3/KMS handlers in-process."""
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        meta = exc.response.get("ResponseMetadata", {})
        return (
            str(error.get("Code", "")),
            str(error.get("Message", "")).strip(),
            int(meta.get("HTTPStatusCode") or 0),
            meta.get("HTTPHeaders", {}) or {},
        )
    if isinstance(exc, ServiceError):
        return str(exc.code), str(exc.message).strip(), int(exc.status), {}
    return None


def classify(exc: BaseException, job: ExportJob, action: str) -> ExportError:
    """Turn a failure of ``action`` (botocore ``ClientError`` or embedded ``ServiceError``) into
    an ExportError that says what to fix."""
    bucket, key_arn, role = job.s3_bucket_name, job.kms_key_arn, job.role_arn
    if isinstance(exc, ExportError):
        return exc
    answer = error_answer(exc)
    if answer is not None:
        code, message, status, headers = answer
        if status == 503 and StorageFault.DISK_FULL.value in message:
            # Retrying fills the same disk again: fail now and say what to free.
            return ExportError(
                f"The export could not be stored: {StorageFault.DISK_FULL.value} where the S3 "
                f"endpoint keeps bucket {bucket} ({action}). Free space there and start a new export."
            )
        if code in TRANSIENT_CODES or status >= 500:
            return TransientExportError(
                f"S3 answered {code or status} to {action} of bucket {bucket}: {message}"
            )
        bucket_region = headers.get("x-amz-bucket-region")
        if code in (
            "PermanentRedirect",
            "AuthorizationHeaderMalformed",
            "IllegalLocationConstraintException",
        ) or (bucket_region and bucket_region != job.region):
            where = f" (it is in {bucket_region})" if bucket_region else ""
            return ExportError(
                f"The bucket {bucket} is not in {job.region}{where}: the bucket, the KMS key and the "
                "organization must be in one region."
            )
        if code == "NoSuchBucket":
            return ExportError(
                f"The bucket {bucket} does not exist. Create it in {job.region} or correct S3BucketName."
            )
        if code == "KMS.DisabledException":
            return ExportError(
                f"The KMS key {key_arn} is disabled. Enable it (kms enable-key) and start a new export."
            )
        if code == "KMS.NotFoundException":
            return ExportError(f"The KMS key {key_arn} does not exist in {job.region}. Correct KmsKeyArn.")
        if code in ("KMS.InvalidKeyUsageException", "KMS.UnsupportedOperationException"):
            return ExportError(
                f"The KMS key {key_arn} cannot encrypt S3 objects: exports need a symmetric encryption "
                "key (KeySpec SYMMETRIC_DEFAULT, KeyUsage ENCRYPT_DECRYPT)."
            )
        if code == "KMS.KMSInvalidStateException":
            return ExportError(
                f"The KMS key {key_arn} is not usable (pending deletion or import). Use an enabled key."
            )
        if code.startswith("KMS.") or (code == "AccessDenied" and "kms" in message.lower()):
            return ExportError(
                f"S3 could not use the KMS key {key_arn} for the export ({code}: {message}). The role "
                f"{role} needs kms:GenerateDataKey and kms:Decrypt on the key via S3, and the key policy "
                "must allow the account."
            )
        if code in ("AccessDenied", "AllAccessDisabled", "InvalidAccessKeyId", "SignatureDoesNotMatch"):
            return ExportError(
                f"Access denied for {action} on bucket {bucket} as role {role}. The role's permission "
                f"policy must allow s3:PutObject, s3:AbortMultipartUpload and s3:GetBucketPolicyStatus "
                f"on arn:aws:s3:::{bucket} and arn:aws:s3:::{bucket}/*. (S3: {message[:300]})"
            )
        return ExportError(f"S3 refused {action} on bucket {bucket}: {code or status}: {message}")
    if isinstance(exc, (BotoConnectionError, HTTPClientError, ConnectionError, TimeoutError)):
        # HTTPClientError: read timeouts and connections closed mid-answer (not botocore
        # ConnectionErrors), once botocore's own retries are spent; as transient as a 5xx.
        return TransientExportError(
            f"Connection to the S3 endpoint failed during {action}: {type(exc).__name__}"
        )
    if isinstance(exc, BotoCoreError):
        return ExportError(f"{action} failed: {exc}")
    return ExportError(f"{action} failed: {type(exc).__name__}: {exc}")
