"""One audit event and its durable write.

An event is written with the caller's connection, so a job event commits or rolls back with the
state change it describes. Nothing here takes a secret: the identity is the access key *id* and
the ARN; request parameters are scrubbed by :mod:`mailcrate.audit.requests` before they get here.
"""

from __future__ import annotations

import json
import random
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, delete, select

from mailcrate.storage.db import Database, utcnow
from mailcrate.storage.multirow import MultiRowInsert
from mailcrate.storage.tables_audit import audit_event_resources, audit_events

#: Longest request-parameters JSON kept per event: enough for any WorkMail/IAM/KMS call (a policy
#: document is at most 10 KB); a larger one is cut and marked, never refused.
MAX_PARAMETERS_CHARS = 16_384
_MAX_USER_AGENT = 1024
_MAX_MESSAGE = 1024

#: Where each service's events come from, as CloudTrail names them.
EVENT_SOURCES = {
    "workmail": "workmail.amazonaws.com",
    "iam": "iam.amazonaws.com",
    "sts": "sts.amazonaws.com",
    "kms": "kms.amazonaws.com",
    "s3": "s3.amazonaws.com",
    "cloudtrail": "cloudtrail.amazonaws.com",
}


@dataclass(frozen=True, slots=True)
class Identity:
    """CloudTrail's ``userIdentity``: who acted (never with a secret)."""

    type: str  # Root | IAMUser | AssumedRole | AWSService
    arn: str | None = None
    username: str | None = None
    access_key_id: str | None = None
    invoked_by: str | None = None  # for AWSService: the service principal


@dataclass(frozen=True, slots=True)
class Resource:
    type: str  # AWS::WorkMail::Organization, AWS::S3::Object, ...
    name: str


@dataclass(frozen=True, slots=True)
class AuditEvent:
    account_id: str
    region: str
    service: str  # signing name: workmail, s3, ...
    event_name: str
    identity: Identity
    event_type: str = "AwsApiCall"
    read_only: bool = False
    request_id: str | None = None
    source_ip: str | None = None
    user_agent: str | None = None
    error_code: str | None = None
    error_message: str | None = None
    request_parameters: dict[str, Any] | None = None
    response_elements: dict[str, Any] | None = None
    resources: tuple[Resource, ...] = ()
    event_time: datetime = field(default_factory=utcnow)
    event_id: str = field(default_factory=lambda: _event_id())


def _event_id() -> str:
    """A time-ordered UUID (version 7: milliseconds since the epoch, then 74 random bits) from
    the process's Mersenne Twister (seeded from the OS at start, and again after a fork).

    Time-ordered: the event id is the key of both audit tables, and random (version 4) keys
    land each insert on a different page of those B-trees, so every batch's commit rewrote
    ~2 pages per event, more as the table grew: 87 -> 108 us of CPU per event from 15,000 to
    60,000 events, against a flat 61-64 us with these (SQLite, batches of 30). Not uuid4():
    an event id must be unique, not secret, and ``os.urandom`` cost ~80 us a call on this VM."""
    bits = random.getrandbits(74)
    value = (time.time_ns() // 1_000_000) << 80 | 0x7 << 76 | (bits >> 62) << 64 | 0b10 << 62
    h = f"{value | (bits & ((1 << 62) - 1)):032x}"  # str(uuid.UUID(int=...)) without its checks
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def _json(value: dict[str, Any] | None, limit: int) -> str | None:
    if value is None:
        return None
    text = json.dumps(value, separators=(",", ":"), default=str, ensure_ascii=False)
    if len(text) > limit:
        text = json.dumps({"truncated": True, "prefix": text[: limit - 64]}, ensure_ascii=False)
    return text


def _clip(value: str | None, limit: int) -> str | None:
    return None if value is None else value[:limit]


#: The columns an event's row fills, in the order :func:`_event_values` gives them.
_EVENT_COLUMNS = (
    "event_id", "event_time", "account_id", "region", "event_source", "event_name", "event_type",
    "read_only", "request_id", "identity_type", "principal_arn", "username", "access_key_id",
    "source_ip", "user_agent", "error_code", "error_message", "request_parameters",
    "response_elements", "resources",
)  # fmt: skip
_RESOURCE_COLUMNS = ("event_id", "resource_type", "resource_name", "account_id", "event_time")


def _event_values(event: AuditEvent, resources: list[Resource]) -> tuple[Any, ...]:
    """The row of ``event`` as a tuple in :data:`_EVENT_COLUMNS`' order."""
    identity = event.identity
    return (
        event.event_id,
        event.event_time,
        event.account_id,
        event.region,
        EVENT_SOURCES.get(event.service) or f"{event.service}.amazonaws.com",
        event.event_name,
        event.event_type,
        event.read_only,
        event.request_id,
        identity.type,
        identity.arn or identity.invoked_by,
        identity.username,
        identity.access_key_id,
        event.source_ip,
        _clip(event.user_agent, _MAX_USER_AGENT),
        event.error_code,
        _clip(event.error_message, _MAX_MESSAGE),
        _json(event.request_parameters, MAX_PARAMETERS_CHARS),
        _json(event.response_elements, MAX_PARAMETERS_CHARS),
        json.dumps([{"type": r.type, "name": r.name} for r in resources]),
    )


def record_many(conn: Connection, events: list[AuditEvent]) -> None:
    """Write ``events`` in the caller's transaction (they commit with the change they describe),
    a few multi-row statements whatever their number."""
    insert_rows(conn, rows_of(events))


Rows = tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]


def rows_of(events: list[AuditEvent]) -> Rows:
    """The rows of ``events``: the audit trail's writer builds them before it takes the write lock
    (the JSON of each event's parameters and resources), so Start waits behind less of a batch."""
    rows: list[tuple[Any, ...]] = []
    resource_rows: list[tuple[Any, ...]] = []
    for event in events:
        resources = list(dict.fromkeys(event.resources))  # the same resource named twice is one row
        rows.append(_event_values(event, resources))
        resource_rows += [
            (event.event_id, r.type, r.name, event.account_id, event.event_time) for r in resources
        ]
    return rows, resource_rows


_insert_events = MultiRowInsert(audit_events, _EVENT_COLUMNS)
_insert_resources = MultiRowInsert(audit_event_resources, _RESOURCE_COLUMNS)


def insert_rows(conn: Connection, built: Rows) -> None:
    """Insert what :func:`rows_of` built, in the caller's transaction."""
    rows, resource_rows = built
    _insert_events(conn, rows)
    _insert_resources(conn, resource_rows)


def record(conn: Connection, event: AuditEvent) -> None:
    """Write one event in the caller's transaction."""
    record_many(conn, [event])


def prune(db: Database, retention: timedelta, *, now: datetime | None = None, batch: int = 5000) -> int:
    """Delete events older than ``retention``, a batch per transaction (a long delete would hold
    SQLite's write lock against every API call). Returns how many were deleted."""
    cutoff = (now or utcnow()) - retention
    deleted = 0
    while True:
        with db.begin() as conn:
            ids = list(
                conn.execute(
                    select(audit_events.c.event_id).where(audit_events.c.event_time < cutoff).limit(batch)
                ).scalars()
            )
            if not ids:
                return deleted
            # Resources explicitly: SQLite enforces ON DELETE CASCADE only with foreign_keys on,
            # which a connection made outside mailcrate may not have.
            conn.execute(delete(audit_event_resources).where(audit_event_resources.c.event_id.in_(ids)))
            conn.execute(delete(audit_events).where(audit_events.c.event_id.in_(ids)))
            deleted += len(ids)
