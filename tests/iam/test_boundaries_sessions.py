"""Permissions boundaries and session policies narrow what identity policies allow.

AWS rules:
https://docs.aws.amazon.com/IAM/latest/UserGuide/access_policies_boundaries.html (effective
permissions are identity-based policies ∩ boundary; an explicit deny in either wins),
https://docs.aws.amazon.com/IAM/latest/UserGuide/access_policies.html#policies_session (a session
may do what the role's identity policies and the session policies both allow),
https://docs.aws.amazon.com/IAM/latest/UserGuide/id_session-tags.html (session tags need
sts:TagSession).
"""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.iam.support import allow, deny, policy, user_with_policy
from tests.support.mailcrate_server import ACCOUNT_ID, MailcrateServer


def _code(call: Any, **kwargs: Any) -> str:
    with pytest.raises(ClientError) as caught:
        call(**kwargs)
    return str(caught.value.response["Error"]["Code"])


def _session(server: MailcrateServer, creds: dict[str, Any], service: str) -> Any:
    return server.client(
        service,
        access_key_id=creds["AccessKeyId"],
        secret_access_key=creds["SecretAccessKey"],
        session_token=creds["SessionToken"],
    )


def test_user_boundary_put_shown_and_deleted(server: MailcrateServer) -> None:
    iam = server.client("iam")
    creds = user_with_policy(server, "bounded", policy(allow("workmail:*")))
    boundary = iam.create_policy(
        PolicyName="OnlyDescribe", PolicyDocument=policy(allow("workmail:Describe*"))
    )["Policy"]["Arn"]
    workmail = server.client("workmail", **creds)
    workmail.list_organizations()
    iam.put_user_permissions_boundary(UserName="bounded", PermissionsBoundary=boundary)
    shown = iam.get_user(UserName="bounded")["User"]["PermissionsBoundary"]
    assert shown == {"PermissionsBoundaryType": "Policy", "PermissionsBoundaryArn": boundary}
    assert _code(workmail.list_organizations) == "AccessDeniedException"  # outside the boundary
    assert iam.get_policy(PolicyArn=boundary)["Policy"]["PermissionsBoundaryUsageCount"] == 1
    bounded = iam.list_entities_for_policy(PolicyArn=boundary, PolicyUsageFilter="PermissionsBoundary")
    assert [u["UserName"] for u in bounded["PolicyUsers"]] == ["bounded"]
    attached = iam.list_entities_for_policy(PolicyArn=boundary, PolicyUsageFilter="PermissionsPolicy")
    assert attached["PolicyUsers"] == []
    assert _code(iam.delete_policy, PolicyArn=boundary) == "DeleteConflict"
    iam.delete_user_permissions_boundary(UserName="bounded")
    assert "PermissionsBoundary" not in iam.get_user(UserName="bounded")["User"]
    workmail.list_organizations()
    missing = f"arn:aws:iam::{ACCOUNT_ID}:policy/NoSuchBoundary"
    assert _code(iam.put_user_permissions_boundary, UserName="bounded", PermissionsBoundary=missing) == (
        "NoSuchEntity"
    )


def test_role_created_with_boundary_limits_its_sessions(server: MailcrateServer) -> None:
    iam = server.client("iam")
    boundary = iam.create_policy(
        PolicyName="ListOnly", PolicyDocument=policy(allow("workmail:List*"), deny("workmail:ListUsers"))
    )["Policy"]["Arn"]
    trust = policy({"Effect": "Allow", "Principal": {"AWS": ACCOUNT_ID}, "Action": "sts:AssumeRole"})
    role = iam.create_role(
        RoleName="bounded-role", AssumeRolePolicyDocument=trust, PermissionsBoundary=boundary
    )["Role"]
    assert role["PermissionsBoundary"]["PermissionsBoundaryArn"] == boundary
    iam.put_role_policy(RoleName="bounded-role", PolicyName="all", PolicyDocument=policy(allow("workmail:*")))
    creds = server.client("sts").assume_role(RoleArn=role["Arn"], RoleSessionName="bounded-session")
    workmail = _session(server, creds["Credentials"], "workmail")
    workmail.list_organizations()  # identity ∩ boundary
    assert _code(workmail.create_organization, Alias="bounded-org") == "AccessDeniedException"
    iam.delete_role_permissions_boundary(RoleName="bounded-role")
    assert "PermissionsBoundary" not in iam.get_role(RoleName="bounded-role")["Role"]
    iam.put_role_permissions_boundary(RoleName="bounded-role", PermissionsBoundary=boundary)
    assert iam.get_role(RoleName="bounded-role")["Role"]["PermissionsBoundary"]["PermissionsBoundaryArn"] == (
        boundary
    )


