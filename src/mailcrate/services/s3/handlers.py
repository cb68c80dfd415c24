"""S3 API handlers (rest-xml): the operation table and the service's per-process state.

Each handler authorizes itself with the IAM action S3 defines for it (``s3:ListBucket`` for
ListObjectsV2, ``s3:PutObject`` for the multipart calls...) combined with the bucket policy, see
:func:`mailcrate.services.s3.buckets.authorize`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import fields
from datetime import timedelta
from typing import Any

from mailcrate.protocol.http import HttpRequest
from mailcrate.protocol.models import service_model
from mailcrate.protocol.restxml import RestXmlProtocol, address
from mailcrate.services.base import Call, Handler, ServiceSpec
from mailcrate.services.s3 import bucket_ops, copies, listing, multipart, objects, reads
from mailcrate.services.s3.payload import Payload
from mailcrate.services.s3.store import Store

SWEEP_SECONDS = 3600.0
DEFAULT_ABANDONED_UPLOAD_DAYS = 7.0

StoreHandler = Callable[[Call, Store], dict[str, Any]]

OPERATIONS: dict[str, StoreHandler] = {
    "CreateBucket": bucket_ops.create_bucket,
    "HeadBucket": bucket_ops.head_bucket,
    "GetBucketLocation": bucket_ops.get_bucket_location,
    "ListBuckets": bucket_ops.list_buckets,
    "DeleteBucket": bucket_ops.delete_bucket,
    "PutPublicAccessBlock": bucket_ops.put_public_access_block,
    "GetPublicAccessBlock": bucket_ops.get_public_access_block,
    "DeletePublicAccessBlock": bucket_ops.delete_public_access_block,
    "PutBucketPolicy": bucket_ops.put_bucket_policy,
    "GetBucketPolicy": bucket_ops.get_bucket_policy,
    "DeleteBucketPolicy": bucket_ops.delete_bucket_policy,
    "GetBucketPolicyStatus": bucket_ops.get_bucket_policy_status,
    "PutBucketEncryption": bucket_ops.put_bucket_encryption,
    "GetBucketEncryption": bucket_ops.get_bucket_encryption,
    "DeleteBucketEncryption": bucket_ops.delete_bucket_encryption,
    "PutObject": objects.put_object,
    "GetObject": reads.get_object,
    "HeadObject": reads.head_object,
    "DeleteObject": objects.delete_object,
    "DeleteObjects": objects.delete_objects,
    "CopyObject": copies.copy_object,
    "UploadPartCopy": copies.upload_part_copy,
    "ListObjectsV2": lambda call, store: listing.list_objects(call, v2=True),
    "ListObjects": lambda call, store: listing.list_objects(call, v2=False),
    "ListObjectVersions": lambda call, store: listing.list_object_versions(call),
    "CreateMultipartUpload": multipart.create,
    "UploadPart": multipart.upload_part,
    "CompleteMultipartUpload": multipart.complete,
    "AbortMultipartUpload": multipart.abort,
    "ListParts": multipart.list_parts,
    "ListMultipartUploads": multipart.list_uploads,
}

# The IAM action each operation needs, for the server's generic pre-check.
IAM_ACTIONS = {
    "ListObjectsV2": "s3:ListBucket",
    "ListObjects": "s3:ListBucket",
    "ListObjectVersions": "s3:ListBucketVersions",
    "HeadBucket": "s3:ListBucket",
    "HeadObject": "s3:GetObject",
    "ListBuckets": "s3:ListAllMyBuckets",
    "CreateMultipartUpload": "s3:PutObject",
    "UploadPart": "s3:PutObject",
    "CompleteMultipartUpload": "s3:PutObject",
    "CopyObject": "s3:PutObject",
    "UploadPartCopy": "s3:PutObject",
    "DeleteObjects": "s3:DeleteObject",
    "ListParts": "s3:ListMultipartUploadParts",
    "ListMultipartUploads": "s3:ListBucketMultipartUploads",
    "PutPublicAccessBlock": "s3:PutBucketPublicAccessBlock",
    "GetPublicAccessBlock": "s3:GetBucketPublicAccessBlock",
    "DeletePublicAccessBlock": "s3:PutBucketPublicAccessBlock",
    "PutBucketEncryption": "s3:PutEncryptionConfiguration",
    "GetBucketEncryption": "s3:GetEncryptionConfiguration",
    "DeleteBucketEncryption": "s3:PutEncryptionConfiguration",
}


class S3Service:
    """Per-process state of the S3 service: the object store and the last clean-up time."""

    def __init__(self) -> None:
        self._store: Store | None = None
        self._lock = threading.Lock()
        self._last_sweep = 0.0

    def store(self, call: Call) -> Store:
        with self._lock:
            if self._store is None or self._store.data_dir is not call.context.data_dir:
                self._store = Store(call.context.data_dir)
            store = self._store
            due = time.monotonic() - self._last_sweep > SWEEP_SECONDS
            if due:
                self._last_sweep = time.monotonic()
        if due:
            days = float(call.context.setting("s3_abandoned_upload_days", DEFAULT_ABANDONED_UPLOAD_DAYS))
            multipart.abort_stale(store, timedelta(days=days))
            store.sweep()
        return store

    def handler(self, operation: StoreHandler) -> Handler:
        def handle(call: Call) -> dict[str, Any]:
            return operation(call, self.store(call))

        return handle


def _payload(request: HttpRequest) -> Payload:
    """The body of an S3 request; CompleteMultipartUpload's (POST ?uploadId) checksum headers
    are the object's composite checksum, checked by the handler, not the XML body's."""
    if request.method == "POST" and "uploadId" in request.query:
        return Payload(request, body_checksums=False)
    return Payload(request)


def _resource(call: Call) -> str:
    where = address(call.request)
    if where.bucket is None:
        return "*"
    if where.key is not None:
        return f"arn:aws:s3:::{where.bucket}/{where.key}"
    return f"arn:aws:s3:::{where.bucket}"


def _action(call: Call) -> str | None:
    """For a server whose ServiceSpec has ``action_for``: S3 handlers authorize themselves
    (identity *and* bucket policy, with S3's action names), so the generic pre-check is skipped."""
    return None


def spec() -> ServiceSpec:
    service = S3Service()
    hooks: dict[str, Any] = {}
    if "action_for" in {f.name for f in fields(ServiceSpec)}:
        hooks["action_for"] = _action
    return ServiceSpec(
        name="s3",
        model=service_model("s3"),
        protocol=RestXmlProtocol(payload_factory=_payload),
        handlers={name: service.handler(op) for name, op in OPERATIONS.items()},
        validation_error_code="InvalidArgument",
        resource_for=_resource,
        **hooks,
    )
