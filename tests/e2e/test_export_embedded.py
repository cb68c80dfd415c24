"""The AWS mailbox-export procedure, step by step with the real ``aws`` CLI, against
``mailcrate serve`` and its embedded IAM/STS/KMS/S3; and the ways it can go wrong."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.jobs.support import (
    Mailbox,
    add_big_item,
    add_calendar,
    check_export,
    fill_bulk,
    fill_maildir,
    new_mailbox,
    no_leftovers,
    permission_policy,
    trust_policy,
    trust_policy_new,
    wait_job,
)
from tests.support.mailcrate_server import MailcrateServer

PREFIX = "S3-PREFIX"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MailcrateServer]:
    with MailcrateServer.running(
        tmp_path_factory.mktemp("mailcrate") / "data", "--export-part-size-mib", "5"
    ) as srv:
        yield srv


def _setup(server: MailcrateServer, tmp: Path, *, new_trust: bool = False, bucket: str | None = None) -> dict:
    """Key, bucket, role and policies as the AWS procedure creates them, with the aws CLI."""
    bucket = bucket or "exports-" + uuid.uuid4().hex[:10]
    key = server.aws("kms", "create-key", "--description", "export key")["KeyMetadata"]
    server.aws("s3api", "create-bucket", "--bucket", bucket)
    role_name = "WorkmailMailboxExportRole" + uuid.uuid4().hex[:6]
    trust = trust_policy_new(server.account_id) if new_trust else trust_policy(server.account_id)
    (tmp / "mailbox-export-trust-policy.json").write_text(trust)
    (tmp / "mailbox-export-policy.json").write_text(permission_policy(bucket, PREFIX, key["Arn"]))
    role = server.aws(
        "iam",
        "create-role",
        "--role-name",
        role_name,
        "--assume-role-policy-document",
        "file://mailbox-export-trust-policy.json",
        "--region",
        "us-east-1",
        cwd=tmp,
    )["Role"]
    server.aws(
        "iam",
        "put-role-policy",
        "--role-name",
        role_name,
        "--policy-name",
        "MailboxExport",
        "--policy-document",
        "file://mailbox-export-policy.json",
        cwd=tmp,
    )
    return {"bucket": bucket, "key_arn": key["Arn"], "key_id": key["KeyId"], "role_arn": role["Arn"]}


def _start(server: MailcrateServer, mb: Mailbox, env: dict, entity: str | None = None, **extra: str) -> str:
    args = [
        "workmail",
        "start-mailbox-export-job",
        "--organization-id",
        mb.organization_id,
        "--entity-id",
        entity or mb.user_id,
        "--kms-key-arn",
        extra.get("key_arn", env["key_arn"]),
        "--role-arn",
        extra.get("role_arn", env["role_arn"]),
        "--s3-bucket-name",
        extra.get("bucket", env["bucket"]),
        "--s3-prefix",
        PREFIX,
    ]
    return server.aws(*args)["JobId"]


def _download(server: MailcrateServer, bucket: str, key: str, dest: Path) -> Path:
    result = server.aws("s3", "cp", f"s3://{bucket}/{key}", str(dest), check=False)
    assert result.returncode == 0, result.stderr
    return dest


@pytest.mark.parametrize("new_trust", [False, True], ids=["trust-externalid", "trust-sourcearn"])
def test_procedure_with_aws_cli(server: MailcrateServer, tmp_path: Path, new_trust: bool) -> None:
    mb = new_mailbox(server)
    fill_maildir(
        mb.root, {"Inbox": 300, "Sent Items": 40, ("Archive", "2024/Q1"): 25, "Ünïcødé ✓": 5}, size=30_000
    )
    add_calendar(mb.root, 4)
    env = _setup(server, tmp_path, new_trust=new_trust)

    job_id = _start(server, mb, env, entity=mb.email)
    listed = server.aws("workmail", "list-mailbox-export-jobs", "--organization-id", mb.organization_id)[
        "Jobs"
    ]
    assert [j["JobId"] for j in listed] == [job_id]
    assert set(listed[0]) <= {
        "JobId",
        "EntityId",
        "Description",
        "S3BucketName",
        "S3Path",
        "EstimatedProgress",
        "State",
        "StartTime",
        "EndTime",
    }
    wm = server.client("workmail")
    job = wait_job(wm, mb.organization_id, job_id)
    described = server.aws(
        "workmail", "describe-mailbox-export-job", "--organization-id", mb.organization_id, "--job-id", job_id
    )
    assert job["State"] == described["State"] == "COMPLETED", described.get("ErrorInfo")
    assert described["EstimatedProgress"] == 100
    assert described["EntityId"] == mb.user_id
    assert described["S3Path"] == f"{PREFIX}/{job_id}.zip"
    assert "ErrorInfo" not in described

    zip_path = _download(server, env["bucket"], described["S3Path"], tmp_path / "export.zip")
    log_path = _download(server, env["bucket"], f"{PREFIX}/{job_id}.json", tmp_path / "export.json")
    manifest = check_export(zip_path, log_path, mb)
    assert len(manifest.items) == 374
    log = json.loads(log_path.read_text())
    assert log["totalMessages"] == "374" and log["totalNonExportableItems"] == "0"
    head = server.client("s3").head_object(Bucket=env["bucket"], Key=described["S3Path"])
    assert head["ServerSideEncryption"] == "aws:kms"
    assert head["SSEKMSKeyId"].endswith(env["key_id"])
    uploads = server.client("s3").list_multipart_uploads(Bucket=env["bucket"]).get("Uploads", [])
    assert uploads == []


def _failed(server: MailcrateServer, mb: Mailbox, job_id: str) -> str:
    job = wait_job(server.client("workmail"), mb.organization_id, job_id, timeout=60)
    assert job["State"] == "FAILED", job
    assert 0 < len(job["ErrorInfo"]) <= 1024
    assert "SecretAccessKey" not in job["ErrorInfo"]
    return job["ErrorInfo"]


def test_failure_modes(server: MailcrateServer, tmp_path: Path) -> None:
    """Each fails the job with a specific ErrorInfo and leaves nothing under the prefix."""
    s3 = server.client("s3")
    kms = server.client("kms")
    iam = server.client("iam")

    def case(**change: str) -> tuple[dict, str]:
        mb = new_mailbox(server)
        fill_maildir(mb.root, {"Inbox": 20}, size=5000)
        env = _setup(server, tmp_path)
        env.update(change.pop("env", {}))  # type: ignore[arg-type]
        return env, _failed(server, mb, _start(server, mb, env, **change))

    # The trust policy names another account as ExternalId: AssumeRole is denied.
    mb = new_mailbox(server)
    fill_maildir(mb.root, {"Inbox": 3})
    env = _setup(server, tmp_path)
    iam.update_assume_role_policy(
        RoleName=env["role_arn"].rsplit("/", 1)[1], PolicyDocument=trust_policy("999988887777")
    )
    info = _failed(server, mb, _start(server, mb, env))
    assert "could not assume the role" in info and "sts:ExternalId" in info
    no_leftovers(s3, env["bucket"], PREFIX)

    # A public bucket.
    mb = new_mailbox(server)
    fill_maildir(mb.root, {"Inbox": 3})
    env = _setup(server, tmp_path)
    s3.delete_public_access_block(Bucket=env["bucket"])
    s3.put_bucket_policy(
        Bucket=env["bucket"],
        Policy=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Effect": "Allow",
                        "Principal": "*",
                        "Action": "s3:GetObject",
                        "Resource": f"arn:aws:s3:::{env['bucket']}/*",
                    }
                ],
            }
        ),
    )
    info = _failed(server, mb, _start(server, mb, env))
    assert "is public" in info
    no_leftovers(s3, env["bucket"], PREFIX)

    # No such bucket.
    mb = new_mailbox(server)
    fill_maildir(mb.root, {"Inbox": 3})
    env = _setup(server, tmp_path)
    missing_bucket = "no-such-bucket-" + uuid.uuid4().hex[:8]
    iam.put_role_policy(
        RoleName=env["role_arn"].rsplit("/", 1)[1],
        PolicyName="MailboxExport",
        PolicyDocument=permission_policy(missing_bucket, PREFIX, env["key_arn"]),
    )
    info = _failed(server, mb, _start(server, mb, env, bucket=missing_bucket))
    assert "does not exist" in info

    # The role may not write the bucket (its policy names another bucket).
    mb = new_mailbox(server)
    fill_maildir(mb.root, {"Inbox": 3})
    env = _setup(server, tmp_path)
    iam.put_role_policy(
        RoleName=env["role_arn"].rsplit("/", 1)[1],
        PolicyName="MailboxExport",
        PolicyDocument=permission_policy("some-other-bucket", PREFIX, env["key_arn"]),
    )
    info = _failed(server, mb, _start(server, mb, env))
    assert "Access denied" in info or "AccessDenied" in info
    no_leftovers(s3, env["bucket"], PREFIX)

    # A disabled key.
    mb = new_mailbox(server)
    fill_maildir(mb.root, {"Inbox": 3})
    env = _setup(server, tmp_path)
    kms.disable_key(KeyId=env["key_id"])
    info = _failed(server, mb, _start(server, mb, env))
    assert "disabled" in info
    no_leftovers(s3, env["bucket"], PREFIX)

    # An asymmetric key.
    mb = new_mailbox(server)
    fill_maildir(mb.root, {"Inbox": 3})
    env = _setup(server, tmp_path)
    asym = kms.create_key(KeySpec="RSA_2048", KeyUsage="ENCRYPT_DECRYPT")["KeyMetadata"]["Arn"]
    iam.put_role_policy(
        RoleName=env["role_arn"].rsplit("/", 1)[1],
        PolicyName="MailboxExport",
        PolicyDocument=permission_policy(env["bucket"], PREFIX, asym),
    )
    info = _failed(server, mb, _start(server, mb, env, key_arn=asym))
    assert "symmetric" in info
    no_leftovers(s3, env["bucket"], PREFIX)

    # A key that does not exist.
    mb = new_mailbox(server)
    fill_maildir(mb.root, {"Inbox": 3})
    env = _setup(server, tmp_path)
    missing = env["key_arn"].rsplit("/", 1)[0] + "/" + str(uuid.uuid4())
    info = _failed(server, mb, _start(server, mb, env, key_arn=missing))
    assert "does not exist" in info or "not found" in info.lower()
    no_leftovers(s3, env["bucket"], PREFIX)

    # A bucket in another region.
    mb = new_mailbox(server)
    fill_maildir(mb.root, {"Inbox": 3})
    env = _setup(server, tmp_path)
    other = "exports-eu-" + uuid.uuid4().hex[:8]
    server.client("s3", region="eu-west-1").create_bucket(
        Bucket=other, CreateBucketConfiguration={"LocationConstraint": "eu-west-1"}
    )
    iam.put_role_policy(
        RoleName=env["role_arn"].rsplit("/", 1)[1],
        PolicyName="MailboxExport",
        PolicyDocument=permission_policy(other, PREFIX, env["key_arn"]),
    )
    info = _failed(server, mb, _start(server, mb, env, bucket=other))
    assert "region" in info and "eu-west-1" in info
    no_leftovers(server.client("s3", region="eu-west-1"), other, PREFIX)


@pytest.mark.parametrize("drop", ["s3:PutObject", "kms:GenerateDataKey", "kms:Decrypt"])
def test_role_missing_a_permission_fails_the_job(server: MailcrateServer, tmp_path: Path, drop: str) -> None:
    """The worker writes in-process as the role: a permission the procedure's policy grants and
    the role lacks fails the job with an ErrorInfo naming it, and leaves nothing behind."""
    mb = new_mailbox(server)
    fill_maildir(mb.root, {"Inbox": 20}, size=5000)
    env = _setup(server, tmp_path)
    doc = json.loads(permission_policy(env["bucket"], PREFIX, env["key_arn"]))
    for statement in doc["Statement"]:
        statement["Action"] = [a for a in statement["Action"] if a != drop]
    server.client("iam").put_role_policy(
        RoleName=env["role_arn"].rsplit("/", 1)[1], PolicyName="MailboxExport", PolicyDocument=json.dumps(doc)
    )
    info = _failed(server, mb, _start(server, mb, env))
    if drop == "s3:PutObject":
        assert info.startswith(f"Access denied for CreateMultipartUpload on bucket {env['bucket']} as role")
    else:
        assert info.startswith(f"S3 could not use the KMS key {env['key_arn']} for the export (AccessDenied")
        assert "needs kms:GenerateDataKey and kms:Decrypt" in info
    assert drop in info
    no_leftovers(server.client("s3"), env["bucket"], PREFIX)


def test_key_policy_refusing_the_role_fails_the_job(server: MailcrateServer, tmp_path: Path) -> None:
    """The export's in-process writes take the one road: a key policy that names only the
    account's root user (not the account, so the role's permission policy does not count; "Key
    policies in AWS KMS") refuses the role's SSE-KMS data key, the job fails naming the key
    policy, and nothing is left behind."""
    mb = new_mailbox(server)
    fill_maildir(mb.root, {"Inbox": 5}, size=2000)
    env = _setup(server, tmp_path)
    root = f"arn:aws:iam::{server.account_id}:root"
    only_root = {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Principal": {"AWS": root}, "Action": "kms:*", "Resource": "*",
             "Condition": {"StringEquals": {"aws:PrincipalType": "Account"}}},
        ],
    }  # fmt: skip
    server.client("kms").put_key_policy(
        KeyId=env["key_arn"], PolicyName="default", Policy=json.dumps(only_root)
    )
    info = _failed(server, mb, _start(server, mb, env))
    assert info.startswith(f"S3 could not use the KMS key {env['key_arn']} for the export (AccessDenied")
    assert "no resource-based policy allows the kms:GenerateDataKey action" in info
    no_leftovers(server.client("s3"), env["bucket"], PREFIX)


def test_start_errors_without_role(server: MailcrateServer, tmp_path: Path) -> None:
    """Checks that need no role answer Start itself with the model's errors."""
    mb = new_mailbox(server)
    env = _setup(server, tmp_path)
    wm = server.client("workmail")
    base = {
        "OrganizationId": mb.organization_id,
        "EntityId": mb.user_id,
        "RoleArn": env["role_arn"],
        "KmsKeyArn": env["key_arn"],
        "S3BucketName": env["bucket"],
        "S3Prefix": PREFIX,
    }

    def code(**change: str) -> str:
        try:
            wm.start_mailbox_export_job(**{**base, **change})
        except wm.exceptions.ClientError as exc:
            return exc.response["Error"]["Code"]
        raise AssertionError("Start succeeded")

    assert code(EntityId="nobody") == "EntityNotFoundException"
    assert code(KmsKeyArn=env["key_arn"].replace("us-east-1", "eu-west-1")) == "InvalidParameterException"
    assert code(OrganizationId="m-" + "0" * 32) == "OrganizationNotFoundException"
    disabled = wm.create_user(
        OrganizationId=mb.organization_id, Name="bob", DisplayName="Bob", Password="Corr3ct-Horse"
    )["UserId"]
    assert code(EntityId=disabled) == "InvalidParameterException"
    # Through the CLI too: a failing Start prints the service's error.
    result = server.aws(
        "workmail",
        "start-mailbox-export-job",
        "--organization-id",
        mb.organization_id,
        "--entity-id",
        "nobody",
        "--kms-key-arn",
        env["key_arn"],
        "--role-arn",
        env["role_arn"],
        "--s3-bucket-name",
        env["bucket"],
        "--s3-prefix",
        PREFIX,
        check=False,
    )
    assert result.returncode != 0 and "EntityNotFoundException" in result.stderr
    time.sleep(0)  # nothing started: nothing to wait for


