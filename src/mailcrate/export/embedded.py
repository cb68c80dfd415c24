"""The embedded S3 as an export destination, in-process: the S3/KMS handlers, no HTTP.

The export worker shares the data directory (and database) with ``mailcrate serve``, so instead
of sending each part to its own server over loopback HTTP with boto3 (SigV4 payload SHA-256 in
the client, SHA-256 and MD5 again in the server, the event loop and a thread handoff per chunk),
it calls **the same handler functions** the server dispatches to
(:mod:`mailcrate.services.s3.multipart`, :mod:`~mailcrate.services.s3.objects`,
:mod:`~mailcrate.services.s3.bucket_ops`, KMS ``DescribeKey``) with a :class:`Call` whose principal
is the assumed-role session, looked up by its access key as the server looks up a signed
request's key (:func:`mailcrate.accounts.lookup_access_key`). So authorization (the role's
identity policies and the bucket policy: ``s3:PutObject``, ``s3:AbortMultipartUpload``,
``s3:GetBucketPolicyStatus``; ``kms:GenerateDataKey``/``kms:Decrypt`` with ``kms:ViaService`` and
the encryption context) and SSE-KMS have one code path; only authentication is left out, since
the worker holds the session's credentials itself. Requests look like the loopback ones did to
the policy engine: ``aws:SourceIp`` 127.0.0.1, ``aws:SecureTransport`` false.

What the server adds around a handler and is kept here: the generic ``kms:DescribeKey`` check
before DescribeKey (KMS handlers rely on it), and a fresh session before the old one expires
(boto3's RefreshableCredentials did that over HTTP). Failures come back as ``ServiceError``;
:func:`mailcrate.export.destination.classify` turns them into the same ErrorInfo as the
``ClientError`` of the HTTP path.

Part bodies are :class:`~mailcrate.services.s3.payload.BufferPayload` over the part buffer (no
copy, no hash), or for a part still being filled :class:`~mailcrate.services.s3.payload.StreamPayload`
(:meth:`EmbeddedDestination.stream_part`: sealed and written chunk by chunk meanwhile), with an opaque ETag: the object is SSE-KMS, whose ETags AWS documents as not
an MD5 of the data. The zip's SHA-384 for the export log is still computed by the uploader.
"""

from __future__ import annotations

import importlib
import threading
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

from mailcrate.accounts import Principal, lookup_access_key
from mailcrate.export.destination import ExportError, _Checks, classify, error_code, log
from mailcrate.export.uploader import Frames, UploadStopped
from mailcrate.jobs.records import ExportJob
from mailcrate.protocol.errors import ServiceError
from mailcrate.protocol.http import Headers, HttpRequest
from mailcrate.server.authorize import Authorizer
from mailcrate.services.base import Call
from mailcrate.services.iam.authz import IamPolicySource
from mailcrate.services.kms import handlers as kms_handlers
from mailcrate.services.s3 import bucket_ops, multipart, objects
from mailcrate.services.s3.payload import BufferPayload, StreamPayload
from mailcrate.services.s3.store import Store
from mailcrate.services.sts import sessions as _sessions  # noqa: F401 - the assumer's, imported ahead

__all__ = ["EmbeddedDestination", "HandlerRuntime"]

#: Assume the role again when the session has less than this left (a long export outlives it).
REFRESH_BEFORE = timedelta(minutes=5)

Assume = Callable[[], dict[str, Any]]  # -> {"access_key", "secret_key", "token", "expiry_time"}


class _Protocols(Mapping[str, Any]):
    """``runtime.services`` as :class:`Authorizer` reads it: only ``[service].protocol``'s
    access-denied code and status, and only when it refuses. The wire protocol classes are
    imported then, not with the worker (they are of no use to a call that succeeds)."""

    _CLASSES = {
        "s3": ("mailcrate.protocol.restxml", "RestXmlProtocol"),
        "kms": ("mailcrate.protocol.jsonproto", "JsonProtocol"),
    }

    def __getitem__(self, service: str) -> Any:
        module, name = self._CLASSES[service]
        return SimpleNamespace(protocol=getattr(importlib.import_module(module), name))

    def __iter__(self) -> Iterator[str]:
        return iter(self._CLASSES)

    def __len__(self) -> int:
        return len(self._CLASSES)


@dataclass
class HandlerRuntime:
    """The part of :class:`mailcrate.server.runtime.Runtime` the S3/KMS handlers use:
    ``data_dir``, ``settings`` and the ``authorizer`` (the server's own: identity policies through
    :class:`IamPolicySource`), plus ``services`` for the access-denied code each protocol
    answers with. No botocore service model is loaded."""

    data_dir: Any
    settings: Any = None
    authorizer: Authorizer = field(default_factory=lambda: Authorizer(policies=IamPolicySource()))
    services: Mapping[str, Any] = field(default_factory=_Protocols)


