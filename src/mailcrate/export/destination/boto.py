"""The destination over HTTP: boto3 acting as the job's role, against an external S3 (AWS
itself, Ceph RGW, MinIO, moto) or a remote mailcrate server's embedded S3. boto3 is imported
only when one is opened: in-process exports never load it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from mailcrate.config import PART_TIMEOUT_SECONDS
from mailcrate.export.destination.contract import Checks
from mailcrate.export.destination.errors import classify
from mailcrate.jobs.records import ExportJob

REAL_AWS = "aws"
#: Seconds a request may wait for the endpoint's next bytes (``--export-part-timeout-seconds``
#: sets it for exports). A part that stalls is retried (botocore's retries, then the job's)
#: after this, not after minutes: at 300 s one UploadPart that never answered held its job for
#: up to ~25 minutes across the retries.
READ_TIMEOUT = float(PART_TIMEOUT_SECONDS)

__all__ = ["REAL_AWS", "BotoDestination", "PartBody", "endpoint_for"]


def endpoint_for(endpoint_url: str | None) -> str | None:
    """The endpoint boto3 gets: None (AWS's own endpoints) for None or :data:`REAL_AWS`."""
    return None if endpoint_url in (None, REAL_AWS) else endpoint_url


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
class BotoDestination(Checks):
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
        read_timeout: float = READ_TIMEOUT,
    ) -> BotoDestination:
        """Assume the job's role with ``assume`` and build S3/KMS clients at ``endpoint_url``."""
        import boto3  # only here: in-process exports never load boto3
        import botocore.session
        from botocore.config import Config
        from botocore.credentials import RefreshableCredentials

        url = endpoint_for(endpoint_url)
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
            read_timeout=read_timeout,
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

    def _abort(self, key: str, upload_id: str) -> None:
        self.s3.abort_multipart_upload(Bucket=self.job.s3_bucket_name, Key=key, UploadId=upload_id)

    def _delete(self, key: str) -> None:
        self.s3.delete_object(Bucket=self.job.s3_bucket_name, Key=key)
