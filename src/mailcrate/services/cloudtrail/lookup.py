"""Reading the audit trail back: CloudTrail's ``LookupEvents`` filters, newest first, in pages,
and each event shaped as CloudTrail shapes it (the ``CloudTrailEvent`` JSON string).

Filters are CloudTrail's: one lookup attribute (EventId, EventName, ReadOnly, Username,
ResourceType, ResourceName, EventSource, AccessKeyId), a time range, and always the caller's
account: no account sees another's events.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, and_, exists, or_, select

from mailcrate.audit.jobs import EXPORT_SERVICE
from mailcrate.services.pagination import decode_token, encode_token
from mailcrate.storage.db import as_utc
from mailcrate.storage.tables_audit import audit_event_resources as res
from mailcrate.storage.tables_audit import audit_events as ev

ATTRIBUTES = (
    "EventId",
    "EventName",
    "ReadOnly",
    "Username",
    "ResourceType",
    "ResourceName",
    "EventSource",
    "AccessKeyId",
)


class InvalidToken(ValueError):
    """A NextToken this lookup did not issue (other filters, other account, or edited)."""


@dataclass(frozen=True, slots=True)
class Query:
    account_id: str | None  # None: every account (the operator's `mailcrate audit --data-dir`)
    attribute: tuple[str, str] | None = None
    start: datetime | None = None
    end: datetime | None = None


def _attribute_filter(key: str, value: str) -> Any:
    if key == "EventId":
        return ev.c.event_id == value
    if key == "EventName":
        return ev.c.event_name == value
    if key == "ReadOnly":
        return ev.c.read_only.is_(value.lower() == "true")
    if key == "Username":
        return ev.c.username == value
    if key == "EventSource":
        return ev.c.event_source == value
    if key == "AccessKeyId":
        return ev.c.access_key_id == value
    # An event's first two resources are on its row, the rest (and all of an event written
    # before migration 0013) rows of audit_event_resources.
    if key == "ResourceType":
        inline, column = (ev.c.resource1_type, ev.c.resource2_type), res.c.resource_type
    else:
        inline, column = (ev.c.resource1_name, ev.c.resource2_name), res.c.resource_name
    return or_(
        *(c == value for c in inline), exists().where(res.c.event_id == ev.c.event_id, column == value)
    )


def _scope(query: Query) -> str:
    return "cloudtrail:" + json.dumps(
        [query.account_id, query.attribute, str(query.start), str(query.end)], separators=(",", ":")
    )


def page(
    conn: Connection, query: Query, limit: int, token: str | None
) -> tuple[list[dict[str, Any]], str | None]:
    """One page of events (newest first) as LookupEvents' ``Event`` values, and the next token."""
    where: list[Any] = []
    if query.account_id is not None:
        where.append(ev.c.account_id == query.account_id)
    if query.attribute is not None:
        where.append(_attribute_filter(*query.attribute))
    if query.start is not None:
        where.append(ev.c.event_time >= query.start)
    if query.end is not None:
        where.append(ev.c.event_time <= query.end)
    scope = _scope(query)
    if token is not None:
        key = decode_token(scope, token)
        if key is None or len(key) != 2 or not all(isinstance(k, str) for k in key):
            raise InvalidToken(token)
        try:
            after = datetime.fromisoformat(key[0])
        except ValueError:
            raise InvalidToken(token) from None
        where.append(or_(ev.c.event_time < after, and_(ev.c.event_time == after, ev.c.event_id < key[1])))
    rows = conn.execute(
        select(ev).where(*where).order_by(ev.c.event_time.desc(), ev.c.event_id.desc()).limit(limit + 1)
    ).all()
    next_token = None
    if len(rows) > limit:
        last = rows[limit - 1]
        next_token = encode_token(scope, [last.event_time.isoformat(), last.event_id])
    return [shape_event(row) for row in rows[:limit]], next_token


def _user_identity(row: Any) -> dict[str, Any]:
    if row.identity_type == "AWSService":
        return {"type": "AWSService", "invokedBy": row.principal_arn}
    if row.identity_type == "AWSAccount":  # an unsigned S3 request, as CloudTrail shows one
        return {"type": "AWSAccount", "principalId": "", "accountId": "anonymous"}
    identity: dict[str, Any] = {
        "type": row.identity_type,
        "principalId": row.access_key_id if row.identity_type == "Root" else row.username,
        "arn": row.principal_arn,
        "accountId": row.account_id,
        "accessKeyId": row.access_key_id,
    }
    if row.identity_type == "IAMUser":
        identity["userName"] = row.username
    return identity


def cloudtrail_record(row: Any) -> dict[str, Any]:
    """The event as CloudTrail records it (the JSON in ``CloudTrailEvent``)."""
    resources = json.loads(row.resources)
    when = as_utc(row.event_time)
    assert when is not None
    record: dict[str, Any] = {
        "eventVersion": "1.09",
        "userIdentity": _user_identity(row),
        "eventTime": when.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "eventSource": row.event_source,
        "eventName": row.event_name,
        "awsRegion": row.region,
        "sourceIPAddress": row.source_ip or EXPORT_SERVICE,
        "userAgent": row.user_agent or EXPORT_SERVICE,
        "requestParameters": json.loads(row.request_parameters) if row.request_parameters else None,
        "responseElements": json.loads(row.response_elements) if row.response_elements else None,
        "requestID": row.request_id,
        "eventID": row.event_id,
        "readOnly": bool(row.read_only),
        "resources": [
            {"ARN" if r["name"].startswith("arn:") else "resourceName": r["name"], "type": r["type"]}
            | {"accountId": row.account_id}
            for r in resources
        ],
        "eventType": row.event_type,
        "managementEvent": row.event_source != "s3.amazonaws.com",
        "recipientAccountId": row.account_id,
        "eventCategory": "Management" if row.event_source != "s3.amazonaws.com" else "Data",
    }
    if row.error_code:
        record["errorCode"] = row.error_code
        record["errorMessage"] = row.error_message
    return record


def shape_event(row: Any) -> dict[str, Any]:
    """LookupEvents' ``Event``: the indexed fields and the record as a JSON string."""
    out: dict[str, Any] = {
        "EventId": row.event_id,
        "EventName": row.event_name,
        "ReadOnly": "true" if row.read_only else "false",
        "EventTime": as_utc(row.event_time),
        "EventSource": row.event_source,
        "Resources": [
            {"ResourceType": r["type"], "ResourceName": r["name"]} for r in json.loads(row.resources)
        ],
        "CloudTrailEvent": json.dumps(cloudtrail_record(row), separators=(",", ":")),
    }
    if row.access_key_id:
        out["AccessKeyId"] = row.access_key_id
    if row.username or row.identity_type == "AWSService":
        out["Username"] = row.username or EXPORT_SERVICE
    return out
