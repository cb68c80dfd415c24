"""The access matrix of IAM's side of AWS's access model, against a real ``mailcrate serve`` with
boto3: managed policies, permissions boundaries, session policies and the global condition keys
AWS fills, each in Allow and in Deny, with and without ``...IfExists``.

Each case is named after the AWS rule it checks; the page stating the rule is in the comment
above it. A case creates its own caller (an IAM user, or a session of a role assumed by the
account root) with the given policies, makes one call and checks it is allowed or refused.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.iam.support import allow, deny, policy
from tests.support.mailcrate_server import ACCOUNT_ID, MailcrateServer

EVALUATION = "https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_evaluation-logic.html"
KEYS = "https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_condition-keys.html"
IF_EXISTS = (
    "https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_condition_operators.html"
    "#Conditions_IfExists"
)
NULL = (
    "https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_condition_operators.html"
    "#Conditions_Null"
)
BOUNDARIES = "https://docs.aws.amazon.com/IAM/latest/UserGuide/access_policies_boundaries.html"
SESSION = "https://docs.aws.amazon.com/IAM/latest/UserGuide/access_policies.html#policies_session"
MANAGED = "https://docs.aws.amazon.com/IAM/latest/UserGuide/access_policies_managed-vs-inline.html"
TAGS = "https://docs.aws.amazon.com/IAM/latest/UserGuide/access_iam-tags.html"

LIST = "workmail:ListOrganizations"
_names = itertools.count()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MailcrateServer]:
    with MailcrateServer.running(tmp_path_factory.mktemp("matrix") / "data", "--export-workers", "0") as srv:
        srv.client("iam").create_role(
            RoleName="tagged-target",
            AssumeRolePolicyDocument=_trust(),
            Tags=[{"Key": "stage", "Value": "prod"}],
        )
        for name in ("DelegatedBoundary", "Attachable"):
            srv.client("iam").create_policy(PolicyName=name, PolicyDocument=policy(allow("s3:GetObject")))
        yield srv


def _trust() -> str:
    return policy({"Effect": "Allow", "Principal": {"AWS": ACCOUNT_ID}, "Action": "sts:AssumeRole"})


@dataclass(frozen=True)
class Case:
    """Who calls (``user`` tagged team=blue, or ``session`` of a role tagged team=red) with which
    identity policies, boundary, session policy and managed policies; what it calls; the answer."""

    statements: tuple[dict[str, Any], ...]
    allowed: bool
    who: str = "user"
    probe: str = "list"  # list | list-eu | get-role | create-tagged-role | list-iam-eu
    boundary: tuple[dict[str, Any], ...] | None = None
    session_policy: tuple[dict[str, Any], ...] | None = None
    managed: tuple[dict[str, Any], ...] | None = None
    session_tags: tuple[dict[str, str], ...] = field(default=())


def _caller(server: MailcrateServer, case: Case) -> dict[str, Any]:
    iam = server.client("iam")
    n = next(_names)
    boundary = None
    if case.boundary is not None:
        boundary = iam.create_policy(PolicyName=f"boundary-{n}", PolicyDocument=policy(*case.boundary))[
            "Policy"
        ]["Arn"]
    extra = {"PermissionsBoundary": boundary} if boundary else {}
    if case.who == "user":
        name = f"matrix-user-{n}"
        iam.create_user(UserName=name, Tags=[{"Key": "team", "Value": "blue"}], **extra)
        if case.statements:
            iam.put_user_policy(UserName=name, PolicyName="p", PolicyDocument=policy(*case.statements))
        if case.managed is not None:
            arn = iam.create_policy(PolicyName=f"managed-{n}", PolicyDocument=policy(*case.managed))[
                "Policy"
            ]["Arn"]
            iam.attach_user_policy(UserName=name, PolicyArn=arn)
        key = iam.create_access_key(UserName=name)["AccessKey"]
        return {"access_key_id": key["AccessKeyId"], "secret_access_key": key["SecretAccessKey"]}
    name = f"matrix-role-{n}"
    trust = policy(
        {"Effect": "Allow", "Principal": {"AWS": ACCOUNT_ID}, "Action": ["sts:AssumeRole", "sts:TagSession"]}
    )
    arn = iam.create_role(
        RoleName=name, AssumeRolePolicyDocument=trust, Tags=[{"Key": "team", "Value": "red"}], **extra
    )["Role"]["Arn"]
    if case.statements:
        iam.put_role_policy(RoleName=name, PolicyName="p", PolicyDocument=policy(*case.statements))
    if case.managed is not None:
        managed = iam.create_policy(PolicyName=f"managed-{n}", PolicyDocument=policy(*case.managed))["Policy"]
        iam.attach_role_policy(RoleName=name, PolicyArn=managed["Arn"])
    params: dict[str, Any] = {"RoleArn": arn, "RoleSessionName": f"matrix-session-{n}"}
    if case.session_policy is not None:
        params["Policy"] = policy(*case.session_policy)
    if case.session_tags:
        params["Tags"] = list(case.session_tags)
    creds = server.client("sts").assume_role(**params)["Credentials"]
    return {
        "access_key_id": creds["AccessKeyId"],
        "secret_access_key": creds["SecretAccessKey"],
        "session_token": creds["SessionToken"],
    }


PROBES: dict[str, Callable[[MailcrateServer, dict[str, Any]], Any]] = {
    "list": lambda s, c: s.client("workmail", **c).list_organizations(),
    "list-eu": lambda s, c: s.client("workmail", region="eu-west-1", **c).list_organizations(),
    "get-role": lambda s, c: s.client("iam", **c).get_role(RoleName="tagged-target"),
    "list-iam-eu": lambda s, c: s.client("iam", region="eu-west-1", **c).list_roles(),
    "create-bounded-role": lambda s, c: s.client("iam", **c).create_role(
        RoleName=f"bounded-{next(_names)}",
        AssumeRolePolicyDocument=_trust(),
        PermissionsBoundary=BOUNDARY_ARN,
    ),
    "attach": lambda s, c: s.client("iam", **c).attach_role_policy(
        RoleName="tagged-target", PolicyArn=ATTACHABLE_ARN
    ),
    "create-tagged-role": lambda s, c: s.client("iam", **c).create_role(
        RoleName=f"made-{next(_names)}",
        AssumeRolePolicyDocument=_trust(),
        Tags=[{"Key": "cost", "Value": "42"}],
    ),
}


def _allowed(server: MailcrateServer, case: Case) -> bool:
    creds = _caller(server, case)
    try:
        PROBES[case.probe](server, creds)
    except ClientError as exc:
        assert exc.response["Error"]["Code"] in ("AccessDenied", "AccessDeniedException"), exc.response
        return False
    return True


def cond(operator: str, key: str, value: Any) -> dict[str, Any]:
    return {"Condition": {operator: {key: value}}}


USER_ARN = f"arn:aws:iam::{ACCOUNT_ID}:user/matrix-user-*"
BOUNDARY_ARN = f"arn:aws:iam::{ACCOUNT_ID}:policy/DelegatedBoundary"
ATTACHABLE_ARN = f"arn:aws:iam::{ACCOUNT_ID}:policy/Attachable"
DELEGATION = "https://docs.aws.amazon.com/IAM/latest/UserGuide/access_policies_boundaries.html#access_policies_boundaries-delegate"

CASES: dict[str, Case] = {
    # --- evaluation logic: managed policies, boundaries, session policies ---------------------
    # EVALUATION: an explicit deny in any policy overrides any allow.
    "explicit_deny_in_a_managed_policy_overrides_an_inline_allow": Case(
        (allow(LIST),), False, managed=(deny(LIST),)
    ),
    # MANAGED: an attached managed policy grants what it allows.
    "attached_managed_policy_grants_its_permissions": Case((), True, managed=(allow("workmail:*"),)),
    # MANAGED: a role session gets the managed policies attached to its role.
    "role_session_gets_the_managed_policies_of_its_role": Case(
        (), True, who="session", managed=(allow(LIST),)
    ),
    # EVALUATION: without any allow the request is implicitly denied.
    "no_allow_is_an_implicit_deny": Case((allow("s3:ListAllMyBuckets"),), False),
    # BOUNDARIES: effective permissions are the intersection of identity policy and boundary.
    "boundary_narrows_identity_policy": Case((allow("workmail:*"),), False, boundary=(allow("s3:*"),)),
    "boundary_and_identity_both_allow": Case((allow(LIST),), True, boundary=(allow("workmail:List*"),)),
    # BOUNDARIES: a boundary alone grants nothing.
    "boundary_alone_grants_nothing": Case((), False, boundary=(allow("*"),)),
    # BOUNDARIES: an explicit deny in the boundary wins.
    "explicit_deny_in_boundary_wins": Case((allow(LIST),), False, boundary=(allow("*"), deny(LIST))),
    # BOUNDARIES: a role's boundary limits its sessions.
    "role_boundary_limits_its_sessions": Case(
        (allow("workmail:*"),), False, who="session", boundary=(allow("s3:*"),)
    ),
    # SESSION: session permissions are the intersection of the role's policies and session policies.
    "session_policy_narrows_the_role": Case(
        (allow("workmail:*"),), False, who="session", session_policy=(allow("s3:*"),)
    ),
    # SESSION: session policies cannot grant more than the role's identity policies allow.
    "session_policy_cannot_widen_the_role": Case(
        (allow("s3:*"),), False, who="session", session_policy=(allow("*"),)
    ),
    "session_policy_and_role_both_allow": Case(
        (allow(LIST),), True, who="session", session_policy=(allow("workmail:*"),)
    ),
    # --- principal keys ------------------------------------------------------------------------
    # KEYS aws:PrincipalArn: the caller's ARN (a user's own).
    "principal_arn_allow_matches_the_user": Case(
        (allow(LIST, **cond("ArnLike", "aws:PrincipalArn", USER_ARN)),), True
    ),
    "principal_arn_deny_on_the_user": Case(
        (allow(LIST), deny(LIST, **cond("ArnLike", "aws:PrincipalArn", USER_ARN))), False
    ),
    # KEYS aws:PrincipalArn: for a role session, the role's ARN (not the session's).
    "principal_arn_of_a_session_is_its_role": Case(
        (
            allow(
                LIST, **cond("ArnLike", "aws:PrincipalArn", f"arn:aws:iam::{ACCOUNT_ID}:role/matrix-role-*")
            ),
        ),
        True,
        who="session",
    ),
    # KEYS aws:PrincipalAccount.
    "principal_account_allow": Case(
        (allow(LIST, **cond("StringEquals", "aws:PrincipalAccount", ACCOUNT_ID)),), True
    ),
    "principal_account_deny_other_account": Case(
        (allow(LIST), deny(LIST, **cond("StringNotEquals", "aws:PrincipalAccount", ACCOUNT_ID))), True
    ),
    # KEYS aws:PrincipalType: User / AssumedRole.
    "principal_type_user": Case((allow(LIST, **cond("StringEquals", "aws:PrincipalType", "User")),), True),
    "principal_type_deny_assumed_role": Case(
        (allow(LIST), deny(LIST, **cond("StringEquals", "aws:PrincipalType", "AssumedRole"))),
        False,
        who="session",
    ),
    # KEYS aws:userid: a user's unique id (AIDA...), a session's ROLEID:session-name.
    "userid_of_a_user_is_its_unique_id": Case(
        (allow(LIST, **cond("StringLike", "aws:userid", "AIDA*")),), True
    ),
    "userid_of_a_session_is_roleid_colon_session": Case(
        (allow(LIST, **cond("StringLike", "aws:userid", "AROA*:matrix-session-*")),), True, who="session"
    ),
    # KEYS aws:username: present for IAM users only.
    "username_allow_for_users": Case(
        (allow(LIST, **cond("StringLike", "aws:username", "matrix-user-*")),), True
    ),
    "username_absent_for_sessions_allow_fails": Case(
        (allow(LIST, **cond("StringLike", "aws:username", "*")),), False, who="session"
    ),
    # IF_EXISTS: an absent key makes ...IfExists true.
    "username_absent_for_sessions_ifexists_allows": Case(
        (allow(LIST, **cond("StringEqualsIfExists", "aws:username", "nobody")),), True, who="session"
    ),
    "username_present_ifexists_compares": Case(
        (allow(LIST, **cond("StringEqualsIfExists", "aws:username", "nobody")),), False
    ),
    # NULL: Null true matches an absent key.
    "null_true_matches_absent_username": Case(
        (allow(LIST), deny(LIST, **cond("Null", "aws:username", "true"))), False, who="session"
    ),
    # --- tags ----------------------------------------------------------------------------------
    # TAGS aws:PrincipalTag: the user's tags.
    "principal_tag_of_a_user_allow": Case(
        (allow(LIST, **cond("StringEquals", "aws:PrincipalTag/team", "blue")),), True
    ),
    "principal_tag_of_a_user_deny": Case(
        (allow(LIST), deny(LIST, **cond("StringEquals", "aws:PrincipalTag/team", "blue"))), False
    ),
    # TAGS aws:PrincipalTag of a session: the role's tags.
    "principal_tag_of_a_session_is_the_role_tag": Case(
        (allow(LIST, **cond("StringEquals", "aws:PrincipalTag/team", "red")),), True, who="session"
    ),
    # https://docs.aws.amazon.com/IAM/latest/UserGuide/id_session-tags.html: a session tag overrides.
    "session_tag_overrides_the_role_tag": Case(
        (allow(LIST, **cond("StringEquals", "aws:PrincipalTag/team", "green")),),
        True,
        who="session",
        session_tags=({"Key": "team", "Value": "green"},),
    ),
    # IF_EXISTS on a tag the caller does not have: an absent key makes ...IfExists true, so the
    # Deny applies; without IfExists a positive operator on an absent key is false.
    "missing_principal_tag_deny_ifexists_applies": Case(
        (allow(LIST), deny(LIST, **cond("StringEqualsIfExists", "aws:PrincipalTag/project", "x"))), False
    ),
    "missing_principal_tag_positive_deny_does_not_apply": Case(
        (allow(LIST), deny(LIST, **cond("StringEquals", "aws:PrincipalTag/project", "x"))), True
    ),
    # KEYS: a negated operator on an absent key is true (the Deny applies).
    "missing_principal_tag_negated_deny_applies": Case(
        (allow(LIST), deny(LIST, **cond("StringNotEquals", "aws:PrincipalTag/project", "x"))), False
    ),
    # TAGS aws:ResourceTag of an IAM role acted on.
    "resource_tag_of_an_iam_role_allow": Case(
        (allow("iam:GetRole", **cond("StringEquals", "aws:ResourceTag/stage", "prod")),),
        True,
        probe="get-role",
    ),
    "resource_tag_of_an_iam_role_deny": Case(
        (allow("iam:GetRole"), deny("iam:GetRole", **cond("StringEquals", "aws:ResourceTag/stage", "prod"))),
        False,
        probe="get-role",
    ),
    # TAGS aws:RequestTag / aws:TagKeys on a create call with tags.
    "request_tag_allow_on_create": Case(
        (allow("iam:CreateRole", **cond("StringEquals", "aws:RequestTag/cost", "42")),),
        True,
        probe="create-tagged-role",
    ),
    "tag_keys_deny_on_create": Case(
        (
            allow("iam:CreateRole"),
            deny("iam:CreateRole", **cond("ForAnyValue:StringEquals", "aws:TagKeys", "cost")),
        ),
        False,
        probe="create-tagged-role",
    ),
    "request_tag_absent_on_untagged_call_ifexists": Case(
        (allow(LIST, **cond("StringEqualsIfExists", "aws:RequestTag/cost", "nope")),), True
    ),
    # --- IAM's own keys: delegating role creation within a boundary ----------------------------
    # DELEGATION: iam:PermissionsBoundary lets an administrator allow CreateRole only with a boundary.
    "permissions_boundary_key_allows_a_bounded_create": Case(
        (allow("iam:CreateRole", **cond("StringEquals", "iam:PermissionsBoundary", BOUNDARY_ARN)),),
        True,
        probe="create-bounded-role",
    ),
    "permissions_boundary_key_absent_refuses_an_unbounded_create": Case(
        (allow("iam:CreateRole", **cond("StringEquals", "iam:PermissionsBoundary", BOUNDARY_ARN)),),
        False,
        probe="create-tagged-role",
    ),
    # https://docs.aws.amazon.com/service-authorization/latest/reference/list_awsidentityandaccessmanagementiam.html
    # iam:PolicyARN: the managed policy an attach call names.
    "policy_arn_key_allows_the_named_policy": Case(
        (allow("iam:AttachRolePolicy", **cond("ArnEquals", "iam:PolicyARN", ATTACHABLE_ARN)),),
        True,
        probe="attach",
    ),
    "policy_arn_key_refuses_another_policy": Case(
        (allow("iam:AttachRolePolicy", **cond("ArnEquals", "iam:PolicyARN", BOUNDARY_ARN)),),
        False,
        probe="attach",
    ),
    # --- request and resource keys -------------------------------------------------------------
    # KEYS aws:RequestedRegion: the region the request was signed for.
    "requested_region_allow_signed_region": Case(
        (allow(LIST, **cond("StringEquals", "aws:RequestedRegion", "eu-west-1")),), True, probe="list-eu"
    ),
    "requested_region_deny_other_region": Case(
        (allow(LIST), deny(LIST, **cond("StringNotEquals", "aws:RequestedRegion", "us-east-1"))),
        False,
        probe="list-eu",
    ),
    # KEYS aws:RequestedRegion: IAM is global; its requests carry us-east-1.
    "requested_region_of_iam_is_us_east_1": Case(
        (allow("iam:ListRoles", **cond("StringEquals", "aws:RequestedRegion", "us-east-1")),),
        True,
        probe="list-iam-eu",
    ),
    # KEYS aws:ResourceAccount: the account owning the resource.
    "resource_account_allow": Case(
        (allow("iam:GetRole", **cond("StringEquals", "aws:ResourceAccount", ACCOUNT_ID)),),
        True,
        probe="get-role",
    ),
    "resource_account_deny_other": Case(
        (
            allow("iam:GetRole"),
            deny("iam:GetRole", **cond("StringNotEquals", "aws:ResourceAccount", ACCOUNT_ID)),
        ),
        True,
        probe="get-role",
    ),
    # KEYS aws:SourceIp: the TCP peer (here loopback).
    "source_ip_allow_loopback": Case(
        (allow(LIST, **cond("IpAddress", "aws:SourceIp", "127.0.0.1/32")),), True
    ),
    "source_ip_deny_outside_range": Case(
        (allow(LIST), deny(LIST, **cond("NotIpAddress", "aws:SourceIp", "10.0.0.0/8"))), False
    ),
    # KEYS aws:ViaAWSService: false on a caller's own request; aws:CalledVia absent then.
    "via_aws_service_false_for_direct_calls": Case(
        (allow(LIST, **cond("Bool", "aws:ViaAWSService", "false")),), True
    ),
    "called_via_absent_for_direct_calls": Case(
        (allow(LIST), deny(LIST, **cond("Null", "aws:CalledVia", "false"))), True
    ),
    "called_via_ifexists_on_direct_calls": Case(
        (allow(LIST, **cond("ForAnyValue:StringEqualsIfExists", "aws:CalledVia", "athena.amazonaws.com")),),
        True,
    ),
}


@pytest.mark.parametrize("case", list(CASES.values()), ids=list(CASES))
def test_access_matrix(server: MailcrateServer, case: Case) -> None:
    assert _allowed(server, case) is case.allowed


def test_the_matrix_is_large_enough() -> None:
    assert len(CASES) >= 20


# --- forwarded headers: aws:SourceIp and aws:SecureTransport from trusted proxies only -------
# KEYS aws:SourceIp / aws:SecureTransport: the requester's address and TLS; a header any client
# can send must not decide them.
FORWARDED = {"X-Forwarded-For": "203.0.113.7", "X-Forwarded-Proto": "https"}
FROM_PROXY = (
    allow(LIST, **cond("IpAddress", "aws:SourceIp", "203.0.113.0/24")),
    allow("workmail:DescribeOrganization", **cond("Bool", "aws:SecureTransport", "true")),
)


def _forwarding(client: Any) -> Any:
    def add(request: Any, **_: Any) -> None:
        request.headers.update(FORWARDED)  # after signing: what a proxy adds

    client.meta.events.register("before-send.*", add)
    return client


def _forwarded_answers(server: MailcrateServer) -> tuple[bool, bool]:
    creds = _caller(server, Case(FROM_PROXY, True))
    workmail = _forwarding(server.client("workmail", **creds))
    answers = []
    for call in (
        workmail.list_organizations,
        lambda: workmail.describe_organization(OrganizationId="m-" + "0" * 32),
    ):
        try:
            call()
            answers.append(True)
        except ClientError as exc:
            code = exc.response["Error"]["Code"]
            answers.append(code not in ("AccessDenied", "AccessDeniedException"))
    return answers[0], answers[1]


def test_spoofed_forwarded_headers_from_loopback_do_not_count(server: MailcrateServer) -> None:
    assert _forwarded_answers(server) == (False, False)


def test_forwarded_headers_of_a_trusted_proxy_count(tmp_path: Any) -> None:
    with MailcrateServer.running(
        tmp_path / "data", "--export-workers", "0", "--trusted-proxies", "127.0.0.1/32"
    ) as trusting:
        assert _forwarded_answers(trusting) == (True, True)
