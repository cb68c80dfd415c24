"""S3's error types, with the codes, statuses and extra fields S3 itself sends."""

from __future__ import annotations

from mailcrate.protocol.errors import ServiceError


class NoSuchBucket(ServiceError):
    code = "NoSuchBucket"
    status = 404

    def __init__(self, bucket: str) -> None:
        super().__init__("The specified bucket does not exist", BucketName=bucket)


class NoSuchKey(ServiceError):
    code = "NoSuchKey"
    status = 404

    def __init__(self, key: str) -> None:
        super().__init__("The specified key does not exist.", Key=key)


class NoSuchUpload(ServiceError):
    code = "NoSuchUpload"
    status = 404

    def __init__(self, upload_id: str) -> None:
        super().__init__(
            "The specified upload does not exist. The upload ID may be invalid, or the upload may "
            "have been aborted or completed.",
            UploadId=upload_id,
        )


class NoSuchBucketPolicy(ServiceError):
    code = "NoSuchBucketPolicy"
    status = 404


class NoSuchPublicAccessBlock(ServiceError):
    code = "NoSuchPublicAccessBlockConfiguration"
    status = 404


class NoEncryptionConfig(ServiceError):
    code = "ServerSideEncryptionConfigurationNotFoundError"
    status = 404


class BucketAlreadyExists(ServiceError):
    code = "BucketAlreadyExists"
    status = 409


class BucketAlreadyOwnedByYou(ServiceError):
    code = "BucketAlreadyOwnedByYou"
    status = 409


class BucketNotEmpty(ServiceError):
    code = "BucketNotEmpty"
    status = 409


class InvalidBucketName(ServiceError):
    code = "InvalidBucketName"


class KeyTooLong(ServiceError):
    code = "KeyTooLongError"


class InvalidArgument(ServiceError):
    code = "InvalidArgument"


class InvalidRequest(ServiceError):
    code = "InvalidRequest"


class InvalidRange(ServiceError):
    code = "InvalidRange"
    status = 416


class InvalidPart(ServiceError):
    code = "InvalidPart"


class InvalidPartOrder(ServiceError):
    code = "InvalidPartOrder"


class EntityTooSmall(ServiceError):
    code = "EntityTooSmall"


class MetadataTooLarge(ServiceError):
    code = "MetadataTooLarge"

    def __init__(self, size: int, limit: int) -> None:
        super().__init__(
            "Your metadata headers exceed the maximum allowed metadata size.", Size=size, MaxSizeAllowed=limit
        )


class MalformedPolicy(ServiceError):
    code = "MalformedPolicy"


class IllegalLocationConstraint(ServiceError):
    code = "IllegalLocationConstraintException"


class PreconditionFailed(ServiceError):
    code = "PreconditionFailed"
    status = 412


class AccessDenied(ServiceError):
    code = "AccessDenied"
    status = 403


class InternalError(ServiceError):
    code = "InternalError"
    status = 500
    sender_fault = False


def from_kms(error: ServiceError) -> ServiceError:
    """A KMS failure as S3 reports it: ``KMS.<Code>``, status 400 (AccessDenied stays 403)."""
    if error.code in ("AccessDenied", "AccessDeniedException"):
        return AccessDenied(error.message)
    return ServiceError(error.message, code=f"KMS.{error.code}", status=400)
