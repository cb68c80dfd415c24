"""``mailcrate export setup`` against moto's server as the AWS stand-in: it creates the
prerequisites, a second run reports them already fine, and what is wrong is reported with a
fix that, run verbatim with the aws CLI, makes it fine."""

from __future__ import annotations

import json
import shlex
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cli.support import no_aws_env, run
from tests.jobs.support import MotoServer, start_moto
from tests.support.mailcrate_server import BIN


@pytest.fixture(scope="module")
def moto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoServer]:
    server = start_moto(tmp_path_factory.mktemp("moto"))
    yield server
    server.stop()


def _env(moto: MotoServer) -> dict[str, str]:
    return no_aws_env(
        AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing", AWS_ENDPOINT_URL=moto.endpoint
    )


def _setup(moto: MotoServer, *extra: str) -> tuple[int, dict]:
    result = run("export", "setup", "--bucket", "exports-moto", "--prefix", "mail/exports", "--output", "json", *extra,
                 env=_env(moto))  # fmt: skip
    assert "Traceback" not in result.stderr, result.stderr
    return result.returncode, json.loads(result.stdout)


def _statuses(report: dict) -> dict[str, str]:
    return {c["name"]: c["status"] for c in report["checks"]}


def test_setup_creates_then_reports_fine(moto: MotoServer, tmp_path: Path) -> None:
    code, first = _setup(moto)
    assert code == 0, first
    assert _statuses(first) == {
        "KMS key": "created",
        "S3 bucket": "created",
        "IAM role": "created",
        "role permission policy": "created",
    }
    account = first["accountId"]
    iam, s3, kms = moto.client("iam"), moto.client("s3"), moto.client("kms")
    role = iam.get_role(RoleName="WorkmailMailboxExportRole")["Role"]
    assert role["AssumeRolePolicyDocument"]["Statement"][0]["Condition"] == {
        "StringEquals": {"sts:ExternalId": account}
    }
    policy = iam.get_role_policy(RoleName="WorkmailMailboxExportRole", PolicyName="MailboxExport")[
        "PolicyDocument"
    ]
    kms_statement = policy["Statement"][1]
    assert kms_statement["Resource"] == [first["kmsKeyArn"]]
    assert kms_statement["Condition"]["StringLike"] == {
        "kms:EncryptionContext:aws:s3:arn": "arn:aws:s3:::exports-moto/mail/exports*"
    }
    assert kms_statement["Condition"]["StringEquals"] == {"kms:ViaService": "s3.us-east-1.amazonaws.com"}
    assert all(s3.get_public_access_block(Bucket="exports-moto")["PublicAccessBlockConfiguration"].values())
    meta = kms.describe_key(KeyId="alias/mailcrate-export")["KeyMetadata"]
    assert meta["KeySpec"] == "SYMMETRIC_DEFAULT" and meta["Arn"] == first["kmsKeyArn"]

    code, second = _setup(moto)
    assert code == 0 and set(_statuses(second).values()) == {"ok"}, second
    assert _statuses(second)["KMS key policy"] == "ok"
    assert second["kmsKeyArn"] == first["kmsKeyArn"] and second["roleArn"] == first["roleArn"]
    assert len(kms.list_keys()["Keys"]) == 1

    # Break things; each is reported WRONG with a fix; running the fixes makes setup fine again.
    s3.delete_public_access_block(Bucket="exports-moto")
    iam.update_assume_role_policy(
        RoleName="WorkmailMailboxExportRole",
        PolicyDocument=json.dumps(
            {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"Service": "export.workmail.amazonaws.com"}, "Action": "sts:AssumeRole"}]}
        ),
    )  # fmt: skip
    kms.disable_key(KeyId=meta["KeyId"])
    code, broken = _setup(moto)
    assert code == 1 and _statuses(broken) == {
        "KMS key": "wrong",
        "S3 bucket": "wrong",
        "IAM role": "wrong",
        "role permission policy": "ok",
        "KMS key policy": "ok",
    }, broken
    text = run("export", "setup", "--bucket", "exports-moto", "--prefix", "mail/exports", env=_env(moto))
    assert text.returncode == 1 and "WRONG" in text.stdout and "without sts:ExternalId" in text.stdout
    for check in broken["checks"]:
        if check["status"] == "wrong":
            for command in check["fix"].split(" && "):
                argv = shlex.split(command)
                assert argv[0] == "aws"
                done = subprocess.run(
                    [str(BIN / "aws"), *argv[1:]], env=_env(moto), capture_output=True, text=True
                )
                assert done.returncode == 0, (command, done.stderr)
    code, fixed = _setup(moto)
    assert code == 0 and set(_statuses(fixed).values()) == {"ok"}, fixed


def test_check_only_creates_nothing(moto: MotoServer) -> None:
    code, report = _setup(moto, "--bucket", "never-created", "--role-name", "NoSuchRole", "--check-only")
    statuses = _statuses(report)
    assert code == 1 and statuses["S3 bucket"] == "wrong" and statuses["IAM role"] == "wrong"
    assert "never-created" not in {b["Name"] for b in moto.client("s3").list_buckets()["Buckets"]}
