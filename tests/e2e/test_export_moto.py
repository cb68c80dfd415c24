"""Exports to an external AWS-compatible endpoint (moto's server standing in for AWS), through
``serve --aws-endpoint-url``: the role is assumed with STS AssumeRole + ExternalId using the
standard credential chain. Also cancel, ``kill -9`` recovery, a 100,000-message mailbox and a
big single item, which need no particular destination."""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from tests.jobs.support import (
    MotoServer,
    add_big_item,
    add_calendar,
    check_export,
    fetch_export,
    fill_bulk,
    fill_maildir,
    moto_destination,
    moto_env,
    new_mailbox,
    no_leftovers,
    start_export,
    start_moto,
    wait_job,
)
from tests.support.mailcrate_server import MailcrateServer

PREFIX = "exports/"


@pytest.fixture(scope="module")
def moto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoServer]:
    server = start_moto(tmp_path_factory.mktemp("moto"))
    yield server
    server.stop()


def _serve(data_dir: Path, moto: MotoServer, *extra: str) -> MailcrateServer:
    return MailcrateServer.launch(
        data_dir,
        "--aws-endpoint-url",
        moto.endpoint,
        "--export-part-size-mib",
        "8",
        "--export-lease-seconds",
        "5",
        *extra,
        env=moto_env(moto),
    )


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, moto: MotoServer) -> Iterator[MailcrateServer]:
    srv = _serve(tmp_path_factory.mktemp("mailcrate") / "data", moto)
    yield srv
    srv.stop()


def test_export_to_external_endpoint_with_sse_kms(
    server: MailcrateServer, moto: MotoServer, tmp_path: Path
) -> None:
    mb = new_mailbox(server)
    fill_maildir(mb.root, {"Inbox": 120, ("Projects", "Ω/β"): 30}, size=12_000)
    add_big_item(mb.root, 20 * 1024 * 1024)  # spans several 8 MiB parts
    add_calendar(mb.root, 5)
    dest = moto_destination(moto)
    job_id = start_export(server, mb, dest, PREFIX)
    job = wait_job(server.client("workmail"), mb.organization_id, job_id)
    assert job["State"] == "COMPLETED", job.get("ErrorInfo")
    assert job["S3Path"] == f"exports/{job_id}.zip"
    head = moto.client("s3").head_object(Bucket=dest["bucket"], Key=job["S3Path"])
    assert head["ServerSideEncryption"] == "aws:kms" and head["SSEKMSKeyId"].endswith(dest["key_id"])
    log_head = moto.client("s3").head_object(Bucket=dest["bucket"], Key=f"exports/{job_id}.json")
    assert log_head["ServerSideEncryption"] == "aws:kms"
    zip_path, log_path = fetch_export(moto, dest, job, job_id, tmp_path)
    manifest = check_export(zip_path, log_path, mb)
    assert len(manifest.items) == 156
    assert moto.client("s3").list_multipart_uploads(Bucket=dest["bucket"]).get("Uploads", []) == []


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("no-bucket", "does not exist"),
        ("public", "is public"),
        ("other-region", "eu-west-1"),
        ("disabled-key", "disabled"),
        ("asymmetric-key", "symmetric"),
    ],
)
def test_failures_against_external_endpoint(
    server: MailcrateServer, moto: MotoServer, case: str, expected: str
) -> None:
    mb = new_mailbox(server)
    fill_maildir(mb.root, {"Inbox": 5})
    dest = moto_destination(
        moto,
        region="eu-west-1" if case == "other-region" else "us-east-1",
        key_spec="RSA_2048" if case == "asymmetric-key" else None,
    )
    s3 = moto.client("s3", "eu-west-1" if case == "other-region" else "us-east-1")
    if case == "no-bucket":
        s3.delete_bucket(Bucket=dest["bucket"])
    elif case == "public":
        s3.put_bucket_policy(
            Bucket=dest["bucket"],
            Policy=(
                '{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":"*",'
                f'"Action":"s3:GetObject","Resource":"arn:aws:s3:::{dest["bucket"]}/*"}}]}}'
            ),
        )
    elif case == "disabled-key":
        moto.client("kms").disable_key(KeyId=dest["key_id"])
    job = wait_job(
        server.client("workmail"), mb.organization_id, start_export(server, mb, dest, PREFIX), timeout=60
    )
    assert job["State"] == "FAILED" and expected in job["ErrorInfo"], job.get("ErrorInfo")
    if case != "no-bucket":
        no_leftovers(s3, dest["bucket"], PREFIX)


