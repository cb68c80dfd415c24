"""CloudTrail API (json protocol, ``CloudTrail_20131101``): LookupEvents over the audit trail.

Rules as AWS documents them (https://docs.aws.amazon.com/awscloudtrail/latest/APIReference/API_LookupEvents.html):
at most one lookup attribute; ReadOnly takes ``true`` or ``false``; StartTime after EndTime is
InvalidTimeRangeException; MaxResults defaults to 50; events come newest first. A caller sees
only its own account's events, and needs ``cloudtrail:LookupEvents``.
"""

from __future__ import annotations

from typing import Any

from mailcrate.protocol.jsonproto import JsonProtocol
from mailcrate.protocol.models import service_model
from mailcrate.services.base import Call, Handler, ServiceSpec
from mailcrate.services.cloudtrail import errors, lookup

DEFAULT_MAX_RESULTS = 50


def lookup_events(call: Call) -> dict[str, Any]:
    p = call.params
    attributes = p.get("LookupAttributes") or []
    if len(attributes) > 1:
        raise errors.InvalidLookupAttributes("You cannot specify more than one lookup attribute.")
    attribute = None
    if attributes:
        key, value = attributes[0]["AttributeKey"], attributes[0]["AttributeValue"]
        if key == "ReadOnly" and value not in ("true", "false"):
            raise errors.InvalidLookupAttributes("The ReadOnly attribute value must be true or false.")
        attribute = (key, value)
    start, end = p.get("StartTime"), p.get("EndTime")
    if start is not None and end is not None and start > end:
        raise errors.InvalidTimeRange()
    if p.get("EventCategory") == "insight":  # mailcrate has no Insights events
        return {"Events": []}
    query = lookup.Query(call.account_id, attribute, start, end)
    with call.context.db.read() as conn:
        try:
            events, token = lookup.page(
                conn, query, p.get("MaxResults", DEFAULT_MAX_RESULTS), p.get("NextToken")
            )
        except lookup.InvalidToken:
            raise errors.InvalidNextToken() from None
    out: dict[str, Any] = {"Events": events}
    if token is not None:
        out["NextToken"] = token
    return out


HANDLERS: dict[str, Handler] = {"LookupEvents": lookup_events}


def spec() -> ServiceSpec:
    return ServiceSpec(
        name="cloudtrail",
        model=service_model("cloudtrail"),
        protocol=JsonProtocol(),
        handlers=HANDLERS,
    )