def test_session_policies_narrow_and_never_widen(server: MailcrateServer) -> None:
    iam = server.client("iam")
    trust = policy({"Effect": "Allow", "Principal": {"AWS": ACCOUNT_ID}, "Action": "sts:AssumeRole"})
    arn = iam.create_role(RoleName="session-role", AssumeRolePolicyDocument=trust)["Role"]["Arn"]
    iam.put_role_policy(
        RoleName="session-role", PolicyName="p", PolicyDocument=policy(allow("workmail:ListOrganizations"))
    )
    sts = server.client("sts")
    # The session policy allows more than the role: the role's policies still bound it.
    wide = sts.assume_role(RoleArn=arn, RoleSessionName="wide", Policy=policy(allow("workmail:*")))
    assert wide["PackedPolicySize"] > 0
    wide_wm = _session(server, wide["Credentials"], "workmail")
    wide_wm.list_organizations()
    assert _code(wide_wm.create_organization, Alias="session-org") == "AccessDeniedException"
    # The session policy allows less than the role: the session gets only that.
    narrow = sts.assume_role(
        RoleArn=arn, RoleSessionName="narrow", Policy=policy(allow("s3:ListAllMyBuckets"))
    )
    assert _code(_session(server, narrow["Credentials"], "workmail").list_organizations) == (
        "AccessDeniedException"
    )
    # A managed policy passed as PolicyArns counts as a session policy, fixed at issue time.
    managed = iam.create_policy(
        PolicyName="SessionList", PolicyDocument=policy(allow("workmail:ListOrganizations"))
    )["Policy"]["Arn"]
    by_arn = sts.assume_role(RoleArn=arn, RoleSessionName="by-arn", PolicyArns=[{"arn": managed}])
    by_arn_wm = _session(server, by_arn["Credentials"], "workmail")
    by_arn_wm.list_organizations()
    iam.create_policy_version(PolicyArn=managed, PolicyDocument=policy(deny("*")), SetAsDefault=True)
    by_arn_wm.list_organizations()
    # A Deny in the session policy wins.
    denied = sts.assume_role(
        RoleArn=arn, RoleSessionName="denied", Policy=policy(allow("*"), deny("workmail:ListOrganizations"))
    )
    assert _code(_session(server, denied["Credentials"], "workmail").list_organizations) == (
        "AccessDeniedException"
    )
    # Without session policies the session has the role's permissions, PackedPolicySize 0.
    plain = sts.assume_role(RoleArn=arn, RoleSessionName="plain")
    assert plain["PackedPolicySize"] == 0
    _session(server, plain["Credentials"], "workmail").list_organizations()
    missing = f"arn:aws:iam::{ACCOUNT_ID}:policy/NotThere"
    assert _code(sts.assume_role, RoleArn=arn, RoleSessionName="missing", PolicyArns=[{"arn": missing}]) == (
        "InvalidParameterValue"
    )


def test_session_tags_need_tag_session_in_the_trust_policy(server: MailcrateServer) -> None:
    iam = server.client("iam")
    plain_trust = policy({"Effect": "Allow", "Principal": {"AWS": ACCOUNT_ID}, "Action": "sts:AssumeRole"})
    untaggable = iam.create_role(RoleName="no-tags", AssumeRolePolicyDocument=plain_trust)["Role"]["Arn"]
    sts = server.client("sts")
    tags = [{"Key": "team", "Value": "blue"}]
    assert _code(sts.assume_role, RoleArn=untaggable, RoleSessionName="t1", Tags=tags) == "AccessDenied"
    trust = policy(
        {"Effect": "Allow", "Principal": {"AWS": ACCOUNT_ID}, "Action": ["sts:AssumeRole", "sts:TagSession"]}
    )
    taggable = iam.create_role(
        RoleName="tags-ok", AssumeRolePolicyDocument=trust, Tags=[{"Key": "team", "Value": "red"}]
    )["Role"]["Arn"]
    condition = {"StringEquals": {"aws:PrincipalTag/team": "blue"}}
    iam.put_role_policy(
        RoleName="tags-ok",
        PolicyName="by-tag",
        PolicyDocument=policy(allow("workmail:ListOrganizations", Condition=condition)),
    )
    red = sts.assume_role(RoleArn=taggable, RoleSessionName="red")  # the role's own tag: red
    assert (
        _code(_session(server, red["Credentials"], "workmail").list_organizations) == "AccessDeniedException"
    )
    blue = sts.assume_role(RoleArn=taggable, RoleSessionName="blue", Tags=tags)  # overrides the role's
    _session(server, blue["Credentials"], "workmail").list_organizations()
