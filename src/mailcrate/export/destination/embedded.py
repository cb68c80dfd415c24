"""The embedded S3 as an export destination, in-process: the services' own road, no HTTP.

The export worker shares the data directory (and database) with ``mailcrate serve``, so instead
of sending each part to its own server over loopback HTTP with boto3 (SigV4 payload SHA-256 in
the client, SHA-256 and MD5 again in the server, the event loop and a thread handoff per chunk),
it calls :func:`mailcrate.services.invoke.invoke`, the entry the server's dispatch uses once it
has authenticated a request, as the assumed-role session (looked up by its access key as the
server looks up a signed request's key). So validation, authorization (the role's identity
policies and the bucket policy: ``s3:PutObject``, ``s3:AbortMultipartUpload``,
``s3:GetBucketPolicyStatus``; ``kms:GenerateDataKey``/``kms:Decrypt`` with ``kms:ViaService``
and the encryption context; the generic ``kms:DescribeKey``) and SSE-KMS have one code path;
only authentication is left out, since the worker holds the session's credentials itself.
Requests look like loopback ones to the policy engine: ``aws:SourceIp`` 127.0.0.1,
``aws:SecureTransport`` false.

Part bodies are :class:`~mailcrate.services.s3.payload.BufferPayload` over the part buffer (no
copy, no hash), or for a part still being filled :class:`~mailcrate.services.s3.payload.StreamPayload`
(:meth:`EmbeddedDestination.stream_part`: sealed and written chunk by chunk meanwhile). The
zip's SHA-384 for the export log is still computed by the uploader.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from mailcrate.accounts import Principal, lookup_access_key
from mailcrate.export.destination.contract import Checks
from mailcrate.export.destination.errors import ExportError, classify
from mailcrate.export.destination.roles import Assume
from mailcrate.export.uploader import Frames, UploadStopped
from mailcrate.jobs.control import StopExport
from mailcrate.jobs.records import ExportJob
from mailcrate.services.base import WriteGuard
from mailcrate.services.context import ServiceContext
from mailcrate.services.invoke import in_process_request, invoke
from mailcrate.services.s3 import buckets
from mailcrate.services.s3.errors import NoSuchBucket
from mailcrate.services.s3.payload import BufferPayload, StreamPayload

__all__ = ["EmbeddedDestination"]

#: Assume the role again when the session has less than this left (a long export outlives it).
REFRESH_BEFORE = timedelta(minutes=5)


class EmbeddedDestination(Checks):
    """The job's destination in this process's data directory, acting as the assumed role."""

    def __init__(
        self, job: ExportJob, context: ServiceContext, assume: Assume, write_guard: WriteGuard | None = None
    ) -> None:
        self.job = job
        self.context = context
        self._assume = assume
        self._write_guard = write_guard
        self._lock = threading.Lock()
        self._principal: Principal | None = None
        self._request = in_process_request()

    @classmethod
    def open(
        cls, job: ExportJob, *, context: ServiceContext, assume: Assume, write_guard: WriteGuard | None = None
    ) -> EmbeddedDestination:
        """Assume the job's role now (a refused trust policy fails here, as over HTTP).
        ``write_guard`` fences every write: it runs where the write commits (see
        :func:`mailcrate.jobs.store.guard_attempt_writes`)."""
        destination = cls(job, context, assume, write_guard)
        destination.principal()
        return destination

    def principal(self) -> Principal:
        """The session's principal, assuming the role again shortly before it expires."""
        with self._lock:
            current = self._principal
            now = datetime.now(UTC)
            if current is None or (
                current.expires_at is not None and current.expires_at - now < REFRESH_BEFORE
            ):
                credentials = self._assume()
                current = lookup_access_key(self.context.data_dir, credentials["access_key"])
                if current is None:  # removed between issuing and reading: retry the attempt
                    raise ExportError(f"The session of role {self.job.role_arn} vanished; try again.")
                self._principal = current
            return current

    def _invoke(self, service: str, operation: str, params: dict[str, Any]) -> Any:
        return invoke(
            self.context,
            self.principal(),
            service,
            operation,
            params,
            region=self.job.region,
            # No on_behalf_of_service: the export writes with the role's own session (a service
            # role), for which AWS sends aws:ViaAWSService false and no aws:CalledVia.
            request=self._request,
            write_guard=self._write_guard,
        )

    def _s3(self, operation: str, **params: Any) -> Any:
        return self._invoke("s3", operation, {"Bucket": self.job.s3_bucket_name, **params})

    def _run(self, action: str, fn: Callable[[], Any]) -> Any:
        try:
            return fn()
        except (UploadStopped, StopExport):
            # The producer stopped feeding a streamed part, or the write was fenced off (the
            # attempt no longer holds its job): not refusals to classify.
            raise
        except Exception as exc:
            raise classify(exc, self.job, action) from exc

    # -- checks (see Checks.preflight) ----------------------------------------------------------

    def known_bucket_region(self) -> str | None:
        """The embedded S3 knows its buckets' regions without the role's say (None: no such
        bucket, which the first call as the role reports as S3 would)."""
        with self.context.db.read() as conn:
            try:
                return buckets.find(conn, self.job.s3_bucket_name).region
            except NoSuchBucket:
                return None

    def _policy_status(self) -> dict[str, Any]:
        return self._s3("GetBucketPolicyStatus")

    def _location(self) -> dict[str, Any]:
        return self._s3("GetBucketLocation")

    def _describe_key(self) -> dict[str, Any]:
        return self._invoke("kms", "DescribeKey", {"KeyId": self.job.kms_key_arn})

    # -- writes ---------------------------------------------------------------------------------

    def _sse(self) -> dict[str, str]:
        return {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": self.job.kms_key_arn}

    def create_upload(self, key: str) -> str:
        answer = self._run(
            "CreateMultipartUpload",
            lambda: self._s3("CreateMultipartUpload", Key=key, ContentType="application/zip", **self._sse()),
        )
        return str(answer["UploadId"])

    def _upload_part(self, key: str, upload_id: str, number: int, body: BufferPayload) -> str:
        answer = self._run(
            "UploadPart",
            lambda: self._s3("UploadPart", Key=key, UploadId=upload_id, PartNumber=number, Body=body),
        )
        return str(answer["ETag"])

    def upload_part(self, key: str, upload_id: str, number: int, data: bytes | bytearray) -> str:
        # No MD5 of the part: an SSE-KMS object's ETag is opaque on S3 too (see BufferPayload).
        return self._upload_part(key, upload_id, number, BufferPayload(data, md5=False))

    def stream_part(self, key: str, upload_id: str, number: int, frames: Frames) -> str:
        """UploadPart of a part the producer is still filling (:class:`PartStream`): the policy
        check and the data key now, then each chunk sealed and written as it is filled. A stop
        of the producer (:class:`UploadStopped` from ``frames``) leaves no file and no part row,
        and comes out as itself; refusals as for :meth:`upload_part`."""
        return self._upload_part(key, upload_id, number, StreamPayload(frames))

    def complete_upload(self, key: str, upload_id: str, etags: list[str]) -> None:
        parts = [{"PartNumber": n, "ETag": etag} for n, etag in enumerate(etags, start=1)]
        self._run(
            "CompleteMultipartUpload",
            lambda: self._s3(
                "CompleteMultipartUpload", Key=key, UploadId=upload_id, MultipartUpload={"Parts": parts}
            ),
        )

    def put_object(self, key: str, body: bytes, content_type: str) -> None:
        payload = BufferPayload(body)
        self._run(
            "PutObject",
            lambda: self._s3("PutObject", Key=key, Body=payload, ContentType=content_type, **self._sse()),
        )

    def _abort(self, key: str, upload_id: str) -> None:
        self._s3("AbortMultipartUpload", Key=key, UploadId=upload_id)

    def _delete(self, key: str) -> None:
        self._s3("DeleteObject", Key=key)
