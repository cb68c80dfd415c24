"""When the storage underneath fails, mailcrate says so: a full disk or an unreachable database
is a 503 with ``Retry-After`` in each protocol's error shape (never a 500 with a traceback), an
export that runs out of disk is FAILED with "no space left on device", and once the fault is
gone the same calls work again. Real servers: ``mailcrate serve`` on a small tmpfs, and a
PostgreSQL cluster of this module's own that is stopped and started again."""

from __future__ import annotations

import errno
import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from botocore.exceptions import ClientError

from tests.e2e.test_postgres_backend import _init
from tests.jobs.support import (
    fill_bulk,
    new_mailbox,
    permission_policy,
    start_export,
    trust_policy,
    wait_job,
)
from tests.support.mailcrate_server import MailcrateServer
from tests.support.postgres import PostgresServer, _as_postgres, start_postgres

PREFIX = "exports"
DISK_MIB = 48


@pytest.fixture(scope="module")
def small_disk(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A 48 MiB tmpfs for the data directory (root can mount one here)."""
    mount = tmp_path_factory.mktemp("small-disk")
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={DISK_MIB}m,mode=0700", "tmpfs", str(mount)], check=True
    )
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def _free_bytes(path: Path) -> int:
    stat = os.statvfs(path)
    return stat.f_bavail * stat.f_frsize


def _fill(path: Path, leave: int) -> Path:
    """A file that takes all but ``leave`` bytes of the filesystem."""
    filler = path / f"filler-{uuid.uuid4().hex[:6]}"
    size = _free_bytes(path) - leave
    with open(filler, "wb") as f:
        chunk = b"\0" * (1 << 20)
        try:
            while size > 0:
                size -= f.write(chunk[: min(len(chunk), size)])
                f.flush()
        except OSError as exc:  # the server wrote meanwhile (its log is on this disk): full already
            if exc.errno != errno.ENOSPC:
                raise
    return filler


def _destination(server: MailcrateServer) -> dict[str, str]:
    bucket = "faults-" + uuid.uuid4().hex[:10]
    s3 = server.client("s3")
    s3.create_bucket(Bucket=bucket)
    key_arn = server.client("kms").create_key()["KeyMetadata"]["Arn"]
    iam = server.client("iam")
    role = "ExportRole" + uuid.uuid4().hex[:6]
    role_arn = iam.create_role(RoleName=role, AssumeRolePolicyDocument=trust_policy(server.account_id))[
        "Role"
    ]["Arn"]
    iam.put_role_policy(
        RoleName=role, PolicyName="export", PolicyDocument=permission_policy(bucket, PREFIX, key_arn)
    )
    return {"bucket": bucket, "key_arn": key_arn, "role_arn": role_arn}


def _assert_unavailable(error: ClientError) -> None:
    meta = error.response["ResponseMetadata"]
    assert meta["HTTPStatusCode"] == 503, error.response
    assert error.response["Error"]["Code"] == "ServiceUnavailable", error.response
    assert int(meta["HTTPHeaders"]["retry-after"]) > 0


def test_a_full_disk_is_503_and_a_failed_export_then_works_again(small_disk: Path) -> None:
    with MailcrateServer.running(small_disk / "data", "--export-part-size-mib", "5") as server:
        mb = new_mailbox(server)
        fill_bulk(mb.root, 12 << 20)  # ~16 MiB stored: more than the disk will have left
        dest = _destination(server)
        filler = _fill(small_disk, leave=6 << 20)
        try:
            job_id = start_export(server, mb, dest, PREFIX)
            job = wait_job(server.client("workmail"), mb.organization_id, job_id, timeout=120)
            assert job["State"] == "FAILED", job
            assert "no space left on device" in job["ErrorInfo"], job["ErrorInfo"]
            s3 = server.client("s3")
            assert s3.list_multipart_uploads(Bucket=dest["bucket"]).get("Uploads", []) == []
            with pytest.raises(ClientError) as caught:  # an object that cannot fit
                s3.put_object(Bucket=dest["bucket"], Key="big", Body=os.urandom(8 << 20))
            _assert_unavailable(caught.value)
            assert "Key" not in str(s3.list_objects_v2(Bucket=dest["bucket"]).get("Contents", []))
            rest = _fill(small_disk, leave=0)  # not a byte left, even for the database
            try:
                with pytest.raises(ClientError) as caught:
                    for n in range(50):  # the database may still have room in pages it holds
                        server.client("iam").create_role(
                            RoleName=f"full-{n}-" + "x" * 50,
                            AssumeRolePolicyDocument=trust_policy(server.account_id),
                        )
                _assert_unavailable(caught.value)
            finally:
                rest.unlink()
        finally:
            filler.unlink()
        # Space again: the next export of the same mailbox completes (a FAILED job does not use
        # up the mailbox's 24 hours).
        job_id = start_export(server, mb, dest, PREFIX)
        job = wait_job(server.client("workmail"), mb.organization_id, job_id, timeout=120)
        assert job["State"] == "COMPLETED", job.get("ErrorInfo")
        log = server.log_path.read_text(errors="replace")  # type: ignore[union-attr]
        assert "Traceback" not in log and "internal error" not in log, log[-3000:]


@pytest.fixture(scope="module")
def own_postgres() -> Iterator[PostgresServer]:
    """A cluster of this module's own: the test stops it (the session's cluster serves others)."""
    server = start_postgres()
    yield server
    server.stop()


def _pg_ctl(pg: PostgresServer, *args: str) -> None:
    subprocess.run(
        _as_postgres(str(pg.bin / "pg_ctl"), "-D", str(pg.base / "data"), "-w", "-t", "30", *args),
        check=True,
        capture_output=True,
    )


def test_an_unreachable_database_is_503_on_every_protocol(
    own_postgres: PostgresServer, tmp_path: Path
) -> None:
    url = own_postgres.migrated_database("outage")
    server = MailcrateServer(
        data_dir=tmp_path / "data", extra_args=("--database-url", url, "--export-workers", "0")
    )
    _init(server, url)
    server.start()
    try:
        wm, s3, iam = server.client("workmail"), server.client("s3"), server.client("iam")
        wm.list_organizations()
        _pg_ctl(own_postgres, "-m", "fast", "stop")
        try:
            for call in (
                wm.list_organizations,  # JSON
                lambda: s3.list_buckets(),  # REST-XML
                lambda: iam.list_roles(),  # query
            ):
                with pytest.raises(ClientError) as caught:
                    call()
                _assert_unavailable(caught.value)
            health = httpx.get(server.endpoint + "/health", timeout=5)
            assert health.status_code == 200  # the process itself is fine
        finally:
            options = (
                f"-c listen_addresses=127.0.0.1 -p {own_postgres.port} -k {own_postgres.base} -c fsync=off"
            )
            _pg_ctl(own_postgres, "-l", str(own_postgres.base / "postgres.log"), "-o", options, "start")
        assert "OrganizationSummaries" in wm.list_organizations()  # back without a restart of serve
        log = server.log_path.read_text(errors="replace")  # type: ignore[union-attr]
        assert "Traceback" not in log and "internal error" not in log, log[-3000:]
    finally:
        server.stop()
