"""The in-process destination (the embedded S3 through its own handlers) against the HTTP one
(boto3 to the same ``mailcrate serve``), as the same assumed-role session: what it stores is
what a user downloads, and each refusal the role's policy causes gives the same ErrorInfo."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from mailcrate.datadir import DataDir
from mailcrate.export.destination import ExportError, open_destination
from mailcrate.export.destination.boto import BotoDestination
from mailcrate.export.destination.embedded import EmbeddedDestination
from mailcrate.export.destination.roles import embedded_assumer
from mailcrate.export.uploader import PartUploader, UploadStopped, new_part_buffer
from mailcrate.jobs.records import ExportJob, State
from mailcrate.services.context import ServiceContext
from mailcrate.services.registry import service_context
from tests.jobs.support import permission_policy, trust_policy
from tests.support.mailcrate_server import MailcrateServer

PREFIX = "exports"
MIB = 1024 * 1024
SERVE_ARGS = ("--export-workers", "0")  # the API only: see the server fixture (tests/conftest.py)


@pytest.fixture(scope="module")
def data_dir(server: MailcrateServer) -> Iterator[DataDir]:
    """The server's data directory, opened in this process as the export worker opens it."""
    dd = DataDir.open(server.data_dir)
    yield dd
    dd.close()


@pytest.fixture(scope="module")
def context(data_dir: DataDir) -> ServiceContext:
    """The service context an export worker builds on that data directory."""
    return service_context(data_dir)


def _policy(bucket: str, key_arn: str, *, drop: str | None = None) -> str:
    """The procedure's permission policy, optionally without one action."""
    doc = json.loads(permission_policy(bucket, PREFIX, key_arn))
    for statement in doc["Statement"]:
        statement["Action"] = [a for a in statement["Action"] if a != drop]
    return json.dumps(doc)


def _job(server: MailcrateServer, *, drop: str | None = None) -> ExportJob:
    """A bucket, a key and a role as the procedure makes them; a job record naming them."""
    bucket = "exp-" + uuid.uuid4().hex[:12]
    server.client("s3").create_bucket(Bucket=bucket)
    key_arn = server.client("kms").create_key()["KeyMetadata"]["Arn"]
    iam = server.client("iam")
    role = "ExportRole" + uuid.uuid4().hex[:8]
    role_arn = iam.create_role(RoleName=role, AssumeRolePolicyDocument=trust_policy(server.account_id))[
        "Role"
    ]["Arn"]
    iam.put_role_policy(
        RoleName=role, PolicyName="export", PolicyDocument=_policy(bucket, key_arn, drop=drop)
    )
    job_id = str(uuid.uuid4())
    now = datetime.now(UTC)
    return ExportJob(
        job_id=job_id,
        account_id=server.account_id,
        region=server.region,
        organization_id="m-" + "a" * 32,
        entity_id="user",
        description=None,
        role_arn=role_arn,
        kms_key_arn=key_arn,
        s3_bucket_name=bucket,
        s3_prefix=PREFIX,
        s3_path=f"{PREFIX}/{job_id}.zip",
        state=State.RUNNING,
        estimated_progress=0,
        error_info=None,
        start_time=now,
        end_time=None,
        client_token=None,
        request_digest="",
        cancel_token=None,
        lease_owner=None,
        lease_expires_at=None,
        attempts=1,
        finishing=False,
        upload_id=None,
        items_total=None,
        items_done=None,
        bytes_done=None,
    )


def _over_http(server: MailcrateServer, context: ServiceContext, job: ExportJob) -> BotoDestination:
    """The old path: boto3 to the server's port with the same role session's credentials."""
    creds = embedded_assumer(job, context)()  # the role session the worker would get
    keys = {"access_key_id": creds["access_key"], "secret_access_key": creds["secret_key"]}
    return BotoDestination(
        job=job,
        s3=server.client("s3", session_token=creds["token"], **keys),
        kms=server.client("kms", session_token=creds["token"], **keys),
    )


def _in_process(context: ServiceContext, job: ExportJob) -> Any:
    return open_destination(job, context=context, endpoint_url=None, external=False)


def _error(action: Any) -> str:
    with pytest.raises(ExportError) as caught:
        action()
    return str(caught.value)


def test_embedded_jobs_open_the_in_process_destination(
    server: MailcrateServer, data_dir: DataDir, context: ServiceContext
) -> None:
    assert isinstance(_in_process(context, _job(server)), EmbeddedDestination)


