"""Where an export goes: S3 (and KMS through it), always acting as the job's role.

:meth:`Destination.open` picks one of the two implementations of :class:`ExportDestination`:

* embedded (default): the role is assumed in-process as the service principal
  ``export.workmail.amazonaws.com`` (:func:`mailcrate.services.sts.sessions.assume_role_as_service`,
  with ``sts:ExternalId`` = account id, ``aws:SourceAccount`` and ``aws:SourceArn`` = the
  organization ARN, so both documented trust-policy forms work), and the parts go straight into
  the embedded S3 through its own handlers as that session
  (:class:`mailcrate.export.embedded.EmbeddedDestination`: no HTTP, no boto3);
* external (``--aws-endpoint-url URL``, or ``aws`` for real AWS endpoints): mailcrate's own
  identity from the standard AWS credential chain calls ``sts:AssumeRole`` with the same
  ExternalId, and boto3 talks to S3 (:class:`BotoDestination`). Real AWS cannot let a
  self-hosted process act as a service principal, so there the role's trust policy must trust
  mailcrate's IAM principal instead;
* a remote mailcrate server (``mailcrate worker --server-url URL`` on another machine, sharing
  only the database): the role is assumed in-process as for embedded, and boto3 writes to that
  server's embedded S3 over HTTP (:class:`BotoDestination`), since the server's disk, where
  its objects live, is not this machine's.

Both share the checks (:class:`_Checks`) and :func:`classify`, which reads botocore's
``ClientError`` and the embedded services' ``ServiceError`` alike, so an ErrorInfo does not
depend on the path. boto3 is imported only when a :class:`BotoDestination` is opened.

Errors come out as :class:`ExportError` (permanent: the administrator must fix something; the
message says what) or :class:`TransientExportError` (retry later). Messages never hold secrets.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from botocore.exceptions import BotoCoreError, ClientError
from botocore.exceptions import ConnectionError as BotoConnectionError

from mailcrate.jobs.records import ExportJob
from mailcrate.protocol.errors import ServiceError

log = logging.getLogger("mailcrate.export")

SERVICE_PRINCIPAL = "export.workmail.amazonaws.com"
REAL_AWS = "aws"
SESSION_SECONDS = 3600

__all__ = [
    "REAL_AWS",
    "SERVICE_PRINCIPAL",
    "BotoDestination",
    "Destination",
    "ExportDestination",
    "ExportError",
    "TransientExportError",
    "classify",
]


class ExportError(Exception):
    """A permanent failure: the job fails with this message as ErrorInfo."""


class TransientExportError(ExportError):
    """A failure that retrying later may fix (throttling, 5xx, dropped connections)."""


_TRANSIENT_CODES = {
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


def _session_name(job: ExportJob) -> str:
    return re.sub(r"[^\w+=,.@-]", "", f"workmail-export-{job.job_id}")[:64]


def error_code(exc: BaseException) -> str:
    """The AWS error code of a botocore ``ClientError`` or an embedded ``ServiceError`` ("" else)."""
    if isinstance(exc, ClientError):
        return str(exc.response.get("Error", {}).get("Code", ""))
    if isinstance(exc, ServiceError):
        return str(exc.code)
    return ""


def _answer(exc: BaseException) -> tuple[str, str, int, dict[str, str]] | None:
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
    answer = _answer(exc)
    if answer is not None:
        code, message, status, headers = answer
        if code in _TRANSIENT_CODES or status >= 500:
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
    if isinstance(exc, (BotoConnectionError, ConnectionError, TimeoutError)):
        return TransientExportError(
            f"Connection to the S3 endpoint failed during {action}: {type(exc).__name__}"
        )
    if isinstance(exc, BotoCoreError):
        return ExportError(f"{action} failed: {exc}")
    return ExportError(f"{action} failed: {type(exc).__name__}: {exc}")


class ExportDestination(Protocol):
    """What an export writes through: checks, one multipart upload, the log object.

    Every method raises :class:`ExportError` (or :class:`TransientExportError`) with a message
    saying what to fix; ``abort_upload`` and ``delete_object`` are best effort and never raise."""

    def preflight(self, bucket_region: str | None = None) -> None: ...

    def create_upload(self, key: str) -> str: ...

    def upload_part(self, key: str, upload_id: str, number: int, data: Any) -> str: ...

    def complete_upload(self, key: str, upload_id: str, etags: list[str]) -> None: ...

    def abort_upload(self, key: str, upload_id: str) -> None: ...

    def put_object(self, key: str, body: bytes, content_type: str) -> None: ...

    def delete_object(self, key: str) -> None: ...


class Destination:
    """Opens the destination of a job (the one place that chooses between the two)."""

    @classmethod
    def open(
        cls,
        job: ExportJob,
        *,
        data_dir: Any,
        endpoint_url: str | None,
        external: bool,
        remote_server: bool = False,
        max_connections: int = 10,
        loader: Any = None,
    ) -> ExportDestination:
        """Assume the job's role and return where to write:

        * ``external``: boto3 STS and S3 at ``endpoint_url`` (None or :data:`REAL_AWS` = AWS's own
          endpoints);
        * ``remote_server``: the embedded S3 of the mailcrate server at ``endpoint_url``, over
          HTTP with boto3 (a ``mailcrate worker --server-url`` on another machine shares the
          database, so it assumes the role in-process, but not the server's disk);
        * otherwise the embedded S3 of this data directory, in-process."""
        if external:
            return BotoDestination.open(
                job,
                endpoint_url=endpoint_url,
                assume=_external_assumer(job, _url(endpoint_url)),
                max_connections=max_connections,
                loader=loader,
            )
        if remote_server:
            return BotoDestination.open(
                job,
                endpoint_url=endpoint_url,
                assume=_embedded_assumer(job, data_dir),
                max_connections=max_connections,
                loader=loader,
            )
        from mailcrate.export.embedded import EmbeddedDestination

        return EmbeddedDestination.open(job, data_dir=data_dir, assume=_embedded_assumer(job, data_dir))


def _url(endpoint_url: str | None) -> str | None:
    """The endpoint boto3 gets: None (AWS's own endpoints) for None or :data:`REAL_AWS`."""
    return None if endpoint_url in (None, REAL_AWS) else endpoint_url


class _Checks:
    """The checks before any byte is written, shared by both destinations. Subclasses supply
    the three calls; failures are ``ClientError`` or ``ServiceError`` (see :func:`error_code`)."""

    job: ExportJob

    def _policy_status(self) -> dict[str, Any]:
        raise NotImplementedError

    def _location(self) -> dict[str, Any]:
        raise NotImplementedError

    def _describe_key(self) -> dict[str, Any]:
        raise NotImplementedError

    def preflight(self, bucket_region: str | None = None) -> None:
        """Checks before any byte is written: the bucket exists, is in the job's region and is
        not public; the key (when the role may describe it) is an enabled symmetric key.

        ``bucket_region``: the bucket's region when the caller knows it without the role (the
        embedded S3 tells its own buckets' regions; real S3 answers a request signed for the
        wrong region with a redirect naming the right one, which :func:`classify` reports)."""
        bucket = self.job.s3_bucket_name
        if bucket_region and bucket_region != self.job.region:
            raise ExportError(
                f"The bucket {bucket} is in {bucket_region}, not in {self.job.region}: the bucket, the "
                "KMS key and the organization must be in one region."
            )
        try:
            status = self._policy_status()
            public = bool(status.get("PolicyStatus", {}).get("IsPublic"))
        except Exception as exc:
            if error_code(exc) != "NoSuchBucketPolicy":
                raise classify(exc, self.job, "GetBucketPolicyStatus") from exc
            public = False
        if public:
            raise ExportError(
                f"The bucket {bucket} is public (its bucket policy grants access to anyone). "
                "WorkMail does not export mailboxes to public buckets: remove the public statements."
            )
        self._check_bucket_region()
        self._check_key()

    def _check_bucket_region(self) -> None:
        """Best effort: the documented role policy grants no s3:GetBucketLocation, so AccessDenied
        here proves nothing; a region mismatch otherwise shows on the first write."""
        try:
            answer = self._location()
        except Exception as exc:
            headers = (_answer(exc) or ("", "", 0, {}))[3]
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
            raise classify(_fake("KMS.DisabledException"), self.job, "DescribeKey")
        if meta.get("KeyState") in ("PendingDeletion", "PendingImport", "Unavailable"):
            raise classify(_fake("KMS.KMSInvalidStateException"), self.job, "DescribeKey")
        spec = meta.get("KeySpec") or meta.get("CustomerMasterKeySpec")
        if (spec and spec != "SYMMETRIC_DEFAULT") or meta.get(
            "KeyUsage", "ENCRYPT_DECRYPT"
        ) != "ENCRYPT_DECRYPT":
            raise classify(_fake("KMS.InvalidKeyUsageException"), self.job, "DescribeKey")


class PartBody:
    """A part buffer that is not ``bytes`` (a mapping, a view of the last part) as the file
    object botocore takes for a body: it reads it through ``read``/``seek``/``tell`` (payload
    hash, retries, sending), here slices of one view, so nothing is copied. Its own position,
    unlike a reused mapping's, always starts at 0."""

    def __init__(self, data: Any) -> None:
        self._view = memoryview(data).cast("B")
        self._pos = 0

    def __len__(self) -> int:
        return self._view.nbytes

    def read(self, size: int = -1) -> bytes | memoryview:
        end = self._view.nbytes if size is None or size < 0 else min(self._pos + size, self._view.nbytes)
        if end <= self._pos:
            return b""
        piece, self._pos = self._view[self._pos : end], end
        return piece

    def seek(self, offset: int, whence: int = 0) -> int:
        base = (0, self._pos, self._view.nbytes)[whence]
        self._pos = max(0, min(base + offset, self._view.nbytes))
        return self._pos

    def tell(self) -> int:
        return self._pos

    def seekable(self) -> bool:
        return True

    def readable(self) -> bool:
        return True


@dataclass
class BotoDestination(_Checks):
    """An S3 client (boto3) acting as the job's role: external S3, or AWS itself."""

    job: ExportJob
    s3: Any
    kms: Any

    @classmethod
    def open(
        cls,
        job: ExportJob,
        *,
        endpoint_url: str | None,
        assume: Callable[[], dict[str, Any]],
        max_connections: int = 10,
        loader: Any = None,
    ) -> BotoDestination:
        """Assume the job's role with ``assume`` and build S3/KMS clients at ``endpoint_url``."""
        import boto3  # only here: in-process exports never load boto3
        import botocore.session
        from botocore.config import Config
        from botocore.credentials import RefreshableCredentials

        url = _url(endpoint_url)
        fetch = assume
        credentials = RefreshableCredentials.create_from_metadata(
            metadata=fetch(), refresh_using=fetch, method="assume-role"
        )
        core = botocore.session.Session()
        core._credentials = credentials  # the documented way boto3's own assume-role provider works
        if loader is not None:  # a shared loader keeps parsed service models across jobs
            core.register_component("data_loader", loader)
        session = boto3.Session(botocore_session=core, region_name=job.region)
        s3_config: dict[str, Any] = {"addressing_style": "path"} if url else {}
        config = Config(
            region_name=job.region,
            retries={"mode": "standard", "max_attempts": 5},
            s3=s3_config,
            max_pool_connections=max_connections,
            connect_timeout=10,
            read_timeout=300,
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
        )
        return cls(
            job=job,
            s3=session.client("s3", endpoint_url=url, config=config),
            kms=session.client("kms", endpoint_url=url, config=config),
        )

    def _call(self, action: str, fn: Callable[..., Any], **kwargs: Any) -> Any:
        try:
            return fn(**kwargs)
        except Exception as exc:
            raise classify(exc, self.job, action) from exc

    # -- checks -------------------------------------------------------------------------------

    def _policy_status(self) -> dict[str, Any]:
        return dict(self.s3.get_bucket_policy_status(Bucket=self.job.s3_bucket_name))

    def _location(self) -> dict[str, Any]:
        return dict(self.s3.get_bucket_location(Bucket=self.job.s3_bucket_name))

    def _describe_key(self) -> dict[str, Any]:
        return dict(self.kms.describe_key(KeyId=self.job.kms_key_arn))

    # -- writes --------------------------------------------------------------------------------

    def _sse(self) -> dict[str, str]:
        return {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": self.job.kms_key_arn}

    def create_upload(self, key: str) -> str:
        answer = self._call(
            "CreateMultipartUpload",
            self.s3.create_multipart_upload,
            Bucket=self.job.s3_bucket_name,
            Key=key,
            ContentType="application/zip",
            **self._sse(),
        )
        return str(answer["UploadId"])

    def upload_part(self, key: str, upload_id: str, number: int, data: Any) -> str:
        answer = self._call(
            "UploadPart",
            self.s3.upload_part,
            Bucket=self.job.s3_bucket_name,
            Key=key,
            UploadId=upload_id,
            PartNumber=number,
            Body=data if isinstance(data, (bytes, bytearray)) else PartBody(data),
        )
        return str(answer["ETag"])

    def complete_upload(self, key: str, upload_id: str, etags: list[str]) -> None:
        parts = [{"PartNumber": n, "ETag": etag} for n, etag in enumerate(etags, start=1)]
        self._call(
            "CompleteMultipartUpload",
            self.s3.complete_multipart_upload,
            Bucket=self.job.s3_bucket_name,
            Key=key,
            UploadId=upload_id,
            MultipartUpload={"Parts": parts},
        )

    def abort_upload(self, key: str, upload_id: str) -> None:
        """Best effort: an upload already gone (completed, aborted) is fine."""
        try:
            self.s3.abort_multipart_upload(Bucket=self.job.s3_bucket_name, Key=key, UploadId=upload_id)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "NoSuchUpload":
                log.warning("job %s: aborting upload failed: %s", self.job.job_id, exc)
        except Exception as exc:
            log.warning("job %s: aborting upload failed: %s", self.job.job_id, exc)

    def put_object(self, key: str, body: bytes, content_type: str) -> None:
        self._call(
            "PutObject",
            self.s3.put_object,
            Bucket=self.job.s3_bucket_name,
            Key=key,
            Body=body,
            ContentType=content_type,
            **self._sse(),
        )

    def delete_object(self, key: str) -> None:
        """Best effort (the documented role policy grants no s3:DeleteObject)."""
        try:
            self.s3.delete_object(Bucket=self.job.s3_bucket_name, Key=key)
        except Exception as exc:
            log.warning("job %s: could not remove %s after a failure: %s", self.job.job_id, key, exc)


def _fake(code: str) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": ""}}, "DescribeKey")


def _metadata(credentials: dict[str, Any]) -> dict[str, Any]:
    expiry = credentials["Expiration"]
    if isinstance(expiry, datetime):
        expiry = expiry.astimezone(UTC).isoformat()
    return {
        "access_key": credentials["AccessKeyId"],
        "secret_key": credentials["SecretAccessKey"],
        "token": credentials["SessionToken"],
        "expiry_time": expiry,
    }


def _assume_denied(job: ExportJob, detail: str) -> ExportError:
    return ExportError(
        f"WorkMail could not assume the role {job.role_arn} ({detail}). The role must exist and its "
        f"trust policy must allow sts:AssumeRole to the service principal {SERVICE_PRINCIPAL} with "
        f"sts:ExternalId {job.account_id} (optionally aws:SourceAccount {job.account_id} and "
        f"aws:SourceArn {job.organization_arn})."
    )


def _embedded_assumer(job: ExportJob, data_dir: Any) -> Callable[[], dict[str, Any]]:
    from mailcrate.protocol.errors import ServiceError
    from mailcrate.services.sts.sessions import assume_role_as_service

    def fetch() -> dict[str, Any]:
        try:
            answer = assume_role_as_service(
                data_dir,
                service=SERVICE_PRINCIPAL,
                role_arn=job.role_arn,
                session_name=_session_name(job),
                external_id=job.account_id,
                source_account=job.account_id,
                source_arn=job.organization_arn,
                duration_seconds=SESSION_SECONDS,
            )
        except ServiceError as exc:
            raise _assume_denied(job, f"{exc.code}") from exc
        return _metadata(answer["Credentials"])

    return fetch


def _external_assumer(job: ExportJob, url: str | None) -> Callable[[], dict[str, Any]]:
    import boto3
    from botocore.config import Config

    def fetch() -> dict[str, Any]:
        sts = boto3.Session(region_name=job.region).client(
            "sts", endpoint_url=url, config=Config(retries={"mode": "standard", "max_attempts": 5})
        )
        try:
            answer = sts.assume_role(
                RoleArn=job.role_arn,
                RoleSessionName=_session_name(job),
                ExternalId=job.account_id,
                DurationSeconds=SESSION_SECONDS,
            )
        except ClientError as exc:
            status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
            code = str(exc.response.get("Error", {}).get("Code"))
            if status >= 500 or code in _TRANSIENT_CODES:
                raise TransientExportError(f"STS AssumeRole failed ({code}); will retry") from exc
            raise _assume_denied(job, code) from exc
        except (BotoConnectionError, ConnectionError) as exc:
            raise TransientExportError(f"STS endpoint unreachable: {type(exc).__name__}") from exc
        except BotoCoreError as exc:
            raise ExportError(f"No credentials to assume the export role with: {exc}") from exc
        return _metadata(answer["Credentials"])

    return fetch
