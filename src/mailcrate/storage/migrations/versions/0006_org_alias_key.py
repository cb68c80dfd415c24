"""workmail organizations: a unique alias_key holds each alias

CreateOrganization checked the alias with a SELECT before its INSERT, so concurrent creates of one
alias could all pass the check (12 at once made up to 4 organizations; a re-check after the INSERT
closed that on SQLite only). ``alias_key`` is the lower-cased alias while the organization holds
it and NULL once it is deleted; its unique index makes the database refuse the second holder on
SQLite and PostgreSQL alike (NULLs never collide, so deleted organizations' aliases are free).

Organizations that already share an alias (made by that race) are kept as they are, working and
listed: the oldest (created_at, organization_id) of each alias gets the key and the others keep
NULL, so the upgrade never fails on such data. CreateOrganization still refuses the alias while
any of them is not deleted (its check reads the alias itself); each of the others is logged here.

Revision ID: 0006_org_alias_key
Revises: 0001
"""

from __future__ import annotations

import logging

import sqlalchemy as sa
from alembic import op

revision = "0006_org_alias_key"
down_revision = "0001"
branch_labels = None
depends_on = None

log = logging.getLogger("mailcrate.storage")

_orgs = sa.table(
    "workmail_organizations",
    sa.column("organization_id", sa.String),
    sa.column("alias", sa.String),
    sa.column("alias_key", sa.String),
    sa.column("state", sa.String),
    sa.column("created_at", sa.DateTime),
)


def upgrade() -> None:
    with op.batch_alter_table("workmail_organizations") as batch:
        batch.add_column(sa.Column("alias_key", sa.String(length=62), nullable=True))
    conn = op.get_bind()
    rows = conn.execute(
        sa.select(_orgs.c.organization_id, _orgs.c.alias)
        .where(_orgs.c.state != "Deleted")
        .order_by(_orgs.c.created_at, _orgs.c.organization_id)
    ).all()
    holders: dict[str, str] = {}
    for organization_id, alias in rows:
        key = alias.lower()
        if key in holders:
            log.warning(
                "organization %s shares the alias %s with the older %s (both made before aliases "
                "were unique in the database); both keep working as they are",
                organization_id,
                alias,
                holders[key],
            )
            continue
        holders[key] = organization_id
    if holders:
        conn.execute(
            sa.update(_orgs)
            .where(_orgs.c.organization_id == sa.bindparam("org"))
            .values(alias_key=sa.bindparam("key")),
            [{"org": org, "key": key} for key, org in holders.items()],
        )
    with op.batch_alter_table("workmail_organizations") as batch:
        batch.create_index("ux_org_alias_key", ["alias_key"], unique=True)


def downgrade() -> None:
    with op.batch_alter_table("workmail_organizations") as batch:
        batch.drop_index("ux_org_alias_key")
        batch.drop_column("alias_key")
