"""The IAM API against a real server: roles, users, inline policies, access keys, and IAM's errors
for malformed or oversize documents, bad names and hostile requests (never a 500)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.iam.support import allow, error_code, policy, signed_form
from tests.support.mailcrate_server import ACCOUNT_ID, MailcrateServer

TRUST = policy(
    {"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT_ID}:root"}, "Action": "sts:AssumeRole"}
)


def _code(call: Any, **kwargs: Any) -> tuple[str, int]:
    with pytest.raises(ClientError) as caught:
        call(**kwargs)
    response = caught.value.response
    return response["Error"]["Code"], response["ResponseMetadata"]["HTTPStatusCode"]


@pytest.fixture(scope="module")
def iam(server: MailcrateServer) -> Any:
    return server.client("iam")


@pytest.fixture(scope="module")
def lax_iam(server: MailcrateServer) -> Any:
    """A client that sends what botocore would refuse, to see the server's own checks."""
    return server.client("iam", parameter_validation=False)


def test_role_lifecycle(iam: Any) -> None:
    created = iam.create_role(
        RoleName="Lifecycle",
        Path="/team/a/",
        AssumeRolePolicyDocument=TRUST,
        Description="d",
        MaxSessionDuration=7200,
        Tags=[{"Key": "k", "Value": "v"}],
    )["Role"]
    assert created["Arn"] == f"arn:aws:iam::{ACCOUNT_ID}:role/team/a/Lifecycle"
    got = iam.get_role(RoleName="lifecycle")["Role"]  # names are case-insensitive
    assert got["RoleName"] == "Lifecycle" and got["Description"] == "d" and got["MaxSessionDuration"] == 7200
    assert got["Tags"] == [{"Key": "k", "Value": "v"}]
    assert got["AssumeRolePolicyDocument"] == json.loads(TRUST)

    doc = policy(allow("s3:GetObject", "arn:aws:s3:::b/*"))
    iam.put_role_policy(RoleName="Lifecycle", PolicyName="p1", PolicyDocument=doc)
    iam.put_role_policy(RoleName="Lifecycle", PolicyName="p2", PolicyDocument=doc)
    iam.put_role_policy(
        RoleName="Lifecycle", PolicyName="p1", PolicyDocument=policy(allow("s3:*"))
    )  # replaces
    assert (
        iam.get_role_policy(RoleName="Lifecycle", PolicyName="p1")["PolicyDocument"]["Statement"][0]["Action"]
        == "s3:*"
    )
    first = iam.list_role_policies(RoleName="Lifecycle", MaxItems=1)
    assert first["PolicyNames"] == ["p1"] and first["IsTruncated"]
    rest = iam.list_role_policies(RoleName="Lifecycle", Marker=first["Marker"])
    assert rest["PolicyNames"] == ["p2"] and not rest["IsTruncated"]

    assert _code(iam.delete_role, RoleName="Lifecycle") == ("DeleteConflict", 409)
    iam.delete_role_policy(RoleName="Lifecycle", PolicyName="p1")
    iam.delete_role_policy(RoleName="Lifecycle", PolicyName="p2")
    assert _code(iam.delete_role_policy, RoleName="Lifecycle", PolicyName="p2") == ("NoSuchEntity", 404)
    iam.delete_role(RoleName="Lifecycle")
    assert _code(iam.get_role, RoleName="Lifecycle") == ("NoSuchEntity", 404)
    assert _code(iam.get_role_policy, RoleName="Lifecycle", PolicyName="p1") == ("NoSuchEntity", 404)


def test_list_roles_pages_and_filters_by_path(iam: Any) -> None:
    for name in ("PageA", "PageB", "PageC"):
        iam.create_role(RoleName=name, Path="/paging/", AssumeRolePolicyDocument=TRUST)
    names: list[str] = []
    kwargs: dict[str, Any] = {"PathPrefix": "/paging/", "MaxItems": 2}
    while True:
        page = iam.list_roles(**kwargs)
        names += [role["RoleName"] for role in page["Roles"]]
        if not page["IsTruncated"]:
            break
        kwargs["Marker"] = page["Marker"]
    assert names == ["PageA", "PageB", "PageC"]
    assert all(
        role["AssumeRolePolicyDocument"]["Version"] == "2012-10-17" for role in iam.list_roles()["Roles"]
    )
    assert _code(iam.list_roles, Marker="forged") == ("InvalidInput", 400)


