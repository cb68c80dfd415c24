"""WorkMail's error types, with the messages the service itself uses."""

from __future__ import annotations

from mailcrate.protocol.errors import ServiceError


class InvalidParameter(ServiceError):
    code = "InvalidParameterException"


class OrganizationNotFound(ServiceError):
    code = "OrganizationNotFoundException"

    def __init__(self, organization_id: str) -> None:
        super().__init__(
            f"An operation received a valid organization identifier ({organization_id}) that either "
            "doesn't belong or exist in the system."
        )


class OrganizationState(ServiceError):
    code = "OrganizationStateException"

    def __init__(self, detail: str = "") -> None:
        super().__init__(
            "The organization must have a valid state to perform certain operations on the organization "
            "or its members." + (f" {detail}" if detail else "")
        )


class EntityNotFound(ServiceError):
    code = "EntityNotFoundException"

    def __init__(self, entity: str) -> None:
        super().__init__(
            f"The identifier supplied for the user, group, or resource ({entity}) does not exist in your organization."
        )


class EntityState(ServiceError):
    code = "EntityStateException"

    def __init__(self, detail: str) -> None:
        super().__init__(
            "You are performing an operation on a user, group, or resource that isn't in the expected state. "
            + detail
        )


class EntityAlreadyRegistered(ServiceError):
    code = "EntityAlreadyRegisteredException"


class NameAvailability(ServiceError):
    code = "NameAvailabilityException"


class EmailAddressInUse(ServiceError):
    code = "EmailAddressInUseException"


class MailDomainNotFound(ServiceError):
    code = "MailDomainNotFoundException"


class InvalidPassword(ServiceError):
    code = "InvalidPasswordException"


class LimitExceeded(ServiceError):
    code = "LimitExceededException"


class MailboxOnAnotherNode(ServiceError):
    """Mail for an embedded mailbox would be written on a node whose data directory does not
    hold it (each node has its own): the mail would be split, and an export would miss part."""

    code = "EntityStateException"
