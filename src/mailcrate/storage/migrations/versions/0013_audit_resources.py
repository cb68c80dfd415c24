"""audit trail: an event's first two resources on its own row; no resource-name index

An API call names one or two resources (a KMS call: the key's id and its ARN), and each of
its ``audit_event_resources`` rows cost as much to insert as the event's own row: an audited
KMS Encrypt's writes took 17-25 us of CPU with two resource rows and ~10 us with the two
resources as columns of the event's row (SQLite, batches of 250). New events keep their first
two resources in ``resource1_*`` and ``resource2_*`` and only further ones as rows; events
written before this keep all of theirs as rows, which LookupEvents still reads.

The (account_id, resource_name, event_time) index of ``audit_event_resources`` goes:
LookupEvents by ResourceName or ResourceType walks the account's events newest first and looks
each one's resources up by the primary key, and neither SQLite's nor PostgreSQL's planner used
the index for it (the lookup names no resource's account), so it was only written.

Revision ID: 0013_audit_resources
Revises: 0009_audit
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013_audit_resources"
down_revision = "0009_audit"
branch_labels = None
depends_on = None

_COLUMNS = (
    ("resource1_type", 128),
    ("resource1_name", 2048),
    ("resource2_type", 128),
    ("resource2_name", 2048),
)


def upgrade() -> None:
    op.drop_index("ix_audit_resources_account_name_time", table_name="audit_event_resources")
    for name, length in _COLUMNS:
        op.add_column("audit_events", sa.Column(name, sa.String(length=length), nullable=True))


def downgrade() -> None:
    # Back to every resource as a row of audit_event_resources. The columns are dropped with
    # ALTER TABLE DROP COLUMN (SQLite 3.35+): a batch copy of the table would drop the old one,
    # and with foreign keys on that deletes every resource row (ON DELETE CASCADE).
    for n in (1, 2):
        op.execute(
            "INSERT INTO audit_event_resources (event_id, resource_type, resource_name, account_id,"
            f" event_time) SELECT event_id, resource{n}_type, resource{n}_name, account_id, event_time"
            f" FROM audit_events WHERE resource{n}_name IS NOT NULL"
        )
    for name, _length in _COLUMNS:
        op.drop_column("audit_events", name)
    op.create_index(
        "ix_audit_resources_account_name_time",
        "audit_event_resources",
        ["account_id", "resource_name", "event_time"],
    )
