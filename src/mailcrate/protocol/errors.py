"""Typed service errors: raised by handlers, turned into wire errors in one place.

A handler raises a subclass of :class:`ServiceError` naming the AWS error code; the protocol's
serializer (json, query, rest-xml) renders it in that protocol's shape. Anything else escaping a
handler is a bug and becomes a 500 ``InternalFailure`` without internals in the body.
"""

from __future__ import annotations

from typing import Any, ClassVar


class ServiceError(Exception):
    """An error the client caused or should see, with the AWS code and HTTP status to answer."""

    code: ClassVar[str] = "InvalidRequest"
    status: ClassVar[int] = 400
    sender_fault: ClassVar[bool] = True

    def __init__(self, message: str, *, code: str | None = None, status: int | None = None, **fields: Any):
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code  # type: ignore[misc]
        if status is not None:
            self.status = status  # type: ignore[misc]
        self.fields = fields  # extra members of the error shape (e.g. S3's BucketName)


class ValidationError(ServiceError):
    """Input broke a constraint of the service model; each service names its own code."""

    code = "ValidationException"

    @classmethod
    def from_problems(cls, problems: list[str], code: str = "ValidationException") -> ValidationError:
        count = len(problems)
        noun = "error" if count == 1 else "errors"
        return cls(f"{count} validation {noun} detected: " + "; ".join(problems), code=code)


class SerializationError(ServiceError):
    """The body is not a well-formed document of the protocol (bad JSON, wrong member types)."""

    code = "SerializationException"


class UnknownOperationError(ServiceError):
    code = "UnknownOperationException"


class AccessDeniedError(ServiceError):
    code = "AccessDeniedException"


class AuthError(ServiceError):
    """Authentication failed. ``kind`` is protocol-neutral; each protocol maps it to its code."""

    status = 403

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


class InternalFailure(ServiceError):
    code = "InternalFailure"
    status = 500
    sender_fault = False


class ServiceUnavailable(ServiceError):
    """A dependency of the server is down or full (the database, the data directory's disk):
    nothing was changed, and the same request may succeed later. Answered 503 with
    ``Retry-After`` in the protocol's own error shape (AWS's clients retry it as throttling)."""

    code = "ServiceUnavailable"
    status = 503
    sender_fault = False

    def __init__(self, message: str, *, retry_after: int = 5) -> None:
        super().__init__(message)
        self.retry_after = retry_after
