"""ACLs, answered as AWS answers them for a bucket whose Object Ownership is ``BucketOwnerEnforced``
(every new bucket's since April 2023): disabled. mailcrate implements no ACLs, so it must not take
one silently either; a ``public-read`` that was accepted and ignored would tell its sender an
object is public when it is not.

"All S3 PUT requests must either specify the bucket-owner-full-control canned ACL or not specify
an ACL, or these requests will fail" with 400 AccessControlListNotSupported, and a CreateBucket
whose ACL grants anyone but the owner fails with 400 InvalidBucketAclWithObjectOwnership
(https://docs.aws.amazon.com/AmazonS3/latest/userguide/object-ownership-error-responses.html).
Access is granted with bucket policies instead.
"""

from __future__ import annotations

from typing import Any

from mailcrate.protocol.errors import ServiceError

_GRANTS = ("GrantFullControl", "GrantRead", "GrantReadACP", "GrantWrite", "GrantWriteACP")


class AccessControlListNotSupported(ServiceError):
    code = "AccessControlListNotSupported"
    status = 400


class InvalidBucketAclWithObjectOwnership(ServiceError):
    code = "InvalidBucketAclWithObjectOwnership"
    status = 400


def check_object_acl(params: dict[str, Any]) -> None:
    """PutObject, CopyObject, CreateMultipartUpload: no ACL, or the bucket owner's full control."""
    acl = params.get("ACL")
    if (acl is not None and acl != "bucket-owner-full-control") or any(params.get(g) for g in _GRANTS):
        raise AccessControlListNotSupported("The bucket does not allow ACLs")


def check_bucket_acl(params: dict[str, Any]) -> None:
    """CreateBucket: ACLs disabled (``BucketOwnerEnforced``), so the ACL may only be ``private``."""
    ownership = params.get("ObjectOwnership")
    if ownership not in (None, "BucketOwnerEnforced"):
        raise ServiceError(
            f"ObjectOwnership {ownership} (ACLs enabled) is not implemented; buckets are BucketOwnerEnforced",
            code="NotImplemented",
            status=501,
        )
    if params.get("ACL") not in (None, "private") or any(params.get(g) for g in _GRANTS):
        raise InvalidBucketAclWithObjectOwnership(
            "Bucket cannot have ACLs set with ObjectOwnership's BucketOwnerEnforced setting"
        )