def test_stored_object_downloads_over_http(
    server: MailcrateServer, data_dir: DataDir, context: ServiceContext
) -> None:
    """Parts written in-process make an SSE-KMS object that GetObject returns byte for byte."""
    job = _job(server)
    dest = _in_process(context, job)
    dest.preflight()
    first, last = bytearray(os.urandom(5 * MIB + 3)), bytearray(os.urandom(MIB // 2))
    upload_id = dest.create_upload(job.s3_path)
    etags = [dest.upload_part(job.s3_path, upload_id, n, b) for n, b in ((1, first), (2, last))]
    dest.complete_upload(job.s3_path, upload_id, etags)
    dest.put_object(f"{PREFIX}/{job.job_id}.json", b'{"a": "1"}', "application/json")
    s3 = server.client("s3")
    got = s3.get_object(Bucket=job.s3_bucket_name, Key=job.s3_path)
    assert got["Body"].read() == bytes(first + last)
    assert got["ServerSideEncryption"] == "aws:kms" and got["SSEKMSKeyId"] == job.kms_key_arn
    assert got["ContentType"] == "application/zip"
    assert got["ETag"].endswith('-2"')
    log = s3.get_object(Bucket=job.s3_bucket_name, Key=f"{PREFIX}/{job.job_id}.json")
    assert log["Body"].read() == b'{"a": "1"}' and log["ServerSideEncryption"] == "aws:kms"
    assert s3.list_multipart_uploads(Bucket=job.s3_bucket_name).get("Uploads", []) == []


@pytest.mark.parametrize("path", ["in-process", "http"])
def test_mapped_part_buffers_and_a_view_of_the_last_part_are_stored_as_is(
    server: MailcrateServer, data_dir: DataDir, path: str, context: ServiceContext
) -> None:
    """What PartSink hands over (an anonymous mapping per full part, a view of the filled
    bytes of the last) is stored byte for byte on both paths, and a reused mapping whose file
    position is not at 0 still sends from its first byte."""
    job = _job(server)
    dest = _in_process(context, job) if path == "in-process" else _over_http(server, context, job)
    first = new_part_buffer(5 * MIB)
    first[:] = os.urandom(5 * MIB)
    first.seek(123)
    last_buffer = new_part_buffer(5 * MIB)
    tail = os.urandom(MIB + 7)
    last_buffer[: len(tail)] = tail
    upload_id = dest.create_upload(job.s3_path)
    etags = [
        dest.upload_part(job.s3_path, upload_id, 1, first),
        dest.upload_part(job.s3_path, upload_id, 2, memoryview(last_buffer)[: len(tail)]),
    ]
    dest.complete_upload(job.s3_path, upload_id, etags)
    got = server.client("s3").get_object(Bucket=job.s3_bucket_name, Key=job.s3_path)["Body"].read()
    assert got == first[:] + tail


@pytest.mark.parametrize("drop", ["s3:PutObject", "kms:GenerateDataKey"])
def test_create_refusals_match_the_http_path(
    server: MailcrateServer, data_dir: DataDir, drop: str, context: ServiceContext
) -> None:
    job = _job(server, drop=drop)
    embedded = _error(lambda: _in_process(context, job).create_upload(job.s3_path))
    http = _error(lambda: _over_http(server, context, job).create_upload(job.s3_path))
    assert embedded == http
    if drop == "s3:PutObject":
        assert embedded.startswith(f"Access denied for CreateMultipartUpload on bucket {job.s3_bucket_name}")
    else:
        assert embedded.startswith(f"S3 could not use the KMS key {job.kms_key_arn}")
    assert drop in embedded


def test_part_refusal_matches_the_http_path(
    server: MailcrateServer, data_dir: DataDir, context: ServiceContext
) -> None:
    """Without kms:Decrypt the upload starts but no part can be written (S3 opens the data key)."""
    job = _job(server, drop="kms:Decrypt")
    errors = []
    for dest in (_in_process(context, job), _over_http(server, context, job)):
        upload_id = dest.create_upload(job.s3_path)
        errors.append(
            _error(lambda d=dest, u=upload_id: d.upload_part(job.s3_path, u, 1, bytearray(b"x" * 100)))
        )
        dest.abort_upload(job.s3_path, upload_id)
    assert errors[0] == errors[1]
    assert "kms:Decrypt" in errors[0] and errors[0].startswith("S3 could not use the KMS key")
    assert server.client("s3").list_multipart_uploads(Bucket=job.s3_bucket_name).get("Uploads", []) == []


def _streaming(dest: EmbeddedDestination, key: str, upload_id: str, in_flight: int = 2) -> PartUploader:
    """The uploader as the export job builds it for the embedded S3: parts streamed as filled."""
    return PartUploader(
        lambda n, data: dest.upload_part(key, upload_id, n, data),
        in_flight=in_flight,
        stream_part=lambda n, frames: dest.stream_part(key, upload_id, n, frames),
    )


def _tmp_files(data_dir: DataDir) -> set[str]:
    return {p.name for p in (data_dir.s3_root / "tmp").iterdir()}


@pytest.mark.parametrize("total", [0, 3 * MIB - 5, 2 * (5 * MIB + 3), 12 * MIB + 12345])
def test_streamed_parts_store_what_was_written(
    server: MailcrateServer, data_dir: DataDir, total: int, context: ServiceContext
) -> None:
    """Parts sealed chunk by chunk while the sink fills them: the object is the bytes written
    (odd write sizes, parts not a multiple of the chunk, a last part ending on a part boundary,
    an empty archive), the in-order SHA-384 is the object's, and no temporary file remains."""
    job = _job(server)
    dest = _in_process(context, job)
    before = _tmp_files(data_dir)
    upload_id = dest.create_upload(job.s3_path)
    uploader = _streaming(dest, job.s3_path, upload_id)
    sink = uploader.sink(5 * MIB + 3)
    data = os.urandom(total)
    for start in range(0, total, 100_003):
        sink.write(data[start : start + 100_003])
    sink.close()
    etags = uploader.finish()
    assert len(etags) == max(1, -(-total // (5 * MIB + 3)))
    dest.complete_upload(job.s3_path, upload_id, etags)
    got = server.client("s3").get_object(Bucket=job.s3_bucket_name, Key=job.s3_path)["Body"].read()
    assert got == data
    assert uploader.sha384_hex() == hashlib.sha384(data).hexdigest()
    assert _tmp_files(data_dir) == before


def test_streamed_exports_get_distinct_opaque_etags(server: MailcrateServer, context: ServiceContext) -> None:
    """Two archives written as the exporter writes them (parts streamed as filled) are two
    objects with two ETags, neither the MD5 of no bytes: S3 documents SSE-KMS ETags as opaque,
    not as one constant. Every export zip had ``"d41d8cd98f00b204e9800998ecf8427e-N"``."""
    seen = []
    for _ in range(2):
        job = _job(server)
        dest = _in_process(context, job)
        upload_id = dest.create_upload(job.s3_path)
        uploader = _streaming(dest, job.s3_path, upload_id)
        sink = uploader.sink(5 * MIB)
        sink.write(os.urandom(6 * MIB))
        sink.close()
        dest.complete_upload(job.s3_path, upload_id, uploader.finish())
        head = server.client("s3").head_object(Bucket=job.s3_bucket_name, Key=job.s3_path)
        seen.append(head["ETag"])
    assert seen[0] != seen[1]
    assert all(etag.endswith('-2"') and "d41d8cd98f00b204e9800998ecf8427e" not in etag for etag in seen)


def test_cancel_mid_part_leaves_no_file_and_no_part(
    server: MailcrateServer, data_dir: DataDir, context: ServiceContext
) -> None:
    """Cancelled while a part is half written (its first chunks already sealed into a temporary
    file): the file is removed, no part is recorded, and after the abort nothing is left under
    the prefix."""
    job = _job(server)
    dest = _in_process(context, job)
    before = _tmp_files(data_dir)
    upload_id = dest.create_upload(job.s3_path)
    uploader = _streaming(dest, job.s3_path, upload_id)
    sink = uploader.sink(8 * MIB)
    sink.write(os.urandom(3 * MIB + 1))
    deadline = time.monotonic() + 10
    while not _tmp_files(data_dir) - before:  # the part is being written as it is filled
        assert time.monotonic() < deadline
        time.sleep(0.01)
    uploader.cancel()
    with pytest.raises(UploadStopped):
        sink.close()
    assert _tmp_files(data_dir) == before
    s3 = server.client("s3")
    parts = s3.list_parts(Bucket=job.s3_bucket_name, Key=job.s3_path, UploadId=upload_id)
    assert parts.get("Parts", []) == []
    dest.abort_upload(job.s3_path, upload_id)
    assert s3.list_multipart_uploads(Bucket=job.s3_bucket_name).get("Uploads", []) == []
    assert s3.list_objects_v2(Bucket=job.s3_bucket_name, Prefix=PREFIX).get("KeyCount") == 0


def test_streamed_part_refusal_matches_the_http_path(
    server: MailcrateServer, data_dir: DataDir, context: ServiceContext
) -> None:
    """Without kms:Decrypt a streamed part is refused when it starts, with the ErrorInfo of the
    HTTP path's UploadPart; the producer gets it while filling, and no file is left."""
    job = _job(server, drop="kms:Decrypt")
    http = _over_http(server, context, job)
    upload_id = http.create_upload(job.s3_path)
    expected = _error(lambda: http.upload_part(job.s3_path, upload_id, 1, bytearray(b"x" * 100)))
    http.abort_upload(job.s3_path, upload_id)

    dest = _in_process(context, job)
    before = _tmp_files(data_dir)
    upload_id = dest.create_upload(job.s3_path)
    uploader = _streaming(dest, job.s3_path, upload_id)
    sink = uploader.sink(8 * MIB)

    def produce() -> None:
        for _ in range(64):
            sink.write(os.urandom(MIB))
            time.sleep(0.01)
        sink.close()
        uploader.finish()

    assert _error(produce) == expected
    uploader.cancel()
    dest.abort_upload(job.s3_path, upload_id)
    assert _tmp_files(data_dir) == before
    assert server.client("s3").list_multipart_uploads(Bucket=job.s3_bucket_name).get("Uploads", []) == []


def test_abort_without_permission_is_refused_on_both_paths(
    server: MailcrateServer, data_dir: DataDir, context: ServiceContext
) -> None:
    """abort_upload is best effort on both paths; the role's policy still decides."""
    job = _job(server, drop="s3:AbortMultipartUpload")
    for dest in (_in_process(context, job), _over_http(server, context, job)):
        dest.abort_upload(job.s3_path, dest.create_upload(job.s3_path))
    uploads = server.client("s3").list_multipart_uploads(Bucket=job.s3_bucket_name).get("Uploads", [])
    assert len(uploads) == 2


def test_preflight_refusals_match_the_http_path(
    server: MailcrateServer, data_dir: DataDir, context: ServiceContext
) -> None:
    job = _job(server, drop="s3:GetBucketPolicyStatus")
    embedded = _error(lambda: _in_process(context, job).preflight())
    http = _error(lambda: _over_http(server, context, job).preflight())
    assert embedded == http and "GetBucketPolicyStatus" in embedded
    # The bucket is gone: the same "does not exist" either way.
    job = _job(server)
    server.client("s3").delete_bucket(Bucket=job.s3_bucket_name)
    embedded = _error(lambda: _in_process(context, job).preflight())
    http = _error(lambda: _over_http(server, context, job).preflight())
    assert embedded == http and "does not exist" in embedded


def test_refused_trust_fails_on_open(
    server: MailcrateServer, data_dir: DataDir, context: ServiceContext
) -> None:
    job = _job(server)
    server.client("iam").update_assume_role_policy(
        RoleName=job.role_arn.rsplit("/", 1)[1], PolicyDocument=trust_policy("999988887777")
    )
    message = _error(lambda: _in_process(context, job))
    assert "could not assume the role" in message
    with pytest.raises(ExportError):
        embedded_assumer(job, context)()


def test_session_is_renewed_before_it_expires(
    server: MailcrateServer, data_dir: DataDir, context: ServiceContext
) -> None:
    """A long export outlives the 1-hour session: the destination assumes the role again."""
    job = _job(server)
    dest = _in_process(context, job)
    first = dest.principal()
    assert dest.principal() is first  # still valid: no new session per call
    dest._principal = dataclasses.replace(first, expires_at=datetime.now(UTC))
    renewed = dest.principal()
    assert renewed.access_key_id != first.access_key_id and renewed.arn == first.arn
    dest.create_upload(job.s3_path)


def test_worker_side_import_does_not_load_boto3(tmp_path: Path) -> None:
    """The export worker imports the job runner; boto3 comes only with an external destination."""
    import subprocess
    import sys

    code = "import sys, mailcrate.export.job, mailcrate.export.destination.embedded; print('boto3' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
