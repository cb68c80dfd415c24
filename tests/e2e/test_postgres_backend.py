"""Two ``mailcrate serve`` processes sharing one PostgreSQL database see one directory.

This is the scale-out shape: the schema and every query must be portable SQL, and what one
process writes the other reads at once.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.mailcrate_server import MailcrateServer, mailcrate_cmd
from tests.support.postgres import PostgresServer, start_postgres


@pytest.fixture(scope="module")
def postgres() -> Iterator[PostgresServer]:
    server = start_postgres()
    yield server
    server.stop()


def test_two_servers_share_one_postgres_database(postgres: PostgresServer, tmp_path: Path) -> None:
    url = postgres.create_database("shared")
    first = MailcrateServer(data_dir=tmp_path / "one", extra_args=("--database-url", url))
    second = MailcrateServer(data_dir=tmp_path / "two", extra_args=("--database-url", url))
    # Both data dirs need the same master key to open secrets sealed by the other.
    first.data_dir.mkdir(mode=0o700)
    subprocess.run(
        mailcrate_cmd(
            "init",
            "--data-dir",
            str(first.data_dir),
            "--database-url",
            url,
            "--account-id",
            first.account_id,
            "--access-key-id",
            first.access_key_id,
            "--secret-access-key",
            first.secret_access_key,
        ),
        check=True,
        capture_output=True,
    )
    second.data_dir.mkdir(mode=0o700)
    (second.data_dir / "master.key").write_bytes((first.data_dir / "master.key").read_bytes())
    (second.data_dir / "master.key").chmod(0o600)
    first.start()
    second.start()
    try:
        a, b = first.client("workmail"), second.client("workmail")
        org_id = a.create_organization(Alias="pgshared")["OrganizationId"]
        user_id = b.create_user(OrganizationId=org_id, Name="alice", DisplayName="Alice")["UserId"]
        a.register_to_work_mail(OrganizationId=org_id, EntityId=user_id, Email="alice@pgshared.awsapps.com")
        seen = b.describe_user(OrganizationId=org_id, UserId="alice@pgshared.awsapps.com")
        assert seen["UserId"] == user_id and seen["State"] == "ENABLED"
        for i in range(5):
            b.create_organization(Alias=f"pgpage{i}")
        pages, token, ids = 0, None, []
        while True:
            page = a.list_organizations(MaxResults=2, **({"NextToken": token} if token else {}))
            ids += [o["OrganizationId"] for o in page["OrganizationSummaries"]]
            pages += 1
            token = page.get("NextToken")
            if not token:
                break
        assert pages == 3 and len(set(ids)) == 6 and org_id in ids
        assert (
            first.aws(
                "iam",
                "create-role",
                "--role-name",
                "PgRole",
                "--assume-role-policy-document",
                '{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":'
                '"export.workmail.amazonaws.com"},"Action":"sts:AssumeRole"}]}',
            )["Role"]["RoleName"]
            == "PgRole"
        )
        assert second.aws("iam", "get-role", "--role-name", "PgRole")["Role"]["Arn"].endswith(":role/PgRole")
    finally:
        first.stop()
        second.stop()
