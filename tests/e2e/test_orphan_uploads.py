"""No multipart upload is left open for good: when a failed job's AbortMultipartUpload is refused
too, the upload stays recorded with the job and a worker aborts it once it can.

Here the job's role may not use the key's kms:Decrypt (so its first UploadPart is refused and
the job FAILS) nor s3:AbortMultipartUpload (so its own abort is refused as well). Before, the
job forgot the upload at FAILED and its parts stayed stored. Once the role's policy is put
right, the sweeper (``--export-abort-retry-seconds``) aborts it."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.jobs.support import (
    add_big_item,
    new_mailbox,
    permission_policy,
    start_export,
    trust_policy,
    wait_job,
)
from tests.support.mailcrate_server import MailcrateServer

PREFIX = "exports"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MailcrateServer]:
    with MailcrateServer.running(
        tmp_path_factory.mktemp("orphans") / "data",
        "--export-abort-retry-seconds",
        "1",
        "--export-max-attempts",
        "1",
    ) as srv:
        yield srv


def _policy(bucket: str, key_arn: str, *, without: tuple[str, ...] = ()) -> str:
    document = json.loads(permission_policy(bucket, PREFIX, key_arn))
    for statement in document["Statement"]:
        statement["Action"] = [a for a in statement["Action"] if a not in without]
    return json.dumps(document)


def test_a_refused_abort_is_retried_until_the_upload_is_gone(server: MailcrateServer, tmp_path: Path) -> None:
    mb = new_mailbox(server)
    add_big_item(mb.root, 2_000_000)
    bucket = "orphans-" + uuid.uuid4().hex[:10]
    s3, iam = server.client("s3"), server.client("iam")
    s3.create_bucket(Bucket=bucket)
    key_arn = server.client("kms").create_key()["KeyMetadata"]["Arn"]
    role = "ExportRole" + uuid.uuid4().hex[:6]
    role_arn = iam.create_role(RoleName=role, AssumeRolePolicyDocument=trust_policy(server.account_id))[
        "Role"
    ]["Arn"]
    broken = _policy(bucket, key_arn, without=("kms:Decrypt", "s3:AbortMultipartUpload"))
    iam.put_role_policy(RoleName=role, PolicyName="export", PolicyDocument=broken)
    dest = {"bucket": bucket, "key_arn": key_arn, "role_arn": role_arn}
    job = wait_job(server.client("workmail"), mb.organization_id, start_export(server, mb, dest, PREFIX))
    assert job["State"] == "FAILED", job
    time.sleep(3)  # a few sweeps: each is refused too
    uploads = s3.list_multipart_uploads(Bucket=bucket).get("Uploads", [])
    assert [u["Key"] for u in uploads] == [job["S3Path"]]  # kept, not forgotten
    iam.put_role_policy(RoleName=role, PolicyName="export", PolicyDocument=_policy(bucket, key_arn))
    deadline = time.monotonic() + 30
    while s3.list_multipart_uploads(Bucket=bucket).get("Uploads") and time.monotonic() < deadline:
        time.sleep(0.5)
    assert s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []
    assert s3.list_objects_v2(Bucket=bucket).get("KeyCount") == 0
