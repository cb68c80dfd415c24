"""``mailcrate export setup`` checks the key policy of an existing key, as it checks the role:
"already fine", or WRONG with the command that fixes it ("Key policies in AWS KMS": the key
policy is the first gate, so a role whose permission policy allows the key still cannot use a
key whose policy names someone else or denies it)."""

from __future__ import annotations

import json
import shlex
import subprocess
from typing import Any

from tests.cli.support import run, server_env
from tests.support.mailcrate_server import BIN, MailcrateServer

PREFIX = "exports"


def _setup(server: MailcrateServer, bucket: str, key: str) -> tuple[int, dict[str, Any]]:
    done = run(
        "export", "setup", "--bucket", bucket, "--prefix", PREFIX, "--kms-key", key, "--role-name", f"Role-{bucket}", "--output", "json",
        env=server_env(server),
    )  # fmt: skip
    return done.returncode, json.loads(done.stdout)


def _key_policy_check(report: dict[str, Any]) -> dict[str, Any]:
    return next(c for c in report["checks"] if c["name"] == "KMS key policy")


def _run_fix(server: MailcrateServer, fix: str) -> None:
    argv = shlex.split(fix)
    assert argv[0] == "aws"
    done = subprocess.run([str(BIN / "aws"), *argv[1:]], env=server.aws_env(), capture_output=True, text=True)
    assert done.returncode == 0, (fix, done.stderr)


def test_setup_reports_a_key_policy_that_shuts_the_role_out(server: MailcrateServer) -> None:
    kms = server.client("kms")
    key = kms.create_key(Description="exports")["KeyMetadata"]
    code, first = _setup(server, "setup-kp-1", key["Arn"])
    assert code == 0 and _key_policy_check(first)["status"] == "ok", first
    role_arn = first["roleArn"]

    # A key policy naming only a key administrator: the role's IAM policy no longer counts.
    admin = f"arn:aws:iam::{server.account_id}:root"
    only_admin = {
        "Version": "2012-10-17",
        "Statement": [
            {"Sid": "admin", "Effect": "Allow", "Principal": {"AWS": admin}, "Action": "kms:*", "Resource": "*",
             "Condition": {"StringEquals": {"kms:CallerAccount": "000000000000"}}},
            {"Sid": "me", "Effect": "Allow", "Principal": {"AWS": admin}, "Action": ["kms:GetKeyPolicy", "kms:PutKeyPolicy", "kms:DescribeKey"], "Resource": "*"},
        ],
    }  # fmt: skip
    kms.put_key_policy(KeyId=key["KeyId"], PolicyName="default", Policy=json.dumps(only_admin))
    code, broken = _setup(server, "setup-kp-1", key["Arn"])
    check = _key_policy_check(broken)
    assert code == 1 and check["status"] == "wrong", broken
    assert f"no statement allows kms:GenerateDataKey to {role_arn}" in check["detail"]
    text = run("export", "setup", "--bucket", "setup-kp-1", "--prefix", PREFIX, "--kms-key", key["Arn"],
               "--role-name", "Role-setup-kp-1", env=server_env(server))  # fmt: skip
    assert "KMS key policy" in text.stdout and "WRONG" in text.stdout
    _run_fix(server, check["fix"])
    code, fixed = _setup(server, "setup-kp-1", key["Arn"])
    assert code == 0 and _key_policy_check(fixed)["status"] == "ok", fixed

    # An explicit Deny for the role: reported, and the fix drops that statement.
    current = json.loads(kms.get_key_policy(KeyId=key["KeyId"], PolicyName="default")["Policy"])
    current["Statement"].append(
        {
            "Sid": "no-export",
            "Effect": "Deny",
            "Principal": {"AWS": role_arn},
            "Action": "kms:Decrypt",
            "Resource": "*",
        }
    )
    kms.put_key_policy(KeyId=key["KeyId"], PolicyName="default", Policy=json.dumps(current))
    code, denied = _setup(server, "setup-kp-1", key["Arn"])
    check = _key_policy_check(denied)
    assert code == 1 and f"a Deny statement refuses kms:Decrypt to {role_arn}" in check["detail"], denied
    _run_fix(server, check["fix"])
    code, again = _setup(server, "setup-kp-1", key["Arn"])
    assert code == 0 and _key_policy_check(again)["status"] == "ok", again
    sids = [s.get("Sid") for s in json.loads(kms.get_key_policy(KeyId=key["KeyId"])["Policy"])["Statement"]]
    assert "no-export" not in sids


def test_setup_created_key_has_a_policy_the_role_can_use(server: MailcrateServer) -> None:
    """A key setup creates has AWS's default policy: the account, so the role's IAM policy counts."""
    done = run("export", "setup", "--bucket", "setup-kp-2", "--prefix", PREFIX, "--kms-key", "alias/setup-kp-2",
               "--role-name", "Role-setup-kp-2", "--output", "json", env=server_env(server))  # fmt: skip
    report = json.loads(done.stdout)
    assert done.returncode == 0, report
    policy = json.loads(server.client("kms").get_key_policy(KeyId=report["kmsKeyArn"])["Policy"])
    assert policy["Statement"][0]["Principal"] == {"AWS": f"arn:aws:iam::{server.account_id}:root"}
    code, second = _setup(server, "setup-kp-2", "alias/setup-kp-2")
    assert code == 0 and _key_policy_check(second)["status"] == "ok", second
