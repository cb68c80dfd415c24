"""Fixtures of the hostile-request suites: the world each module's server holds, a health check
after every case, and a clean log after every module."""

from __future__ import annotations

import http.client
import uuid
from collections.abc import Iterator

import pytest

from tests.protocol.hostile.support import (
    PASSWORD,
    World,
)
from tests.support.mailcrate_server import MailcrateServer


@pytest.fixture(scope="module")
def world(server: MailcrateServer) -> World:
    wm = server.client("workmail")
    org = wm.create_organization(Alias="hostile" + uuid.uuid4().hex[:10])["OrganizationId"]
    domain = wm.describe_organization(OrganizationId=org)["DefaultMailDomain"]
    user = wm.create_user(OrganizationId=org, Name="alice", DisplayName="Alice", Password=PASSWORD)["UserId"]
    email = f"alice@{domain}"
    wm.register_to_work_mail(OrganizationId=org, EntityId=user, Email=email)
    s3 = server.client("s3")
    bucket = "hostile-" + uuid.uuid4().hex[:12]
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="obj", Body=b"0123456789")
    upload = s3.create_multipart_upload(Bucket=bucket, Key="mpu")["UploadId"]
    etag = s3.upload_part(Bucket=bucket, Key="mpu", UploadId=upload, PartNumber=1, Body=b"part-one")["ETag"]
    kms = server.client("kms")
    key_id = kms.create_key()["KeyMetadata"]["KeyId"]
    blob = kms.encrypt(KeyId=key_id, Plaintext=b"secret", EncryptionContext={"a": "b"})["CiphertextBlob"]
    return World(server, org, user, email, bucket, key_id, blob, "mpu", upload, etag)


@pytest.fixture(autouse=True)
def still_answering(server: MailcrateServer) -> Iterator[None]:
    """After every case the server answers its health check promptly: no crash, no hang."""
    yield
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
    try:
        conn.request("GET", "/health")
        assert conn.getresponse().status == 200
    finally:
        conn.close()
    assert server.process is not None and server.process.poll() is None


@pytest.fixture(scope="module", autouse=True)
def log_stays_clean(server: MailcrateServer) -> Iterator[None]:
    """After each module: everything it sent went through its one server, whose log holds no
    traceback and no secret (the access key's secret, the user's password)."""
    yield
    assert server.log_path is not None
    log = server.log_path.read_text(errors="replace")
    assert server.secret_access_key not in log
    assert PASSWORD not in log
    assert "Traceback" not in log and "internal error" not in log, log[-3000:]
