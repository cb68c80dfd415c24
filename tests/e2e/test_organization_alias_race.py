"""An organization alias has one holder, however many CreateOrganization calls ask for it at once.

Each backend (SQLite in the data directory, PostgreSQL by URL) runs a real ``mailcrate serve``;
16 clients, one per thread, are released together with one alias. The unique index on the
held alias (migration 0006) lets exactly one through. Before it, 12 creates made up to 4
organizations on SQLite, and on PostgreSQL (where the re-check after the INSERT that fixed SQLite
serializes nothing) 16 creates made 3, then 2. A data directory upgraded from before 0006 that
already holds such duplicates opens, and keeps them.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.config import Config
from botocore.exceptions import ClientError
from sqlalchemy import Column, DateTime, MetaData, String, Table, insert, text

import mailcrate.storage
from mailcrate.storage.db import Database, script_heads
from mailcrate.storage.tables import mail_domains
from tests.e2e.test_postgres_backend import _init as _init_postgres
from tests.protocol.hostile.support import race
from tests.support.mailcrate_server import MailcrateServer
from tests.support.postgres import PostgresServer

CALLERS = 16
IN_USE = "NameAvailabilityException"
# The organizations table as revision 0001 made it (no alias_key).
_OLD_ORGANIZATIONS = Table(
    "workmail_organizations",
    MetaData(),
    *(Column(name, String) for name in ("organization_id", "account_id", "region", "alias", "state")),
    *(Column(name, String) for name in ("directory_type", "default_mail_domain")),
    Column("created_at", DateTime(timezone=True)),
    Column("completed_at", DateTime(timezone=True)),
)


def _database_url(backend: str, request: pytest.FixtureRequest, data_dir: Path) -> str:
    if backend == "sqlite":
        return f"sqlite:///{data_dir / 'mailcrate.db'}"
    pg: PostgresServer = request.getfixturevalue("postgres")
    return pg.create_database("alias_" + uuid.uuid4().hex[:12])


def _initialised(backend: str, request: pytest.FixtureRequest, data_dir: Path) -> tuple[MailcrateServer, str]:
    """A data directory made by ``mailcrate init`` on the backend (schema at the newest revision),
    not yet served; and its database URL."""
    url = _database_url(backend, request, data_dir)
    if backend == "sqlite":
        server = MailcrateServer(data_dir=data_dir)
        server.init()
    else:
        server = MailcrateServer(data_dir=data_dir, extra_args=("--database-url", url))
        _init_postgres(server, url)
    return server, url


def _organizations(server: MailcrateServer, alias: str) -> list[dict[str, Any]]:
    """Every listed organization whose alias is ``alias`` in any case."""
    wm, token, found = server.client("workmail"), None, []
    while True:
        page = wm.list_organizations(MaxResults=25, **({"NextToken": token} if token else {}))
        found += [o for o in page["OrganizationSummaries"] if o["Alias"].lower() == alias.lower()]
        token = page.get("NextToken")
        if not token:
            return found


def _create_at_once(server: MailcrateServer, alias: str) -> list[str]:
    """CALLERS creates of ``alias`` at once, every other one in upper case."""
    clients = [server.client("workmail") for _ in range(CALLERS)]
    spellings = [alias if n % 2 else alias.upper() for n in range(CALLERS)]
    return race(
        [lambda c=c, a=a: c.create_organization(Alias=a) for c, a in zip(clients, spellings, strict=True)]
    )


def _one_wins(outcomes: list[str]) -> None:
    made = outcomes.count("OK")
    assert outcomes == [IN_USE] * (CALLERS - 1) + ["OK"], f"{made} of {CALLERS} creates made one: {outcomes}"


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_concurrent_creates_of_one_alias_make_one_organization(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    server = _initialised(backend, request, tmp_path / "data")[0].start()
    try:
        wm = server.client("workmail")
        for _ in range(3):  # the race was lost on some rounds only
            alias = "race" + uuid.uuid4().hex[:10]
            _one_wins(_create_at_once(server, alias))
            (org,) = _organizations(server, alias)
            assert org["State"] == "Active"
            assert wm.describe_organization(OrganizationId=org["OrganizationId"])["State"] == "Active"

        # A deleted organization's alias may be used again, once, by one of many callers.
        wm.delete_organization(OrganizationId=org["OrganizationId"], DeleteDirectory=True, ForceDelete=True)
        _one_wins(_create_at_once(server, alias))
        states = sorted(o["State"] for o in _organizations(server, alias))
        assert states == ["Active", "Deleted"]
        with pytest.raises(ClientError) as refused:
            wm.create_organization(Alias=alias.upper())
        assert refused.value.response["Error"]["Code"] == IN_USE
    finally:
        server.stop()
    assert "Traceback" not in server.log_path.read_text()  # type: ignore[union-attr]


def _before_0006(server: MailcrateServer, url: str, alias: str) -> list[str]:
    """Take the database back to the revision before 0006 (with 0006's own downgrade) and write
    three organizations sharing ``alias`` as the old race left them; their ids, oldest first."""
    db = Database(url)
    cfg = Config()
    cfg.set_main_option("script_location", str(Path(mailcrate.storage.__file__).with_name("migrations")))
    with db.engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "0006_org_alias_key")  # what came after it on its branch
        command.downgrade(cfg, "0006_org_alias_key@-1")  # then 0006 itself
    ids = ["m-" + uuid.uuid4().hex for _ in range(3)]
    start = datetime.now(UTC) - timedelta(hours=1)
    with db.engine.begin() as conn:
        revisions = set(conn.execute(text("SELECT version_num FROM alembic_version")).scalars())
        # The other branches untouched; the workmail branch's head (0006 or what revises it, 0008)
        # went back with it.
        assert revisions == script_heads() - {"0006_org_alias_key", "0008_mailbox_node"}
        for n, (organization_id, spelling) in enumerate(zip(ids, [alias, alias.upper(), alias], strict=True)):
            conn.execute(
                insert(_OLD_ORGANIZATIONS).values(
                    organization_id=organization_id,
                    account_id=server.account_id,
                    region=server.region,
                    alias=spelling,
                    state="Active",
                    directory_type="WorkMailDirectory",
                    default_mail_domain=f"{alias}.awsapps.com",
                    created_at=start + timedelta(seconds=n),
                    completed_at=start + timedelta(seconds=n),
                )
            )
            conn.execute(
                insert(mail_domains).values(
                    organization_id=organization_id, domain=f"{alias}.awsapps.com", is_default=True
                )
            )
    db.dispose()
    return ids


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_an_upgrade_keeps_organizations_that_already_share_an_alias(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    server, url = _initialised(backend, request, tmp_path / "data")
    alias = "dup" + uuid.uuid4().hex[:10]
    ids = _before_0006(server, url, alias)
    server.start()  # migrates to 0006 with the duplicates in place
    try:
        log = server.log_path.read_text()  # type: ignore[union-attr]
        for later in ids[1:]:  # the operator is told which organizations share an alias
            assert f"organization {later} shares the alias" in log and f"older {ids[0]}" in log
        wm = server.client("workmail")
        listed = {o["OrganizationId"]: o["State"] for o in _organizations(server, alias)}
        assert listed == dict.fromkeys(ids, "Active")
        for organization_id in ids:
            assert wm.describe_organization(OrganizationId=organization_id)["Alias"].lower() == alias

        # The alias stays in use while any of them is not deleted, whichever is deleted first.
        for organization_id in [ids[0], ids[2]]:
            assert _create_at_once(server, alias) == [IN_USE] * CALLERS
            wm.delete_organization(OrganizationId=organization_id, DeleteDirectory=True, ForceDelete=True)
        assert _create_at_once(server, alias) == [IN_USE] * CALLERS
        wm.delete_organization(OrganizationId=ids[1], DeleteDirectory=True, ForceDelete=True)
        _one_wins(_create_at_once(server, alias))
        assert sorted(o["State"] for o in _organizations(server, alias)) == ["Active"] + ["Deleted"] * 3
    finally:
        server.stop()
    assert "Traceback" not in server.log_path.read_text()  # type: ignore[union-attr]
