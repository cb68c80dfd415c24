"""Errors a person understands: one line and a hint, never a traceback (``--debug`` shows it)."""

from __future__ import annotations

import json
import uuid

from tests.cli.support import no_aws_env, one_line_error, run, server_env
from tests.jobs.support import new_mailbox
from tests.servers.net import free_port
from tests.support.mailcrate_server import MailcrateServer

ORG = "m-" + "1" * 32


def test_endpoint_down() -> None:
    port = free_port()
    env = no_aws_env(AWS_ACCESS_KEY_ID="AKIAEXAMPLEEXAMPLE12", AWS_SECRET_ACCESS_KEY="x" * 40)
    result = run(
        "export", "list", "--organization-id", ORG, "--endpoint-url", f"http://127.0.0.1:{port}", env=env
    )
    error, hint = one_line_error(result)
    assert f"cannot reach http://127.0.0.1:{port}" in error
    assert "mailcrate serve" in hint and "--endpoint-url" in hint


def test_missing_credentials(server: MailcrateServer) -> None:
    result = run("export", "describe", "some-job", "--organization-id", ORG, "--endpoint-url", server.endpoint,
                 env=no_aws_env())  # fmt: skip
    error, hint = one_line_error(result)
    assert error == "error: no AWS credentials found"
    assert "AWS_ACCESS_KEY_ID" in hint and "mailcrate init" in hint


def test_wrong_credentials(server: MailcrateServer) -> None:
    env = server_env(server, AWS_SECRET_ACCESS_KEY="not-the-secret-" + "x" * 25)
    error, hint = one_line_error(run("export", "list", "--organization-id", ORG, env=env))
    assert "credentials were rejected" in error and "AWS_SECRET_ACCESS_KEY" in hint


def test_unknown_job_and_organization(server: MailcrateServer) -> None:
    mb = new_mailbox(server)
    env = server_env(server)
    missing = str(uuid.uuid4())
    error, hint = one_line_error(
        run("export", "describe", missing, "--organization-id", mb.organization_id, env=env)
    )
    assert "no such export job" in error and "mailcrate export list" in hint
    error, hint = one_line_error(
        run("export", "wait", missing, "--organization-id", mb.organization_id, env=env)
    )
    assert "no such export job" in error
    error, hint = one_line_error(run("export", "list", "--organization-id", "m-" + "0" * 32, env=env))
    assert "organization not found" in error and "list-organizations" in hint


def test_no_permission(server: MailcrateServer) -> None:
    """An IAM user that may only list WorkMail gets a clear denial for starting an export."""
    mb = new_mailbox(server)
    iam = server.client("iam")
    name = "lister-" + uuid.uuid4().hex[:6]
    iam.create_user(UserName=name)
    iam.put_user_policy(
        UserName=name,
        PolicyName="list-only",
        PolicyDocument=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Effect": "Allow",
                        "Action": ["workmail:List*", "kms:Describe*", "sts:GetCallerIdentity"],
                        "Resource": "*",
                    }
                ],
            }
        ),
    )
    key = iam.create_access_key(UserName=name)["AccessKey"]
    env = server_env(
        server, AWS_ACCESS_KEY_ID=key["AccessKeyId"], AWS_SECRET_ACCESS_KEY=key["SecretAccessKey"]
    )
    listed = run("export", "list", "--organization-id", mb.organization_id, "--output", "json", env=env)
    assert listed.returncode == 0, listed.stderr
    assert json.loads(listed.stdout) == {"Jobs": []}
    kms_key = server.client("kms").create_key()["KeyMetadata"]["Arn"]
    result = run(
        "export", "start", "--organization-id", mb.organization_id, "--entity-id", mb.user_id, "--bucket", "b",
        "--prefix", "p", "--kms-key", kms_key, "--role", f"arn:aws:iam::{server.account_id}:role/r", env=env,
    )  # fmt: skip
    error, hint = one_line_error(result)
    assert "StartMailboxExportJob was denied" in error
    assert "allow" in hint


def test_debug_shows_the_traceback() -> None:
    port = free_port()
    env = no_aws_env(AWS_ACCESS_KEY_ID="AKIAEXAMPLEEXAMPLE12", AWS_SECRET_ACCESS_KEY="x" * 40)
    args = ("export", "list", "--organization-id", ORG, "--endpoint-url", f"http://127.0.0.1:{port}")
    result = run(*args, "--debug", env=env)
    assert (
        result.returncode != 0 and "Traceback" in result.stderr and "EndpointConnectionError" in result.stderr
    )
    result = run(*args, env={**env, "MAILCRATE_DEBUG": "1"})
    assert "Traceback" in result.stderr


def test_invalid_parameter(server: MailcrateServer) -> None:
    error, _hint = one_line_error(run("export", "list", "--organization-id", "m-x", env=server_env(server)))
    assert "invalid parameter" in error and "OrganizationId" in error


def test_usage_errors_stay_click_errors(tmp_path) -> None:
    result = run("export", "restore", str(tmp_path), env=no_aws_env())
    assert result.returncode == 2 and "Traceback" not in result.stderr