def test_duplicate_names_are_entity_already_exists(iam: Any) -> None:
    iam.create_role(RoleName="Dup", AssumeRolePolicyDocument=TRUST)
    assert _code(iam.create_role, RoleName="DUP", AssumeRolePolicyDocument=TRUST) == (
        "EntityAlreadyExists",
        409,
    )
    iam.create_user(UserName="dupuser")
    assert _code(iam.create_user, UserName="DupUser") == ("EntityAlreadyExists", 409)


MALFORMED = [
    "not json",
    "[]",
    '{"Version": "2012-10-17"}',
    '{"Version": "2011-01-01", "Statement": []}',
    '{"Version": "2012-10-17", "Statement": [{"Effect": "Maybe", "Action": "s3:*", "Resource": "*"}]}',
    '{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Resource": "*"}]}',
    '{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "nope", "Resource": "*"}]}',
    '{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*",'
    ' "Condition": {"StringEqualz": {"a:b": "c"}}}]}',
    '{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*", "Bogus": 1}]}',
    '{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*",'
    ' "Principal": "*"}]}',
    '{"Version": "2012-10-17", "Statement": {"Effect": "Allow", "Action": "s3:*", "Resource": "*"}, "Version": "x"}',
]


@pytest.mark.parametrize("document", MALFORMED, ids=range(len(MALFORMED)))
def test_malformed_permission_policies(iam: Any, document: str) -> None:
    code = _code(iam.put_user_policy, UserName="malformed", PolicyName="p", PolicyDocument=document)
    assert code == ("MalformedPolicyDocument", 400)


@pytest.fixture(scope="module", autouse=True)
def _malformed_user(iam: Any) -> None:
    iam.create_user(UserName="malformed", Path="/malformed/")
    iam.create_role(RoleName="TrustTarget", AssumeRolePolicyDocument=TRUST)


MALFORMED_TRUST = [
    "{",
    policy({"Effect": "Allow", "Action": "sts:AssumeRole"}),  # no Principal
    policy(
        {
            "Effect": "Allow",
            "Principal": {"Service": "x.amazonaws.com"},
            "Action": "sts:AssumeRole",
            "Resource": "*",
        }
    ),  # trust policies name no Resource
    policy({"Effect": "Allow", "Principal": {"Service": "x.amazonaws.com"}, "Action": "s3:GetObject"}),
    policy({"Effect": "Allow", "Principal": {"AWS": "not-an-arn"}, "Action": "sts:AssumeRole"}),
]


@pytest.mark.parametrize("document", MALFORMED_TRUST, ids=range(len(MALFORMED_TRUST)))
def test_malformed_trust_policies(iam: Any, document: str) -> None:
    assert _code(iam.create_role, RoleName="BadTrust", AssumeRolePolicyDocument=document) == (
        "MalformedPolicyDocument",
        400,
    )
    assert _code(iam.update_assume_role_policy, RoleName="TrustTarget", PolicyDocument=document) == (
        "MalformedPolicyDocument",
        400,
    )


def _padded(size: int) -> str:
    """An allowed policy of about ``size`` non-white-space characters."""
    base = policy(allow("s3:GetObject", "arn:aws:s3:::b/x"))
    filler = size - len(base.replace(" ", ""))
    return policy(allow("s3:GetObject", "arn:aws:s3:::b/" + "x" * max(filler, 1)))


def test_oversize_documents(iam: Any, lax_iam: Any) -> None:
    big_trust = policy(
        {
            "Effect": "Allow",
            "Principal": {"AWS": [f"arn:aws:iam::{ACCOUNT_ID}:user/u{i:04d}" for i in range(60)]},
            "Action": "sts:AssumeRole",
        }
    )
    assert _code(iam.create_role, RoleName="BigTrust", AssumeRolePolicyDocument=big_trust) == (
        "LimitExceeded",
        409,
    )
    iam.create_role(RoleName="Sized", AssumeRolePolicyDocument=TRUST)
    iam.put_role_policy(RoleName="Sized", PolicyName="a", PolicyDocument=_padded(6000))
    assert _code(iam.put_role_policy, RoleName="Sized", PolicyName="b", PolicyDocument=_padded(6000)) == (
        "LimitExceeded",
        409,
    )
    # White space does not count against the quota.
    iam.put_role_policy(RoleName="Sized", PolicyName="a", PolicyDocument=_padded(4000) + " " * 9000)
    iam.put_role_policy(RoleName="Sized", PolicyName="b", PolicyDocument=_padded(6000))
    iam.create_user(UserName="sized")
    assert _code(iam.put_user_policy, UserName="sized", PolicyName="a", PolicyDocument=_padded(2100)) == (
        "LimitExceeded",
        409,
    )
    # Past the model's maximum length (131,072): a validation error, not a 500.
    huge = _padded(140_000)
    assert _code(lax_iam.put_role_policy, RoleName="Sized", PolicyName="c", PolicyDocument=huge) == (
        "ValidationError",
        400,
    )