@pytest.mark.slow
def test_cancel_during_1gib_export(server: MailcrateServer, moto: MotoServer) -> None:
    mb = new_mailbox(server)
    fill_bulk(mb.root, 1 << 30)
    dest = moto_destination(moto)
    wm = server.client("workmail")
    job_id = start_export(server, mb, dest, PREFIX)
    deadline = time.monotonic() + 60
    while (
        wm.describe_mailbox_export_job(OrganizationId=mb.organization_id, JobId=job_id)["EstimatedProgress"]
        < 5
    ):
        assert time.monotonic() < deadline
        time.sleep(0.1)
    s3 = moto.client("s3")
    assert s3.list_multipart_uploads(Bucket=dest["bucket"]).get("Uploads")  # mid-upload
    cancelled_at = time.monotonic()
    wm.cancel_mailbox_export_job(OrganizationId=mb.organization_id, JobId=job_id)
    job = wm.describe_mailbox_export_job(OrganizationId=mb.organization_id, JobId=job_id)
    assert job["State"] == "CANCELLED" and job["EstimatedProgress"] < 100
    # Within 5 s the worker has stopped and aborted the upload: nothing left behind.
    while True:
        try:
            no_leftovers(s3, dest["bucket"], PREFIX)
            break
        except AssertionError:
            assert time.monotonic() - cancelled_at < 5, "upload still open 5 s after the cancel"
            time.sleep(0.1)
    time.sleep(1.5)
    no_leftovers(s3, dest["bucket"], PREFIX)
    assert (
        wm.describe_mailbox_export_job(OrganizationId=mb.organization_id, JobId=job_id)["State"]
        == "CANCELLED"
    )


@pytest.mark.slow
def test_kill_9_during_1gib_export_then_restart(tmp_path: Path, moto: MotoServer) -> None:
    srv = _serve(tmp_path / "data", moto, "--export-part-size-mib", "16")
    try:
        mb = new_mailbox(srv)
        fill_bulk(mb.root, 1 << 30)
        add_calendar(mb.root, 2)
        dest = moto_destination(moto)
        wm = srv.client("workmail")
        job_id = start_export(srv, mb, dest, PREFIX)
        deadline = time.monotonic() + 60
        while (
            wm.describe_mailbox_export_job(OrganizationId=mb.organization_id, JobId=job_id)[
                "EstimatedProgress"
            ]
            < 10
        ):
            assert time.monotonic() < deadline
            time.sleep(0.1)
        s3 = moto.client("s3")
        before = s3.list_multipart_uploads(Bucket=dest["bucket"]).get("Uploads", [])
        assert len(before) == 1
        srv.stop(sig=signal.SIGKILL)
        srv.start()
        wm = srv.client("workmail")
        job = wait_job(wm, mb.organization_id, job_id, timeout=180)
        assert job["State"] == "COMPLETED", job.get("ErrorInfo")
        # The killed attempt's upload was aborted by the restarted worker.
        assert s3.list_multipart_uploads(Bucket=dest["bucket"]).get("Uploads", []) == []
        zip_path, log_path = fetch_export(moto, dest, job, job_id, tmp_path)
        check_export(zip_path, log_path, mb)
    finally:
        srv.stop()


@pytest.mark.slow
def test_100k_message_mailbox(server: MailcrateServer, moto: MotoServer, tmp_path: Path) -> None:
    mb = new_mailbox(server)
    folders = {
        "Inbox": 40_000,
        "Sent Items": 20_000,
        ("Archive", "2023"): 20_000,
        ("Archive", "2024"): 20_000,
    }
    assert fill_maildir(mb.root, folders, size=600) == 100_000
    dest = moto_destination(moto)
    job_id = start_export(server, mb, dest, PREFIX)
    job = wait_job(server.client("workmail"), mb.organization_id, job_id, timeout=600)
    assert job["State"] == "COMPLETED", job.get("ErrorInfo")
    zip_path, log_path = fetch_export(moto, dest, job, job_id, tmp_path)
    manifest = check_export(zip_path, log_path, mb)
    assert len(manifest.items) == 100_000


@pytest.mark.slow
def test_single_2gib_item(tmp_path: Path, moto: MotoServer) -> None:
    """A 2 GiB message (zip64 local header from its size hint), streamed in bounded memory."""
    srv = _serve(tmp_path / "data", moto, "--export-part-size-mib", "64")
    try:
        mb = new_mailbox(srv)
        add_big_item(mb.root, 2 * 1024**3 + 12345)
        fill_maildir(mb.root, {"Inbox": 3})
        dest = moto_destination(moto)
        assert srv.process is not None
        server_process = psutil.Process(srv.process.pid)
        peak = [server_process.memory_info().rss]
        done = threading.Event()

        def sample() -> None:
            while not done.wait(0.1):
                peak[0] = max(peak[0], server_process.memory_info().rss)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        job_id = start_export(srv, mb, dest, PREFIX)
        job = wait_job(srv.client("workmail"), mb.organization_id, job_id, timeout=600)
        done.set()
        sampler.join()
        assert job["State"] == "COMPLETED", job.get("ErrorInfo")
        # Streamed: the server holds parts (64 MiB x 5), never the 2 GiB item.
        assert peak[0] < 600 * 1024 * 1024, f"peak RSS {peak[0] / 2**20:.0f} MiB"
        zip_path, log_path = fetch_export(moto, dest, job, job_id, tmp_path)
        check_export(zip_path, log_path, mb)
    finally:
        srv.stop()
