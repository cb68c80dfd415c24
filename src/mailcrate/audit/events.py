"""One audit event and its durable write.

An event is written with the caller's connection, so a job event commits or rolls back with the
state change it describes. Nothing here takes a secret: the identity is the access key *id* and
the ARN; request parameters are scrubbed by :mod:`mailcrate.audit.requests` before they get here.
"""

from __future__ import annotations

import json
import json.encoder
import random
import time
from collections.abc import Callable
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
    event_id: str = field(default_factory=lambda: new_event_id())


def new_event_id() -> str:
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


def _compact_encoder() -> Callable[[Any], str]:
    """Compact JSON (``default=str``, non-ASCII kept), from one encoder built once.

    ``json.dumps`` with options builds a JSONEncoder per call, and ``JSONEncoder.encode`` builds
    its C encoder per call: for a call's few members each cost as much as the encoding (1.5 us
    against 0.7 us for the C encoder kept here). Its signature is CPython's own, so it is used
    only if it gives what the public encoder gives. No cycle check: events are built from parsed
    requests, which have no cycles."""
    public = json.JSONEncoder(separators=(",", ":"), default=str, ensure_ascii=False)
    try:
        c_encoder = json.encoder.c_make_encoder(  # type: ignore[attr-defined]
            None, public.default, json.encoder.encode_basestring, None, ":", ",", False, False, True
        )

        def encode(value: Any) -> str:
            return "".join(c_encoder(value, 0))

        sample = {"a": ["\u00e9\n", 1, 2.5, None, True, {"b": datetime(2026, 1, 2)}]}
        if encode(sample) == public.encode(sample):
            return encode
    except Exception:  # not CPython's C accelerator, or another signature
        pass
    return public.encode


_encode = _compact_encoder()


def _json(value: dict[str, Any] | None, limit: int) -> str | None:
    if value is None:
        return None
    text = _encode(value)
    if len(text) > limit:
        text = json.dumps({"truncated": True, "prefix": text[: limit - 64]}, ensure_ascii=False)
    return text


def _clip(value: str | None, limit: int) -> str | None:
    return None if value is None else value[:limit]


#: The resources column of recent resource lists: a key's or a bucket's calls name the same few
#: resources over and over. Bounded: emptied when full.
_resources_json: dict[tuple[tuple[str, str], ...], str] = {}


def _resources_text(resources: tuple[tuple[str, str], ...]) -> str:
    text = _resources_json.get(resources)
    if text is None:
        if len(_resources_json) >= 1024:
            _resources_json.clear()
        text = _resources_json[resources] = json.dumps([{"type": t, "name": n} for t, n in resources])
    return text


#: The columns an event's row fills, in the order :func:`event_row` gives them.
_EVENT_COLUMNS = (
    "event_id", "event_time", "account_id", "region", "event_source", "event_name", "event_type",
    "read_only", "request_id", "identity_type", "principal_arn", "username", "access_key_id",
    "source_ip", "user_agent", "error_code", "error_message", "request_parameters",
    "response_elements", "resources", "resource1_type", "resource1_name", "resource2_type",
    "resource2_name",
)  # fmt: skip
_RESOURCE_COLUMNS = ("event_id", "resource_type", "resource_name", "account_id", "event_time")

#: One event as the rows the writer inserts: its ``audit_events`` row (in :data:`_EVENT_COLUMNS`'
#: order, its first two resources included) and its ``audit_event_resources`` rows (the rest).
EventRows = tuple[tuple[Any, ...], list[tuple[Any, ...]]]
_NO_RESOURCE = (None, None)
#: userIdentity's columns: identity_type, principal_arn, username, access_key_id.
Who = tuple[str, str | None, str | None, str | None]


def who_of(identity: Identity) -> Who:
    return (identity.type, identity.arn or identity.invoked_by, identity.username, identity.access_key_id)


def event_rows(
    event_id: str,
    event_time: datetime,
    account_id: str,
    region: str,
    service: str,
    event_name: str,
    event_type: str,
    read_only: bool,
    request_id: str | None,
    who: Who,
    source_ip: str | None,
    user_agent: str | None,
    error_code: str | None,
    error_message: str | None,
    request_parameters: dict[str, Any] | None,
    response_elements: dict[str, Any] | None,
    resources: tuple[tuple[str, str], ...],
) -> EventRows:
    """The rows of one event (an :class:`AuditEvent`'s fields, the identity as :func:`who_of`'s
    columns, resources as (type, name) pairs): what the audit trail's writer inserts. API calls'
    events are built straight into these (:func:`mailcrate.audit.requests.call_rows`), with no
    AuditEvent in between."""
    if len(resources) > 1:
        resources = tuple(dict.fromkeys(resources))  # the same resource named twice is kept once
    row = (
        event_id,
        event_time,
        account_id,
        region,
        EVENT_SOURCES.get(service) or f"{service}.amazonaws.com",
        event_name,
        event_type,
        read_only,
        request_id,
        *who,
        source_ip,
        _clip(user_agent, _MAX_USER_AGENT),
        error_code,
        _clip(error_message, _MAX_MESSAGE),
        _json(request_parameters, MAX_PARAMETERS_CHARS),
        _json(response_elements, MAX_PARAMETERS_CHARS),
        _resources_text(resources),
        *(resources[0] if resources else _NO_RESOURCE),
        *(resources[1] if len(resources) > 1 else _NO_RESOURCE),
    )
    return row, [(event_id, t, n, account_id, event_time) for t, n in resources[2:]]


def rows_of_event(event: AuditEvent) -> EventRows:
    return event_rows(
        event.event_id, event.event_time, event.account_id, event.region, event.service,
        event.event_name, event.event_type, event.read_only, event.request_id, who_of(event.identity),
        event.source_ip, event.user_agent, event.error_code, event.error_message,
        event.request_parameters, event.response_elements,
        tuple((r.type, r.name) for r in event.resources),
    )  # fmt: skip


def record_many(conn: Connection, events: list[AuditEvent]) -> None:
    """Write ``events`` in the caller's transaction (they commit with the change they describe),
    a few multi-row statements whatever their number."""
    insert_rows(conn, rows_of(events))


Rows = tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]


def rows_of(events: list[AuditEvent]) -> Rows:
    """The rows of ``events``, for :func:`insert_rows`."""
    return join_rows([rows_of_event(event) for event in events])


def join_rows(events: list[EventRows]) -> Rows:
    """The rows of several events, for one :func:`insert_rows`."""
    rows: list[tuple[Any, ...]] = []
    resource_rows: list[tuple[Any, ...]] = []
    for row, resources in events:
        rows.append(row)
        resource_rows += resources
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
