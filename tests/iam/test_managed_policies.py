"""Customer managed policies over the wire: versions, attachments, AWS's quotas and errors, and
attached policies counting in authorization (boto3 and the aws CLI, as Terraform uses them).

AWS rules: https://docs.aws.amazon.com/IAM/latest/UserGuide/access_policies_managed-versioning.html
(five versions, the default cannot be deleted),
https://docs.aws.amazon.com/IAM/latest/APIReference/API_DeletePolicy.html (detach and delete
versions first), https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_iam-quotas.html
(6,144 characters, ten managed policies per role or user).
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.iam.support import allow, deny, policy, user_with_policy
from tests.support.mailcrate_server import ACCOUNT_ID, MailcrateServer


def _code(call: Any, **kwargs: Any) -> str:
    with pytest.raises(ClientError) as caught:
        call(**kwargs)
    return str(caught.value.response["Error"]["Code"])


def test_versions_default_and_the_five_version_limit(server: MailcrateServer) -> None:
    iam = server.client("iam")
    created = iam.create_policy(
        PolicyName="Versions", Path="/team/", PolicyDocument=policy(allow("s3:GetObject")), Description="d"
    )["Policy"]
    arn = f"arn:aws:iam::{ACCOUNT_ID}:policy/team/Versions"
    assert created["Arn"] == arn and created["DefaultVersionId"] == "v1" and created["AttachmentCount"] == 0
    assert created["PolicyId"].startswith("ANPA")
    assert _code(iam.create_policy, PolicyName="versions", PolicyDocument=policy(allow("s3:*"))) == (
        "EntityAlreadyExists"
    )
    for number in range(2, 6):
        version = iam.create_policy_version(
            PolicyArn=arn, PolicyDocument=policy(allow(f"s3:Get{number}")), SetAsDefault=number == 3
        )["PolicyVersion"]
        assert version["VersionId"] == f"v{number}" and version["IsDefaultVersion"] is (number == 3)
    assert iam.get_policy(PolicyArn=arn)["Policy"]["DefaultVersionId"] == "v3"
    assert _code(iam.create_policy_version, PolicyArn=arn, PolicyDocument=policy(allow("s3:*"))) == (
        "LimitExceeded"
    )
    document = iam.get_policy_version(PolicyArn=arn, VersionId="v3")["PolicyVersion"]["Document"]
    assert document["Statement"][0]["Action"] == "s3:Get3"  # botocore decodes IAM's URL-encoding
    assert _code(iam.delete_policy_version, PolicyArn=arn, VersionId="v3") == "DeleteConflict"
    assert _code(iam.get_policy_version, PolicyArn=arn, VersionId="v9") == "NoSuchEntity"
    assert _code(iam.delete_policy, PolicyArn=arn) == "DeleteConflict"  # versions left
    iam.delete_policy_version(PolicyArn=arn, VersionId="v2")
    version = iam.create_policy_version(PolicyArn=arn, PolicyDocument=policy(allow("s3:*")))["PolicyVersion"]
    assert version["VersionId"] == "v6"  # numbers are never reused
    iam.set_default_policy_version(PolicyArn=arn, VersionId="v6")
    ids = [v["VersionId"] for v in iam.list_policy_versions(PolicyArn=arn)["Versions"]]
    assert ids == ["v6", "v5", "v4", "v3", "v1"]
    for old in ("v5", "v4", "v3", "v1"):
        iam.delete_policy_version(PolicyArn=arn, VersionId=old)
    iam.delete_policy(PolicyArn=arn)
    assert _code(iam.get_policy, PolicyArn=arn) == "NoSuchEntity"


def test_bad_documents_and_unknown_policies_are_refused(server: MailcrateServer) -> None:
    iam = server.client("iam")
    assert _code(iam.create_policy, PolicyName="Bad", PolicyDocument='{"Version":"2012-10-17"}') == (
        "MalformedPolicyDocument"
    )
    big = policy(*[allow(f"s3:GetObject{i:04d}", f"arn:aws:s3:::bucket-{i:04d}/*") for i in range(120)])
    assert _code(iam.create_policy, PolicyName="Big", PolicyDocument=big) == "LimitExceeded"
    assert "Big" not in [p["PolicyName"] for p in iam.list_policies(Scope="Local")["Policies"]]
    iam.create_role(RoleName="attach-target", AssumeRolePolicyDocument=_trust())
    for arn in (
        "arn:aws:iam::aws:policy/ReadOnlyAccess",
        f"arn:aws:iam::{ACCOUNT_ID}:policy/Nope",
        "arn:aws:iam::999988887777:policy/Theirs",
    ):
        assert _code(iam.attach_role_policy, RoleName="attach-target", PolicyArn=arn) == "NoSuchEntity"
    assert iam.list_attached_role_policies(RoleName="attach-target")["AttachedPolicies"] == []


def _trust() -> str:
    return policy({"Effect": "Allow", "Principal": {"AWS": ACCOUNT_ID}, "Action": "sts:AssumeRole"})


def test_attached_policies_allow_and_deny_until_detached(server: MailcrateServer) -> None:
    iam = server.client("iam")
    creds = user_with_policy(server, "managed-user", None)
    workmail = server.client("workmail", **creds)
    assert _code(workmail.list_organizations) == "AccessDeniedException"
    lister = iam.create_policy(PolicyName="Lister", PolicyDocument=policy(allow("workmail:List*")))["Policy"]
    iam.attach_user_policy(UserName="managed-user", PolicyArn=lister["Arn"])
    iam.attach_user_policy(UserName="managed-user", PolicyArn=lister["Arn"])  # again: no change
    workmail.list_organizations()
    attached = iam.list_attached_user_policies(UserName="managed-user")["AttachedPolicies"]
    assert attached == [{"PolicyName": "Lister", "PolicyArn": lister["Arn"]}]
    assert iam.get_policy(PolicyArn=lister["Arn"])["Policy"]["AttachmentCount"] == 1
    entities = iam.list_entities_for_policy(PolicyArn=lister["Arn"])
    assert [u["UserName"] for u in entities["PolicyUsers"]] == ["managed-user"]
    assert entities["PolicyRoles"] == [] and entities["PolicyGroups"] == []
    assert iam.list_entities_for_policy(PolicyArn=lister["Arn"], EntityFilter="Role")["PolicyUsers"] == []
    # A new default version changes what the attached policy grants, at once.
    iam.create_policy_version(
        PolicyArn=lister["Arn"], PolicyDocument=policy(allow("workmail:Describe*")), SetAsDefault=True
    )
    assert _code(workmail.list_organizations) == "AccessDeniedException"
    iam.set_default_policy_version(PolicyArn=lister["Arn"], VersionId="v1")
    workmail.list_organizations()
    # An attached Deny beats the attached Allow.
    denier = iam.create_policy(PolicyName="Denier", PolicyDocument=policy(deny("workmail:*")))["Policy"]
    iam.attach_user_policy(UserName="managed-user", PolicyArn=denier["Arn"])
    assert _code(workmail.list_organizations) == "AccessDeniedException"
    assert _code(iam.delete_policy, PolicyArn=denier["Arn"]) == "DeleteConflict"
    assert _code(iam.delete_user, UserName="managed-user") == "DeleteConflict"
    iam.detach_user_policy(UserName="managed-user", PolicyArn=denier["Arn"])
    assert _code(iam.detach_user_policy, UserName="managed-user", PolicyArn=denier["Arn"]) == "NoSuchEntity"
    workmail.list_organizations()
    iam.delete_policy(PolicyArn=denier["Arn"])
    only = iam.list_policies(Scope="Local", OnlyAttached=True)["Policies"]
    assert [p["PolicyName"] for p in only] == ["Lister"]


def test_ten_policies_per_role(server: MailcrateServer) -> None:
    iam = server.client("iam")
    iam.create_role(RoleName="ten-policies", AssumeRolePolicyDocument=_trust())
    arns = [
        iam.create_policy(PolicyName=f"Ten{i}", PolicyDocument=policy(allow("s3:GetObject")))["Policy"]["Arn"]
        for i in range(11)
    ]
    for arn in arns[:10]:
        iam.attach_role_policy(RoleName="ten-policies", PolicyArn=arn)
    assert _code(iam.attach_role_policy, RoleName="ten-policies", PolicyArn=arns[10]) == "LimitExceeded"
    assert len(iam.list_attached_role_policies(RoleName="ten-policies")["AttachedPolicies"]) == 10


def test_role_session_gets_attached_policies_via_the_aws_cli(server: MailcrateServer) -> None:
    """`aws iam create-policy` + `attach-role-policy`, as the export-role recipes do it."""
    iam = server.client("iam")
    iam.create_role(RoleName="cli-role", AssumeRolePolicyDocument=_trust())
    document = json.dumps({"Version": "2012-10-17", "Statement": [allow("workmail:ListOrganizations")]})
    created = server.aws("iam", "create-policy", "--policy-name", "CliPolicy", "--policy-document", document)
    arn = created["Policy"]["Arn"]
    server.aws("iam", "attach-role-policy", "--role-name", "cli-role", "--policy-arn", arn)
    listed = server.aws("iam", "list-attached-role-policies", "--role-name", "cli-role")
    assert listed["AttachedPolicies"] == [{"PolicyName": "CliPolicy", "PolicyArn": arn}]
    creds = server.client("sts").assume_role(
        RoleArn=f"arn:aws:iam::{ACCOUNT_ID}:role/cli-role", RoleSessionName="cli-session"
    )["Credentials"]
    workmail = server.client(
        "workmail",
        access_key_id=creds["AccessKeyId"],
        secret_access_key=creds["SecretAccessKey"],
        session_token=creds["SessionToken"],
    )
    workmail.list_organizations()
    server.aws("iam", "detach-role-policy", "--role-name", "cli-role", "--policy-arn", arn)
    assert _code(workmail.list_organizations) == "AccessDeniedException"
    iam.attach_role_policy(RoleName="cli-role", PolicyArn=arn)
    assert _code(iam.delete_role, RoleName="cli-role") == "DeleteConflict"
    iam.detach_role_policy(RoleName="cli-role", PolicyArn=arn)
    iam.delete_role(RoleName="cli-role")
