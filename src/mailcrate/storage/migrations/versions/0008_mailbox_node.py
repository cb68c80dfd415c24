"""workmail users: mailbox_node, the data directory that holds an embedded mailbox's mail

With several nodes that each have a data directory of their own, a node that claimed an export
read its own copy of the mailbox directory, which was empty when the mail had been imported on
another node: the job COMPLETED with 0 items. Now the first write of mail into an embedded
mailbox records its node, later writes elsewhere are refused, and only that node claims the
mailbox's exports. Existing mailboxes keep NULL (any node, as before; a node without the mailbox
then fails the job with a clear error instead of exporting nothing).

Revision ID: 0008_mailbox_node
Revises: 0006_org_alias_key
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008_mailbox_node"
down_revision = "0006_org_alias_key"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("workmail_users") as batch:
        batch.add_column(sa.Column("mailbox_node", sa.String(64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("workmail_users") as batch:
        batch.drop_column("mailbox_node")
