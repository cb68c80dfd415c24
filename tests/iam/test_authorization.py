"""Authorization of every call by identity policies (IAM users, role sessions), STS AssumeRole for
AWS principals, and temporary credentials that stop working when they expire."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
from botocore.exceptions import ClientError

from mailcrate.datadir import DataDir
from mailcrate.services.iam import roles
from mailcrate.services.sts.sessions import issue_credentials
from tests.iam.support import allow, deny, policy, signed_form, user_with_policy
from tests.support.mailcrate_server import ACCOUNT_ID, MailcrateServer


def _error(call: Any, **kwargs: Any) -> tuple[str, int]:
    with pytest.raises(ClientError) as caught:
        call(**kwargs)
    response = caught.value.response
    return response["Error"]["Code"], response["ResponseMetadata"]["HTTPStatusCode"]


def _session_clients(server: MailcrateServer, creds: dict[str, Any], *services: str) -> list[Any]:
    return [
        server.client(
            s,
            access_key_id=creds["AccessKeyId"],
            secret_access_key=creds["SecretAccessKey"],
            session_token=creds["SessionToken"],
        )
        for s in services
    ]


@pytest.fixture(scope="module")
def data_dir(server: MailcrateServer) -> Iterator[DataDir]:
    handle = DataDir.open(server.data_dir)
    yield handle
    handle.close()


def test_list_only_user_lists_organizations_but_cannot_create(server: MailcrateServer) -> None:
    creds = user_with_policy(server, "lister", policy(allow("workmail:List*")))
    server.client("workmail").create_organization(Alias="authz-org-1")
    workmail = server.client("workmail", **creds)
    aliases = [o["Alias"] for o in workmail.list_organizations()["OrganizationSummaries"]]
    assert "authz-org-1" in aliases
    assert _error(workmail.create_organization, Alias="authz-org-2") == ("AccessDeniedException", 400)
    # The aws CLI sees the same.
    env = server.aws_env(
        AWS_ACCESS_KEY_ID=creds["access_key_id"], AWS_SECRET_ACCESS_KEY=creds["secret_access_key"]
    )
    assert server.aws("workmail", "list-organizations", env=env)["OrganizationSummaries"]
    denied = server.aws("workmail", "create-organization", "--alias", "authz-org-3", env=env, check=False)
    assert denied.returncode != 0 and "AccessDeniedException" in denied.stderr
    # Nor may it touch IAM: the query protocol's AccessDenied, 403.
    assert _error(server.client("iam", **creds).list_roles) == ("AccessDenied", 403)


def test_user_without_policies_is_denied_everything_but_who_am_i(server: MailcrateServer) -> None:
    creds = user_with_policy(server, "nobody", None)
    assert _error(server.client("workmail", **creds).list_organizations) == ("AccessDeniedException", 400)
    assert (
        server.client("sts", **creds).get_caller_identity()["Arn"] == f"arn:aws:iam::{ACCOUNT_ID}:user/nobody"
    )


def test_policy_changes_take_effect_on_the_next_request(server: MailcrateServer) -> None:
    iam = server.client("iam")
    creds = user_with_policy(server, "changing", None)
    workmail = server.client("workmail", **creds)
    assert _error(workmail.list_organizations)[0] == "AccessDeniedException"
    iam.put_user_policy(
        UserName="changing", PolicyName="p", PolicyDocument=policy(allow("workmail:ListOrganizations"))
    )
    workmail.list_organizations()
    iam.put_user_policy(UserName="changing", PolicyName="q", PolicyDocument=policy(deny("workmail:*")))
    assert _error(workmail.list_organizations)[0] == "AccessDeniedException"  # explicit deny wins
    iam.delete_user_policy(UserName="changing", PolicyName="q")
    workmail.list_organizations()
    iam.delete_user_policy(UserName="changing", PolicyName="p")
    assert _error(workmail.list_organizations)[0] == "AccessDeniedException"


def test_resource_arns_paths_variables_and_source_ip(server: MailcrateServer) -> None:
    iam = server.client("iam")
    trust = policy({"Effect": "Allow", "Principal": {"AWS": ACCOUNT_ID}, "Action": "sts:AssumeRole"})
    iam.create_role(RoleName="Visible", Path="/app/", AssumeRolePolicyDocument=trust)
    iam.create_role(RoleName="Hidden", AssumeRolePolicyDocument=trust)
    creds = user_with_policy(
        server,
        "scoped",
        policy(
            allow("iam:GetRole", f"arn:aws:iam::{ACCOUNT_ID}:role/app/*"),
            allow("iam:GetUser", f"arn:aws:iam::{ACCOUNT_ID}:user/${{aws:username}}"),
            allow("iam:ListRoles", "*", Condition={"IpAddress": {"aws:SourceIp": "127.0.0.0/8"}}),
            allow("iam:ListUsers", "*", Condition={"IpAddress": {"aws:SourceIp": "10.0.0.0/8"}}),
            allow("iam:ListRolePolicies", "*", Condition={"Bool": {"aws:SecureTransport": "true"}}),
        ),
    )
    scoped = server.client("iam", **creds)
    assert scoped.get_role(RoleName="Visible")["Role"]["Path"] == "/app/"
    assert _error(scoped.get_role, RoleName="Hidden") == ("AccessDenied", 403)
    assert scoped.get_user(UserName="scoped")["User"]["UserName"] == "scoped"
    assert _error(scoped.get_user, UserName="nobody")[0] == "AccessDenied"
    scoped.list_roles()
    assert _error(scoped.list_users)[0] == "AccessDenied"
    assert _error(scoped.list_role_policies, RoleName="Visible")[0] == "AccessDenied"  # plain http


@pytest.fixture(scope="module")
def worker_role(server: MailcrateServer) -> str:
    """A role users of this account may assume, whose sessions may only list WorkMail."""
    iam = server.client("iam")
    trust = policy(
        {
            "Effect": "Allow",
            "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT_ID}:root"},
            "Action": "sts:AssumeRole",
        },
        {
            "Effect": "Deny",
            "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT_ID}:user/banned"},
            "Action": "sts:AssumeRole",
        },
    )
    arn = iam.create_role(RoleName="Worker", AssumeRolePolicyDocument=trust, MaxSessionDuration=7200)["Role"][
        "Arn"
    ]
    iam.put_role_policy(RoleName="Worker", PolicyName="list", PolicyDocument=policy(allow("workmail:List*")))
    return arn


def test_root_assumes_a_role_and_the_session_has_the_roles_permissions(
    server: MailcrateServer, worker_role: str
) -> None:
    out = server.client("sts").assume_role(RoleArn=worker_role, RoleSessionName="s1", DurationSeconds=900)
    creds = out["Credentials"]
    assert creds["AccessKeyId"].startswith("ASIA")
    lifetime = creds["Expiration"].timestamp() - time.time()
    assert 880 < lifetime <= 900
    assert out["AssumedRoleUser"]["Arn"] == f"arn:aws:sts::{ACCOUNT_ID}:assumed-role/Worker/s1"
    sts, workmail, iam = _session_clients(server, creds, "sts", "workmail", "iam")
    assert sts.get_caller_identity()["Arn"] == out["AssumedRoleUser"]["Arn"]
    workmail.list_organizations()
    assert _error(workmail.create_organization, Alias="by-session") == ("AccessDeniedException", 400)
    assert _error(iam.list_roles) == ("AccessDenied", 403)
    # Without the token, or with a wrong one, the key is not accepted.
    bare = server.client(
        "sts", access_key_id=creds["AccessKeyId"], secret_access_key=creds["SecretAccessKey"]
    )
    assert _error(bare.get_caller_identity) == ("InvalidClientTokenId", 403)
    forged = server.client(
        "sts",
        access_key_id=creds["AccessKeyId"],
        secret_access_key=creds["SecretAccessKey"],
        session_token=creds["SessionToken"] + "x",
    )
    assert _error(forged.get_caller_identity) == ("InvalidClientTokenId", 403)


def test_role_policy_changes_reach_live_sessions(server: MailcrateServer, worker_role: str) -> None:
    creds = server.client("sts").assume_role(RoleArn=worker_role, RoleSessionName="s2")["Credentials"]
    (workmail,) = _session_clients(server, creds, "workmail")
    iam = server.client("iam")
    iam.put_role_policy(RoleName="Worker", PolicyName="deny", PolicyDocument=policy(deny("workmail:*")))
    try:
        assert _error(workmail.list_organizations)[0] == "AccessDeniedException"
    finally:
        iam.delete_role_policy(RoleName="Worker", PolicyName="deny")
    workmail.list_organizations()


def test_user_needs_both_identity_and_trust_permission(server: MailcrateServer, worker_role: str) -> None:
    without = user_with_policy(server, "cannot-assume", policy(allow("workmail:List*")))
    assert _error(server.client("sts", **without).assume_role, RoleArn=worker_role, RoleSessionName="x1") == (
        "AccessDenied",
        403,
    )
    may = user_with_policy(server, "may-assume", policy(allow("sts:AssumeRole", worker_role)))
    out = server.client("sts", **may).assume_role(RoleArn=worker_role, RoleSessionName="x2")
    assert out["AssumedRoleUser"]["AssumedRoleId"].endswith(":x2")
    banned = user_with_policy(server, "banned", policy(allow("sts:AssumeRole")))
    assert _error(server.client("sts", **banned).assume_role, RoleArn=worker_role, RoleSessionName="x3")[
        0
    ] == ("AccessDenied")
    other_account = "arn:aws:iam::999988887777:role/Worker"
    assert (
        _error(server.client("sts").assume_role, RoleArn=other_account, RoleSessionName="x4")[0]
        == "AccessDenied"
    )


def test_assume_role_checks_the_trusting_external_id(server: MailcrateServer) -> None:
    iam = server.client("iam")
    trust = policy(
        {
            "Effect": "Allow",
            "Principal": {"AWS": ACCOUNT_ID},
            "Action": "sts:AssumeRole",
            "Condition": {"StringEquals": {"sts:ExternalId": "secret-42"}},
        }
    )
    arn = iam.create_role(RoleName="WithExternalId", AssumeRolePolicyDocument=trust)["Role"]["Arn"]
    sts = server.client("sts")
    assert sts.assume_role(RoleArn=arn, RoleSessionName="e1", ExternalId="secret-42")["Credentials"]
    assert (
        _error(sts.assume_role, RoleArn=arn, RoleSessionName="e2", ExternalId="secret-43")[0]
        == "AccessDenied"
    )
    assert _error(sts.assume_role, RoleArn=arn, RoleSessionName="e3")[0] == "AccessDenied"


def test_assume_role_input_errors(server: MailcrateServer, worker_role: str) -> None:
    sts = server.client("sts")
    assert _error(sts.assume_role, RoleArn=worker_role, RoleSessionName="d1", DurationSeconds=9000) == (
        "ValidationError",
        400,
    )
    assert _error(sts.assume_role, RoleArn=worker_role, RoleSessionName="bad name") == (
        "ValidationError",
        400,
    )
    # A session policy must be a valid identity policy (STS's MalformedPolicyDocument).
    assert _error(
        sts.assume_role, RoleArn=worker_role, RoleSessionName="p1", Policy='{"Version": "2012-10-17"}'
    ) == ("MalformedPolicyDocument", 400)
    lax = server.client("sts", parameter_validation=False)
    assert (
        _error(lax.assume_role, RoleArn=worker_role, RoleSessionName="d2", DurationSeconds=60)[0]
        == "ValidationError"
    )
    # Role chaining is limited to one hour.
    creds = sts.assume_role(RoleArn=worker_role, RoleSessionName="c1")["Credentials"]
    chained = server.client("iam").put_role_policy(
        RoleName="Worker", PolicyName="chain", PolicyDocument=policy(allow("sts:AssumeRole", worker_role))
    )
    assert chained["ResponseMetadata"]["HTTPStatusCode"] == 200
    try:
        (session_sts,) = _session_clients(server, creds, "sts")
        assert _error(
            session_sts.assume_role, RoleArn=worker_role, RoleSessionName="c2", DurationSeconds=7200
        )[0] == ("ValidationError")
        # The trust policy trusts the account, which includes the account's role sessions.
        assert session_sts.assume_role(RoleArn=worker_role, RoleSessionName="c3")["Credentials"]
    finally:
        server.client("iam").delete_role_policy(RoleName="Worker", PolicyName="chain")


def test_temporary_credentials_stop_working_after_expiry(
    server: MailcrateServer, worker_role: str, data_dir: DataDir
) -> None:
    """Credentials minted in-process with a 6-second life (the API's floor is 900 s).

    Six seconds, not fewer: on a loaded CI machine the two calls that must succeed have taken
    over two seconds, and an expiry before them is not what this test is about.
    """
    with data_dir.db.begin() as conn:
        role = roles.find_by_arn(conn, worker_role)
        assert role is not None
        creds = issue_credentials(conn, data_dir, role, "short", 6, source="test")["Credentials"]
    sts, workmail = _session_clients(server, creds, "sts", "workmail")
    sts.get_caller_identity()
    workmail.list_organizations()
    time.sleep(max(0.0, creds["Expiration"].timestamp() - time.time()) + 0.2)
    assert _error(sts.get_caller_identity) == ("ExpiredToken", 403)
    assert _error(workmail.list_organizations) == ("ExpiredTokenException", 403)


def test_raw_expired_token_body(server: MailcrateServer, worker_role: str, data_dir: DataDir) -> None:
    with data_dir.db.begin() as conn:
        role = roles.find_by_arn(conn, worker_role)
        assert role is not None
        creds = issue_credentials(conn, data_dir, role, "gone", -1, source="test")["Credentials"]
    response = signed_form(
        server,
        {"Action": "GetCallerIdentity", "Version": "2011-06-15"},
        service="sts",
        access_key_id=creds["AccessKeyId"],
        secret_access_key=creds["SecretAccessKey"],
        session_token=creds["SessionToken"],
    )
    assert response.status_code == 403 and "<Code>ExpiredToken</Code>" in response.text
    assert "<Type>Sender</Type>" in response.text and json.dumps(creds["SessionToken"]) not in response.text