def test_restart_mid_export_resumes_and_completes(tmp_path: Path) -> None:
    """SIGTERM during an export: the job is given back, the restarted server finishes it, and
    the interrupted attempt's multipart upload is aborted."""
    srv = MailcrateServer.launch(tmp_path / "data", "--export-part-size-mib", "5")
    try:
        mb = new_mailbox(srv)
        fill_bulk(mb.root, 300 << 20)
        env = _setup(srv, tmp_path)
        job_id = _start(srv, mb, env)
        wm = srv.client("workmail")
        deadline = time.monotonic() + 60
        while (
            wm.describe_mailbox_export_job(OrganizationId=mb.organization_id, JobId=job_id)[
                "EstimatedProgress"
            ]
            < 10
        ):
            assert time.monotonic() < deadline
            time.sleep(0.05)
        srv.restart()
        job = wait_job(srv.client("workmail"), mb.organization_id, job_id, timeout=120)
        assert job["State"] == "COMPLETED", job.get("ErrorInfo")
        assert srv.client("s3").list_multipart_uploads(Bucket=env["bucket"]).get("Uploads", []) == []
        zip_path = _download(srv, env["bucket"], job["S3Path"], tmp_path / "export.zip")
        log_path = _download(srv, env["bucket"], f"{PREFIX}/{job_id}.json", tmp_path / "export.json")
        check_export(zip_path, log_path, mb)
    finally:
        srv.stop()


