"""CloudTrail's error types for LookupEvents, with AWS's messages."""

from __future__ import annotations

from mailcrate.protocol.errors import ServiceError


class InvalidLookupAttributes(ServiceError):
    code = "InvalidLookupAttributesException"


class InvalidTimeRange(ServiceError):
    code = "InvalidTimeRangeException"

    def __init__(self) -> None:
        super().__init__(
            "Occurs if the timestamp values are not valid. Either the start time occurs after the end "
            "time, or the time range is outside the range of possible values."
        )


class InvalidNextToken(ServiceError):
    code = "InvalidNextTokenException"

    def __init__(self) -> None:
        super().__init__("Invalid NextToken.")