class EmbeddedDestination(_Checks):
    """The job's destination in this process's data directory, acting as the assumed role."""

    def __init__(self, job: ExportJob, data_dir: Any, assume: Assume) -> None:
        self.job = job
        self.data_dir = data_dir
        self._assume = assume
        self._runtime = HandlerRuntime(data_dir)
        self._store = Store(data_dir)
        self._lock = threading.Lock()
        self._principal: Principal | None = None
        self._request = HttpRequest("PUT", f"/{job.s3_bucket_name}", "", Headers())

    @classmethod
    def open(cls, job: ExportJob, *, data_dir: Any, assume: Assume) -> EmbeddedDestination:
        """Assume the job's role now (a refused trust policy fails here, as over HTTP)."""
        destination = cls(job, data_dir, assume)
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
                current = lookup_access_key(self.data_dir, credentials["access_key"])
                if current is None:  # removed between issuing and reading: retry the attempt
                    raise ExportError(f"The session of role {self.job.role_arn} vanished; try again.")
                self._principal = current
            return current

    def _call(self, service: str, operation: str, params: dict[str, Any]) -> Call:
        return Call(
            service,
            operation,
            params,
            self.principal(),
            self.job.region,
            str(uuid.uuid4()),
            self._request,
            self._runtime,  # type: ignore[arg-type]
        )

    def _s3(self, operation: str, handler: Callable[[Call, Store], dict[str, Any]], **params: Any) -> Any:
        return handler(
            self._call("s3", operation, {"Bucket": self.job.s3_bucket_name, **params}), self._store
        )

    def _run(self, action: str, fn: Callable[[], Any]) -> Any:
        try:
            return fn()
        except UploadStopped:
            raise  # the producer stopped feeding a streamed part: not a refusal to classify
        except Exception as exc:
            raise classify(exc, self.job, action) from exc

    # -- checks (see _Checks.preflight) ---------------------------------------------------------

    def _policy_status(self) -> dict[str, Any]:
        return self._s3("GetBucketPolicyStatus", bucket_ops.get_bucket_policy_status)

    def _location(self) -> dict[str, Any]:
        return self._s3("GetBucketLocation", bucket_ops.get_bucket_location)

    def _describe_key(self) -> dict[str, Any]:
        call = self._call("kms", "DescribeKey", {"KeyId": self.job.kms_key_arn})
        call.authorize("kms:DescribeKey", kms_handlers._resource(call))  # the server's generic check
        return kms_handlers.describe_key(call)

    # -- writes ---------------------------------------------------------------------------------

    def _sse(self) -> dict[str, str]:
        return {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": self.job.kms_key_arn}

    def create_upload(self, key: str) -> str:
        answer = self._run(
            "CreateMultipartUpload",
            lambda: self._s3(
                "CreateMultipartUpload",
                multipart.create,
                Key=key,
                ContentType="application/zip",
                **self._sse(),
            ),
        )
        return str(answer["UploadId"])

    def upload_part(self, key: str, upload_id: str, number: int, data: bytes | bytearray) -> str:
        body = BufferPayload(data, md5=False)  # SSE-KMS: an opaque ETag (see BufferPayload)
        answer = self._run(
            "UploadPart",
            lambda: self._s3(
                "UploadPart", multipart.upload_part, Key=key, UploadId=upload_id, PartNumber=number, Body=body
            ),
        )
        return str(answer["ETag"])

    def stream_part(self, key: str, upload_id: str, number: int, frames: Frames) -> str:
        """UploadPart of a part the producer is still filling (:class:`PartStream`): the policy
        check and the data key now, then each chunk sealed and written as it is filled. A stop
        of the producer (:class:`UploadStopped` from ``frames``) leaves no file and no part row,
        and comes out as itself; refusals as for :meth:`upload_part`."""
        body = StreamPayload(frames)
        answer = self._run(
            "UploadPart",
            lambda: self._s3(
                "UploadPart", multipart.upload_part, Key=key, UploadId=upload_id, PartNumber=number, Body=body
            ),
        )
        return str(answer["ETag"])

    def complete_upload(self, key: str, upload_id: str, etags: list[str]) -> None:
        parts = [{"PartNumber": n, "ETag": etag} for n, etag in enumerate(etags, start=1)]
        self._run(
            "CompleteMultipartUpload",
            lambda: self._s3(
                "CompleteMultipartUpload",
                multipart.complete,
                Key=key,
                UploadId=upload_id,
                MultipartUpload={"Parts": parts},
            ),
        )

    def abort_upload(self, key: str, upload_id: str) -> None:
        """Best effort: an upload already gone (completed, aborted) is fine."""
        try:
            self._s3("AbortMultipartUpload", multipart.abort, Key=key, UploadId=upload_id)
        except Exception as exc:
            if not (isinstance(exc, ServiceError) and error_code(exc) == "NoSuchUpload"):
                log.warning("job %s: aborting upload failed: %s", self.job.job_id, exc)

    def put_object(self, key: str, body: bytes, content_type: str) -> None:
        payload = BufferPayload(body)
        self._run(
            "PutObject",
            lambda: self._s3(
                "PutObject",
                objects.put_object,
                Key=key,
                Body=payload,
                ContentType=content_type,
                **self._sse(),
            ),
        )

    def delete_object(self, key: str) -> None:
        """Best effort (the documented role policy grants no s3:DeleteObject)."""
        try:
            self._s3("DeleteObject", objects.delete_object, Key=key)
        except Exception as exc:
            log.warning("job %s: could not remove %s after a failure: %s", self.job.job_id, key, exc)