def test_parts_go_in_process_and_nothing_is_stored_in_the_clear(tmp_path: Path) -> None:
    """The worker writes the parts straight into the embedded S3 (no S3 write reaches the
    server's HTTP side), the user downloads and checks the export with the aws CLI as before,
    and no mail bytes lie unencrypted in the data directory outside the mailbox store."""
    with MailcrateServer.running(
        tmp_path / "data", "--export-part-size-mib", "5", "--log-level", "info"
    ) as srv:
        mb = new_mailbox(srv)
        fill_maildir(mb.root, {"Inbox": 60, "Sent Items": 10}, size=20_000)
        add_big_item(mb.root, 12 << 20, random_data=True)  # stored, not deflated: raw in the zip
        env = _setup(srv, tmp_path)
        job_id = _start(srv, mb, env)
        job = wait_job(srv.client("workmail"), mb.organization_id, job_id)
        assert job["State"] == "COMPLETED", job.get("ErrorInfo")
        zip_path = _download(srv, env["bucket"], job["S3Path"], tmp_path / "export.zip")
        log_path = _download(srv, env["bucket"], f"{PREFIX}/{job_id}.json", tmp_path / "export.json")
        manifest = check_export(zip_path, log_path, mb)
        assert len(manifest.items) == 71

        assert srv.log_path is not None
        served = srv.log_path.read_text()
        assert f"job {job_id} completed" in served
        assert "s3.GetObject -> 200" in served  # request lines are logged: the download's are there
        for operation in ("CreateMultipartUpload", "UploadPart", "CompleteMultipartUpload", "PutObject"):
            assert f"s3.{operation} ->" not in served, operation

        big = next(mb.root.rglob("1800000000.Mbig*")).read_bytes()
        samples = [big[offset : offset + 64] for offset in (200_000, 5 << 20, 11 << 20)]
        mailboxes = srv.data_dir / "mailboxes"
        scanned = 0
        for path in srv.data_dir.rglob("*"):
            if path.is_file() and mailboxes not in path.parents:
                data = path.read_bytes()
                scanned += len(data)
                assert not any(sample in data for sample in samples), path
        assert scanned > 12 << 20  # the encrypted object is among the files scanned
