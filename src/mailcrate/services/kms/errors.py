"""KMS's error types, with the messages the service itself uses."""

from __future__ import annotations

from mailcrate.protocol.errors import ServiceError


class NotFound(ServiceError):
    code = "NotFoundException"


class Disabled(ServiceError):
    code = "DisabledException"

    def __init__(self, key_arn: str) -> None:
        super().__init__(f"{key_arn} is disabled.")


class InvalidState(ServiceError):
    code = "KMSInvalidStateException"


class InvalidCiphertext(ServiceError):
    code = "InvalidCiphertextException"

    def __init__(self, message: str = "") -> None:
        super().__init__(message)


class IncorrectKey(ServiceError):
    code = "IncorrectKeyException"

    def __init__(self) -> None:
        super().__init__("The key ID in the request does not identify a CMK that can perform this operation.")


class InvalidKeyUsage(ServiceError):
    code = "InvalidKeyUsageException"


class AlreadyExists(ServiceError):
    code = "AlreadyExistsException"


class NotAuthorized(ServiceError):
    code = "NotAuthorizedException"


class InvalidArn(ServiceError):
    code = "InvalidArnException"


class MalformedPolicyDocument(ServiceError):
    code = "MalformedPolicyDocumentException"


class InvalidMarker(ServiceError):
    code = "InvalidMarkerException"


class InvalidAliasName(ServiceError):
    code = "InvalidAliasNameException"


class Unsupported(ServiceError):
    code = "UnsupportedOperationException"


class Validation(ServiceError):
    code = "ValidationException"


class LimitExceeded(ServiceError):
    code = "LimitExceededException"


class TagError(ServiceError):
    code = "TagException"
