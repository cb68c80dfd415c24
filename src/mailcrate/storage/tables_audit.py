"""Tables of the audit trail (see :mod:`mailcrate.audit`).

One row per event: an API call that changed state or read an export (``AwsApiCall``), or a step
of an export job (``AwsServiceEvent``). The columns are what CloudTrail's ``LookupEvents`` filters
on; the rest of the event (request parameters with secrets removed, response elements) is kept
as JSON text, shaped when it is read. An event's first two resources are also columns of its
row, and any further ones rows of ``audit_event_resources``, so a lookup by ``ResourceName``
compares columns and probes a primary key instead of parsing each event's JSON. Two inline:
an API call names one or two (a KMS call: the key's id and its ARN), and its own rows cost
as much to insert as the event's (BENCHMARKS.md, tenth session).
"""

from __future__ import annotations

from sqlalchemy import Boolean, Column, DateTime, ForeignKey, Index, String, Table, Text

from mailcrate.storage.tables import metadata

audit_events = Table(
    "audit_events",
    metadata,
    Column("event_id", String(36), primary_key=True),
    Column("event_time", DateTime(timezone=True), nullable=False),
    Column("account_id", String(12), nullable=False),
    Column("region", String(32), nullable=False),
    Column("event_source", String(64), nullable=False),  # workmail.amazonaws.com
    Column("event_name", String(128), nullable=False),  # StartMailboxExportJob
    Column("event_type", String(32), nullable=False),  # AwsApiCall | AwsServiceEvent
    Column("read_only", Boolean, nullable=False),
    Column("request_id", String(64), nullable=True),
    # Who: userIdentity. Never a secret: the access key *id* only, as CloudTrail records it.
    Column("identity_type", String(32), nullable=False),  # Root | IAMUser | AssumedRole | AWSService
    Column("principal_arn", String(2048), nullable=True),
    Column("username", String(256), nullable=True),
    Column("access_key_id", String(128), nullable=True),
    Column("source_ip", String(64), nullable=True),
    Column("user_agent", String(1024), nullable=True),
    # Outcome: no error code means it succeeded.
    Column("error_code", String(128), nullable=True),
    Column("error_message", Text, nullable=True),
    Column("request_parameters", Text, nullable=True),  # JSON, secrets removed
    Column("response_elements", Text, nullable=True),  # JSON, only ids (never a secret)
    Column("resources", Text, nullable=False),  # JSON list of {"type", "name"}
    # The event's first two resources, for LookupEvents' ResourceName/ResourceType filters; the
    # rest are rows of audit_event_resources (migration 0013; before it, all of them were).
    Column("resource1_type", String(128), nullable=True),
    Column("resource1_name", String(2048), nullable=True),
    Column("resource2_type", String(128), nullable=True),
    Column("resource2_name", String(2048), nullable=True),
    # Newest first within an account (LookupEvents' order), by event name, and pruning by age.
    Index("ix_audit_events_account_time", "account_id", "event_time", "event_id"),
    Index("ix_audit_events_account_name_time", "account_id", "event_name", "event_time"),
    Index("ix_audit_events_time", "event_time"),
)

audit_event_resources = Table(
    "audit_event_resources",
    metadata,
    Column("event_id", String(36), ForeignKey("audit_events.event_id", ondelete="CASCADE"), primary_key=True),
    Column("resource_type", String(128), primary_key=True),
    Column("resource_name", String(2048), primary_key=True),
    Column("account_id", String(12), nullable=False),
    # No index by name: LookupEvents finds an event's resources by the primary key (migration 0013).
    Column("event_time", DateTime(timezone=True), nullable=False),
)
