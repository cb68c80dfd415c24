"""Export-job calls refused change nothing; limits and uniqueness hold under races; the database
and the S3 streams cannot be used to leak values or hold the server."""

from __future__ import annotations

import http.client
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from mailcrate.storage.db import Database
from tests.protocol.hostile.support import (
    KEY_ARN,
    PASSWORD,
    REGION,
    ROLE,
    SERVE_ARGS,  # noqa: F401 - read by the server fixture (tests/conftest.py)
    Reply,
    World,
    _DeclaredPayloadSigner,
    _start,
    assert_error,
    race,
    s3,
    workmail,
)
from tests.support.signing import open_upload


def _jobs(w: World) -> list[dict[str, Any]]:
    return w.server.client("workmail").list_mailbox_export_jobs(OrganizationId=w.org)["Jobs"]


def test_rejected_export_calls_change_nothing(world: World) -> None:
    wm = world.server.client("workmail")
    assert _jobs(world) == []
    first = workmail(world.server, "StartMailboxExportJob", _start(world, ClientToken="hostile-token"))
    assert first.status == 200, first.body
    job_id = first.json()["JobId"]
    # The token again with other arguments: refused, and the job keeps its own.
    for other in (
        {"S3Prefix": "elsewhere"},
        {"S3BucketName": "other-bucket"},
        {"KmsKeyArn": KEY_ARN.replace("5555", "6666")},
        {"RoleArn": ROLE + "2"},
        {"Description": "changed"},
    ):
        reply = workmail(
            world.server, "StartMailboxExportJob", _start(world, ClientToken="hostile-token", **other)
        )
        assert_error(reply, "json", 400, "InvalidParameterException")
    described = wm.describe_mailbox_export_job(OrganizationId=world.org, JobId=job_id)
    assert (
        described["S3Prefix"],
        described["S3BucketName"],
        described["KmsKeyArn"],
        described["RoleArn"],
    ) == (
        "exports",
        "bucket",
        KEY_ARN,
        ROLE,
    )
    assert "Description" not in described and described["State"] == "RUNNING"
    assert [job["JobId"] for job in _jobs(world)] == [job_id]
    # A cancel of a job in another organization, or with a wrong JobId type, changes nothing.
    other_org = wm.create_organization(Alias="hostile" + uuid.uuid4().hex[:10])["OrganizationId"]
    reply = workmail(
        world.server,
        "CancelMailboxExportJob",
        {"OrganizationId": other_org, "JobId": job_id, "ClientToken": "c1"},
    )
    assert_error(reply, "json", 400, "EntityNotFoundException")
    reply = workmail(
        world.server,
        "CancelMailboxExportJob",
        {"OrganizationId": world.org, "JobId": {"id": job_id}, "ClientToken": "c2"},
    )
    assert_error(reply, "json", 400, "SerializationException")
    assert wm.describe_mailbox_export_job(OrganizationId=world.org, JobId=job_id)["State"] == "RUNNING"
    wm.cancel_mailbox_export_job(OrganizationId=world.org, JobId=job_id, ClientToken="hostile-cancel")


@pytest.mark.parametrize("prefix", ["../..", "a//b/", "./", "*", "'()'"])
def test_odd_export_prefixes_are_recorded_verbatim(world: World, prefix: str) -> None:
    """Prefixes the model's pattern allows are the job's own: S3Path is ``prefix/JobId.zip``."""
    wm = world.server.client("workmail")
    job_id = wm.start_mailbox_export_job(**_start(world, S3Prefix=prefix))["JobId"]
    try:
        described = wm.describe_mailbox_export_job(OrganizationId=world.org, JobId=job_id)
        assert described["S3Prefix"] == prefix
        assert described["S3Path"].endswith(f"{job_id}.zip") and described["S3Path"].startswith(
            prefix.rstrip("/")
        )
    finally:
        wm.cancel_mailbox_export_job(OrganizationId=world.org, JobId=job_id)


def test_database_errors_do_not_carry_bound_values(tmp_path: Path) -> None:
    """If a statement ever fails (the 500s above did, in ListParts and ListOrganizations), the
    exception logged with it names the statement, never the values bound to it."""
    database = Database(f"sqlite:///{tmp_path / 'db.sqlite'}")
    secret = "sealed-secret-" + uuid.uuid4().hex
    with pytest.raises(SQLAlchemyError) as caught, database.engine.begin() as conn:
        conn.execute(text("SELECT :secret, :bad"), {"secret": secret, "bad": {"not": "bindable"}})
    assert secret not in str(caught.value)
    assert "hidden due to hide_parameters" in str(caught.value)


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


