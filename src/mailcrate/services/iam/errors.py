"""IAM's error types, with the codes, statuses and messages IAM itself uses."""

from __future__ import annotations

from mailcrate.protocol.errors import ServiceError


class NoSuchEntity(ServiceError):
    code = "NoSuchEntity"
    status = 404


class EntityAlreadyExists(ServiceError):
    code = "EntityAlreadyExists"
    status = 409


class DeleteConflict(ServiceError):
    code = "DeleteConflict"
    status = 409


class LimitExceeded(ServiceError):
    code = "LimitExceeded"
    status = 409


class MalformedPolicyDocument(ServiceError):
    code = "MalformedPolicyDocument"
    status = 400


class InvalidInput(ServiceError):
    code = "InvalidInput"
    status = 400


class IamValidationError(ServiceError):
    code = "ValidationError"
    status = 400


class AccessDenied(ServiceError):
    code = "AccessDenied"
    status = 403
