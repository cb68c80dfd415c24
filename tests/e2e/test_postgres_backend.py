"""Processes sharing one PostgreSQL database: two ``mailcrate serve`` see one directory, and a
worker on another machine exports through the server.

This is the scale-out shape: the schema and every query must be portable SQL, and what one
process writes the other reads at once.
"""

from __future__ import annotations

import subprocess
from dataclasses import replace
from pathlib import Path

import pytest

from tests.e2e.test_export_embedded import PREFIX, _download, _setup, _start
from tests.e2e.test_tls import _init_tls
from tests.jobs.support import check_export, fill_maildir, new_mailbox, wait_job
from tests.support.mailcrate_server import MailcrateServer, mailcrate_cmd
from tests.support.postgres import PostgresServer


def _init(server: MailcrateServer, database_url: str) -> None:
    """``mailcrate init`` of the server's data directory with the test account, on PostgreSQL."""
    server.data_dir.mkdir(mode=0o700)
    subprocess.run(
        mailcrate_cmd(
            "init",
            "--data-dir",
            str(server.data_dir),
            "--database-url",
            database_url,
            "--account-id",
            server.account_id,
            "--access-key-id",
            server.access_key_id,
            "--secret-access-key",
            server.secret_access_key,
        ),
        check=True,
        capture_output=True,
    )


def _share_master_key(source: Path, other: Path) -> None:
    """A second data directory (another machine) with the first one's master key."""
    other.mkdir(mode=0o700)
    (other / "master.key").write_bytes((source / "master.key").read_bytes())
    (other / "master.key").chmod(0o600)


def test_two_servers_share_one_postgres_database(postgres: PostgresServer, tmp_path: Path) -> None:
    url = postgres.create_database("shared")
    first = MailcrateServer(data_dir=tmp_path / "one", extra_args=("--database-url", url))
    second = MailcrateServer(data_dir=tmp_path / "two", extra_args=("--database-url", url))
    # Both data dirs need the same master key to open secrets sealed by the other.
    _init(first, url)
    _share_master_key(first.data_dir, second.data_dir)
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


@pytest.mark.parametrize("tls", [False, True], ids=["http", "https"])
def test_worker_on_another_machine_writes_through_the_servers_s3(
    postgres: PostgresServer, tmp_path: Path, tls: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``mailcrate worker --server-url URL`` with its own data directory (another machine: it
    shares the database and the master key, not the server's disk) exports over HTTP into the
    server's embedded S3: the user downloads the archive from the server, and nothing lands in
    the worker's own S3 directory. Over HTTPS (docs/operations.md), the server has the
    certificate of ``mailcrate init --tls`` and the worker, like the test's own aws CLI and boto3
    calls, trusts its CA through ``AWS_CA_BUNDLE``."""
    url = postgres.create_database(f"remote_worker_{'https' if tls else 'http'}")
    server = MailcrateServer(
        data_dir=tmp_path / "server",
        extra_args=("--database-url", url, "--export-workers", "0", "--log-level", "info"),
    )
    _init(server, url)
    if tls:
        exports = _init_tls(server)
        server.extra_args += (
            "--tls-cert",
            exports["MAILCRATE_TLS_CERT"],
            "--tls-key",
            exports["MAILCRATE_TLS_KEY"],
        )
        monkeypatch.setenv("AWS_CA_BUNDLE", exports["AWS_CA_BUNDLE"])  # inherited by the worker
    worker_dir = tmp_path / "worker"
    _share_master_key(server.data_dir, worker_dir)
    server.start()
    assert server.endpoint.startswith("https://" if tls else "http://")
    worker = None
    try:
        mb = new_mailbox(server)
        # The worker reads the mailbox where it runs: the embedded store of its data directory.
        root = worker_dir / mb.root.relative_to(server.data_dir)
        fill_maildir(root, {"Inbox": 40, "Sent Items": 8}, size=30_000)
        env = _setup(server, tmp_path)
        job_id = _start(server, mb, env)
        worker = subprocess.Popen(
            mailcrate_cmd(
                "worker",
                "--data-dir",
                str(worker_dir),
                "--database-url",
                url,
                "--server-url",
                server.endpoint,
                "--export-workers",
                "1",
            ),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        job = wait_job(server.client("workmail"), mb.organization_id, job_id, timeout=60)
        assert job["State"] == "COMPLETED", job.get("ErrorInfo")
        zip_path = _download(server, env["bucket"], job["S3Path"], tmp_path / "export.zip")
        log_path = _download(server, env["bucket"], f"{PREFIX}/{job_id}.json", tmp_path / "export.json")
        check_export(zip_path, log_path, replace(mb, root=root))
        assert server.log_path is not None
        served = server.log_path.read_text()
        for operation in ("CreateMultipartUpload", "UploadPart", "CompleteMultipartUpload", "PutObject"):
            assert f"s3.{operation} -> 200" in served, operation
        assert [p for p in (worker_dir / "s3").rglob("*") if p.is_file()] == []
    finally:
        if worker is not None:
            worker.terminate()
            worker.wait(15)
        server.stop()