@pytest.mark.parametrize(
    "name",
    ["bad name", "a/b", "x" * 65, "", "r\u00f4le", "semi;colon", "tab\tname"],
    ids=["space", "slash", "too-long", "empty", "non-ascii", "semicolon", "tab"],
)
def test_bad_role_names_are_validation_errors(lax_iam: Any, name: str) -> None:
    assert _code(lax_iam.create_role, RoleName=name, AssumeRolePolicyDocument=TRUST) == (
        "ValidationError",
        400,
    )
    assert _code(lax_iam.get_role, RoleName=name) == ("ValidationError", 400)


def test_bad_path_and_duration(lax_iam: Any) -> None:
    assert _code(lax_iam.create_role, RoleName="P", Path="no-slashes", AssumeRolePolicyDocument=TRUST)[0] == (
        "ValidationError"
    )
    assert _code(lax_iam.create_role, RoleName="P", MaxSessionDuration=60, AssumeRolePolicyDocument=TRUST)[
        0
    ] == ("ValidationError")


def test_user_and_access_key_lifecycle(server: MailcrateServer, iam: Any) -> None:
    user = iam.create_user(UserName="keyholder", Path="/people/")["User"]
    assert user["Arn"] == f"arn:aws:iam::{ACCOUNT_ID}:user/people/keyholder" and user["UserId"].startswith(
        "AIDA"
    )
    assert iam.get_user(UserName="KEYHOLDER")["User"]["UserId"] == user["UserId"]
    assert "keyholder" in [u["UserName"] for u in iam.list_users(PathPrefix="/people/")["Users"]]
    k1 = iam.create_access_key(UserName="keyholder")["AccessKey"]
    k2 = iam.create_access_key(UserName="keyholder")["AccessKey"]
    assert k1["AccessKeyId"].startswith("AKIA") and len(k1["SecretAccessKey"]) == 40
    assert _code(iam.create_access_key, UserName="keyholder") == ("LimitExceeded", 409)
    listed = iam.list_access_keys(UserName="keyholder")["AccessKeyMetadata"]
    assert {k["AccessKeyId"] for k in listed} == {k1["AccessKeyId"], k2["AccessKeyId"]}
    assert "SecretAccessKey" not in listed[0]

    # Usable at once, for every service; GetUser without a name answers for the caller.
    own = server.client("iam", access_key_id=k1["AccessKeyId"], secret_access_key=k1["SecretAccessKey"])
    iam.put_user_policy(
        UserName="keyholder",
        PolicyName="self",
        PolicyDocument=policy(
            allow(["iam:GetUser", "iam:ListAccessKeys"], "arn:aws:iam::*:user/people/${aws:username}")
        ),
    )
    assert own.get_user()["User"]["UserName"] == "keyholder"
    assert len(own.list_access_keys()["AccessKeyMetadata"]) == 2

    assert _code(iam.delete_user, UserName="keyholder") == ("DeleteConflict", 409)
    iam.delete_user_policy(UserName="keyholder", PolicyName="self")
    assert _code(iam.delete_user, UserName="keyholder") == ("DeleteConflict", 409)  # keys remain
    iam.delete_access_key(UserName="keyholder", AccessKeyId=k1["AccessKeyId"])
    assert _code(iam.delete_access_key, UserName="keyholder", AccessKeyId=k1["AccessKeyId"]) == (
        "NoSuchEntity",
        404,
    )
    # A deleted key stops working at once (the server forgets its cached lookup).
    assert _code(own.get_user) == ("InvalidClientTokenId", 403)
    iam.delete_access_key(UserName="keyholder", AccessKeyId=k2["AccessKeyId"])
    iam.delete_user(UserName="keyholder")
    assert _code(iam.get_user, UserName="keyholder") == ("NoSuchEntity", 404)