@pytest.mark.parametrize("decoded_length", [None, 1000])
def test_a_chunk_claiming_a_huge_size_is_not_buffered(world: World, decoded_length: int | None) -> None:
    """An aws-chunked body whose chunk-size line claims ~1 TB, then streams 96 MiB: the server
    neither holds it in memory (it did: RSS grew by every byte sent) nor stores anything."""
    server = world.server
    assert server.process is not None
    headers = {"Content-Encoding": "aws-chunked"}
    if decoded_length is not None:
        headers["X-Amz-Decoded-Content-Length"] = str(decoded_length)
    request = AWSRequest(
        method="PUT", url=f"{server.endpoint}/{world.bucket}/huge-chunk", data=b"", headers=headers
    )
    credentials = Credentials(server.access_key_id, server.secret_access_key)
    _DeclaredPayloadSigner(credentials, REGION, "STREAMING-UNSIGNED-PAYLOAD-TRAILER").add_auth(request)
    before = _rss_kib(server.process.pid)
    peak = before
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    try:
        conn.putrequest("PUT", f"/{world.bucket}/huge-chunk", skip_host=True, skip_accept_encoding=True)
        for name, value in request.headers.items():
            conn.putheader(name, value)
        conn.putheader("Host", f"127.0.0.1:{server.port}")
        conn.putheader("Transfer-Encoding", "chunked")
        conn.endheaders()
        block = b"x" * (1 << 20)
        for index, data in enumerate([b"ffffffffff\r\n", *[block] * 96, b"\r\n0\r\n\r\n"]):
            try:
                conn.send(f"{len(data):x}\r\n".encode() + data + b"\r\n")
            except (BrokenPipeError, ConnectionResetError):
                break  # refused early (the decoded length was exceeded) and closed
            if index % 16 == 0:
                peak = max(peak, _rss_kib(server.process.pid))
        conn.send(b"0\r\n\r\n")
        response = conn.getresponse()
        reply = Reply(response.status, {k.lower(): v for k, v in response.getheaders()}, response.read())
    finally:
        conn.close()
    assert_error(reply, "s3", 400, "IncompleteBody")
    assert peak - before < 48 * 1024, (before, peak)
    reply = s3(world, "GET", "huge-chunk")
    assert_error(reply, "s3", 404, "NoSuchKey")


def test_concurrent_duplicates_are_refused(world: World) -> None:
    """Names, email addresses and aliases are checked before they are written: 12 calls at once
    that all pass the check must still create one (up to 4 were created before)."""
    server = world.server
    clients = [server.client("workmail") for _ in range(12)]
    wm = clients[0]
    org = wm.create_organization(Alias="race" + uuid.uuid4().hex[:10])["OrganizationId"]
    domain = wm.describe_organization(OrganizationId=org)["DefaultMailDomain"]
    outcomes = race(
        [
            lambda c=c: c.create_user(OrganizationId=org, Name="same", DisplayName="Same", Password=PASSWORD)
            for c in clients
        ]
    )
    assert outcomes == ["NameAvailabilityException"] * 11 + ["OK"]
    ids = [
        wm.create_user(OrganizationId=org, Name=f"u{n}", DisplayName="U", Password=PASSWORD)["UserId"]
        for n in range(12)
    ]
    outcomes = race(
        [
            lambda c=c, uid=uid: c.register_to_work_mail(
                OrganizationId=org, EntityId=uid, Email=f"same@{domain}"
            )
            for c, uid in zip(clients, ids, strict=True)
        ]
    )
    assert outcomes == ["EmailAddressInUseException"] * 11 + ["OK"]
    listed = wm.list_users(OrganizationId=org)["Users"]
    assert sum(u["Name"] == "same" for u in listed) == 1
    assert sum(u.get("Email") == f"same@{domain}" for u in listed) == 1
    alias = "race" + uuid.uuid4().hex[:10]
    outcomes = race([lambda c=c: c.create_organization(Alias=alias) for c in clients])
    assert outcomes == ["NameAvailabilityException"] * 11 + ["OK"]
    aliases = [o["Alias"] for o in wm.list_organizations(MaxResults=100)["OrganizationSummaries"]]
    assert aliases.count(alias) == 1


def test_stalled_uploads_cannot_hold_s3(world: World) -> None:
    """40 uploads that send their headers and then nothing (more than the 32 S3 threads): S3
    still answers, and each stalled upload is answered RequestTimeout once idle too long. They
    held every S3 thread, for as long as their clients stayed connected."""
    server = world.server
    stalled = []
    for n in range(40):
        stalled.append(
            open_upload(
                server.endpoint,
                f"/{world.bucket}/stalled-{n}",
                server.access_key_id,
                server.secret_access_key,
                content_length=1000,
            )
        )
    try:
        started = time.monotonic()
        reply = s3(world, "GET", query="list-type=2", timeout=20)
        assert reply.status == 200 and time.monotonic() - started < 10, reply.body[:300]
        response = stalled[0].getresponse()
        reply = Reply(response.status, {k.lower(): v for k, v in response.getheaders()}, response.read())
        assert_error(reply, "s3", 400, "RequestTimeout")
    finally:
        for conn in stalled:
            conn.close()
    keys = {
        o["Key"] for o in world.server.client("s3").list_objects_v2(Bucket=world.bucket).get("Contents", [])
    }
    assert not any(key.startswith("stalled-") for key in keys)