def test_user_policy_roundtrip(iam: Any) -> None:
    iam.create_user(UserName="polly")
    doc = policy(allow("workmail:List*"))
    iam.put_user_policy(UserName="polly", PolicyName="list", PolicyDocument=doc)
    got = iam.get_user_policy(UserName="polly", PolicyName="list")
    assert got["PolicyDocument"] == json.loads(doc) and got["UserName"] == "polly"
    assert iam.list_user_policies(UserName="polly")["PolicyNames"] == ["list"]
    assert _code(iam.get_user_policy, UserName="polly", PolicyName="other") == ("NoSuchEntity", 404)
    assert _code(iam.put_user_policy, UserName="nobody", PolicyName="p", PolicyDocument=doc) == (
        "NoSuchEntity",
        404,
    )


def test_root_get_user_and_list_keys(iam: Any, server: MailcrateServer) -> None:
    assert iam.get_user()["User"]["Arn"] == f"arn:aws:iam::{ACCOUNT_ID}:root"
    assert [k["AccessKeyId"] for k in iam.list_access_keys()["AccessKeyMetadata"]] == [server.access_key_id]


@pytest.mark.parametrize(
    ("body", "content_type", "code", "status"),
    [
        (b"Action=ListRoles&Version=2010-05-08&MaxItems=abc", None, "ValidationError", 400),
        (b"Action=ListRoles&MaxItems=%FF%FE", None, "ValidationError", 400),
        (b"Action=NoSuchThing&Version=2010-05-08", None, "InvalidAction", 400),
        (b"Version=2010-05-08", None, "MissingAction", 400),
        (b"\x00\xff\xfe garbage ===&&&", None, "MissingAction", 400),
        (b"Action=GetRole&RoleName=" + b"%00" * 10, None, "ValidationError", 400),
        (
            b"Action=CreateRole&RoleName=x&AssumeRolePolicyDocument=%7B%22Statement%22%3A%5B%5B%5B%5B%5B%5D%5D%5D%5D%5D%7D",
            None,
            "MalformedPolicyDocument",
            400,
        ),
        (
            b"Action=CreateRole&RoleName=y&AssumeRolePolicyDocument=" + b"%5B" * 5000,
            None,
            "MalformedPolicyDocument",
            400,
        ),
        (
            b"Action=CreateRole&RoleName=z&Tags.member.1.Key=a&Tags.member.1.Value=1&Tags.member.2.Key=a&Tags.member.2.Value=2&AssumeRolePolicyDocument="
            + json.dumps(json.loads(TRUST)).replace('"', "%22").encode(),
            None,
            "InvalidInput",
            400,
        ),
        (b'{"Action": "ListRoles"}', "application/json", "MissingAction", 400),
    ],
    ids=[
        "int",
        "bytes",
        "unknown-action",
        "no-action",
        "garbage",
        "nul-name",
        "deep",
        "very-deep",
        "dup-tags",
        "json",
    ],
)
def test_hostile_requests_get_iam_errors(
    server: MailcrateServer, body: bytes, content_type: str | None, code: str, status: int
) -> None:
    kwargs = {"content_type": content_type} if content_type else {}
    response = signed_form(server, body, **kwargs)
    assert (response.status_code, error_code(response)) == (status, code), response.text


def test_authentication_errors_are_query_shaped(server: MailcrateServer) -> None:
    body = {"Action": "ListRoles", "Version": "2010-05-08"}
    unknown = signed_form(server, body, access_key_id="AKIANOTAREALKEY00000")
    assert (unknown.status_code, error_code(unknown)) == (403, "InvalidClientTokenId")
    wrong = signed_form(server, body, secret_access_key="x" * 40)
    assert (wrong.status_code, error_code(wrong)) == (403, "SignatureDoesNotMatch")
    import httpx

    unsigned = httpx.post(
        server.endpoint + "/",
        content=b"Action=ListRoles&Version=2010-05-08",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert (unsigned.status_code, error_code(unsigned)) == (403, "MissingAuthenticationToken")
