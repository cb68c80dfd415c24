"""The WorkMail directory API through the real ``aws`` CLI and boto3, as an administrator uses it."""

from __future__ import annotations

import uuid

import pytest
from botocore import xform_name
from botocore.exceptions import ClientError

from tests.support.mailcrate_server import MailcrateServer


def _alias() -> str:
    return "org" + uuid.uuid4().hex[:12]


def _validated(client, operation: str, **params):
    """Call, then check the response against botocore's own output shape validation."""
    from botocore.validate import ParamValidator

    response = getattr(client, xform_name(operation))(**params)
    response.pop("ResponseMetadata", None)
    shape = client.meta.service_model.operation_model(operation).output_shape
    report = ParamValidator().validate(response, shape)
    assert not report.has_errors(), report.generate_report()
    return response


def test_full_directory_flow_with_aws_cli(server: MailcrateServer) -> None:
    alias = _alias()
    org_id = server.aws("workmail", "create-organization", "--alias", alias)["OrganizationId"]
    assert org_id.startswith("m-") and len(org_id) == 34

    org = server.aws("workmail", "describe-organization", "--organization-id", org_id)
    assert org["State"] == "Active"
    assert org["Alias"] == alias
    assert org["DefaultMailDomain"] == f"{alias}.awsapps.com"
    assert org["ARN"] == f"arn:aws:workmail:us-east-1:{server.account_id}:organization/{org_id}"

    user_id = server.aws(
        "workmail",
        "create-user",
        "--organization-id",
        org_id,
        "--name",
        "alice",
        "--display-name",
        "Alice Doe",
        "--password",
        "Corr3ct-Horse",
    )["UserId"]
    described = server.aws("workmail", "describe-user", "--organization-id", org_id, "--user-id", user_id)
    assert described["State"] == "DISABLED" and described["Name"] == "alice"

    email = f"alice@{alias}.awsapps.com"
    server.aws(
        "workmail",
        "register-to-work-mail",
        "--organization-id",
        org_id,
        "--entity-id",
        user_id,
        "--email",
        email,
    )
    for key in (user_id, "alice", "ALICE", email, email.upper()):
        seen = server.aws("workmail", "describe-user", "--organization-id", org_id, "--user-id", key)
        assert seen["UserId"] == user_id and seen["State"] == "ENABLED" and seen["Email"] == email

    listed = server.aws("workmail", "list-users", "--organization-id", org_id)["Users"]
    assert [(u["Id"], u["State"]) for u in listed] == [(user_id, "ENABLED")]

    details = server.aws("workmail", "get-mailbox-details", "--organization-id", org_id, "--user-id", "alice")
    assert details["MailboxQuota"] > 0 and details["MailboxSize"] >= 0

    server.aws("workmail", "deregister-from-work-mail", "--organization-id", org_id, "--entity-id", email)
    assert (
        server.aws("workmail", "describe-user", "--organization-id", org_id, "--user-id", user_id)["State"]
        == "DISABLED"
    )
    server.aws("workmail", "delete-user", "--organization-id", org_id, "--user-id", user_id)
    assert (
        server.aws("workmail", "describe-user", "--organization-id", org_id, "--user-id", user_id)["State"]
        == "DELETED"
    )

    deleted = server.aws("workmail", "delete-organization", "--organization-id", org_id, "--delete-directory")
    assert deleted == {"OrganizationId": org_id, "State": "Deleted"}
    assert server.aws("workmail", "describe-organization", "--organization-id", org_id)["State"] == "Deleted"
    failed = server.aws(
        "workmail",
        "create-user",
        "--organization-id",
        org_id,
        "--name",
        "bob",
        "--display-name",
        "Bob",
        check=False,
    )
    assert failed.returncode != 0 and "OrganizationStateException" in failed.stderr


def test_list_organizations_paginates_with_cli_and_boto3(server: MailcrateServer) -> None:
    created = [
        server.client("workmail").create_organization(Alias=_alias())["OrganizationId"] for _ in range(7)
    ]
    # The CLI follows NextToken itself when given a small page size.
    ids = [
        o["OrganizationId"]
        for o in server.aws("workmail", "list-organizations", "--page-size", "2")["OrganizationSummaries"]
    ]
    assert set(created) <= set(ids) and len(ids) == len(set(ids))

    client = server.client("workmail")
    pages, token, seen = 0, None, []
    while True:
        kwargs = {"MaxResults": 3, **({"NextToken": token} if token else {})}
        page = _validated(client, "ListOrganizations", **kwargs)
        pages += 1
        seen += [o["OrganizationId"] for o in page["OrganizationSummaries"]]
        assert len(page["OrganizationSummaries"]) <= 3
        token = page.get("NextToken")
        if not token:
            break
    assert pages >= 3 and seen == ids


def test_boto3_responses_pass_botocore_output_validation(server: MailcrateServer) -> None:
    client = server.client("workmail")
    alias = _alias()
    org_id = _validated(client, "CreateOrganization", Alias=alias)["OrganizationId"]
    _validated(client, "DescribeOrganization", OrganizationId=org_id)
    users = []
    for i in range(5):
        user_id = _validated(
            client, "CreateUser", OrganizationId=org_id, Name=f"user{i}", DisplayName=f"User {i}"
        )["UserId"]
        _validated(
            client,
            "RegisterToWorkMail",
            OrganizationId=org_id,
            EntityId=user_id,
            Email=f"user{i}@{alias}.awsapps.com",
        )
        users.append(user_id)
    _validated(
        client, "UpdateUser", OrganizationId=org_id, UserId="user0", DisplayName="Renamed", JobTitle="CTO"
    )
    described = _validated(client, "DescribeUser", OrganizationId=org_id, UserId=users[0])
    assert described["DisplayName"] == "Renamed" and described["JobTitle"] == "CTO"
    assert described["EnabledDate"].tzinfo is not None

    seen, token = [], None
    while True:
        page = _validated(
            client,
            "ListUsers",
            OrganizationId=org_id,
            MaxResults=2,
            **({"NextToken": token} if token else {}),
        )
        seen += [u["Id"] for u in page["Users"]]
        token = page.get("NextToken")
        if not token:
            break
    assert seen == users
    filtered = _validated(client, "ListUsers", OrganizationId=org_id, Filters={"UsernamePrefix": "user3"})
    assert [u["Id"] for u in filtered["Users"]] == [users[3]]
    _validated(client, "GetMailboxDetails", OrganizationId=org_id, UserId=users[1])


@pytest.mark.parametrize(
    ("operation", "params", "code"),
    [
        ("DescribeOrganization", {"OrganizationId": "m-" + "0" * 32}, "OrganizationNotFoundException"),
        ("DescribeUser", {"OrganizationId": "ORG", "UserId": "nobody"}, "EntityNotFoundException"),
        (
            "RegisterToWorkMail",
            {"OrganizationId": "ORG", "EntityId": "alice", "Email": "alice@elsewhere.example.com"},
            "MailDomainNotFoundException",
        ),
        (
            "CreateUser",
            {"OrganizationId": "ORG", "Name": "alice", "DisplayName": "Again"},
            "NameAvailabilityException",
        ),
        ("DeleteUser", {"OrganizationId": "ORG", "UserId": "bob"}, "EntityStateException"),
        ("DeregisterFromWorkMail", {"OrganizationId": "ORG", "EntityId": "alice"}, "EntityStateException"),
        (
            "RegisterToWorkMail",
            {"OrganizationId": "ORG", "EntityId": "bob", "Email": "BOB@ALIAS.awsapps.com"},
            "EntityAlreadyRegisteredException",
        ),
        (
            "RegisterToWorkMail",
            {"OrganizationId": "ORG", "EntityId": "carol", "Email": "bob@ALIAS.awsapps.com"},
            "EmailAddressInUseException",
        ),
        (
            "CreateUser",
            {"OrganizationId": "ORG", "Name": "dave", "DisplayName": "D", "Password": "short"},
            "InvalidPasswordException",
        ),
        ("GetMailboxDetails", {"OrganizationId": "ORG", "UserId": "alice"}, "EntityNotFoundException"),
        ("ListUsers", {"OrganizationId": "ORG", "NextToken": "not-a-token"}, "InvalidParameterException"),
        ("CreateOrganization", {"Alias": "ALIAS"}, "NameAvailabilityException"),
        (
            "CreateOrganization",
            {"Alias": "other" + "x" * 8, "DirectoryId": "d-0123456789"},
            "InvalidParameterException",
        ),
        (
            "DeleteOrganization",
            {"OrganizationId": "ORG", "DeleteDirectory": True},
            "OrganizationStateException",
        ),
    ],
)
def test_service_errors_are_the_services_own(
    server: MailcrateServer, operation: str, params: dict, code: str
) -> None:
    client = server.client("workmail")
    alias = _alias()
    org_id = client.create_organization(Alias=alias)["OrganizationId"]
    client.create_user(OrganizationId=org_id, Name="alice", DisplayName="Alice")
    bob = client.create_user(OrganizationId=org_id, Name="bob", DisplayName="Bob")["UserId"]
    client.create_user(OrganizationId=org_id, Name="carol", DisplayName="Carol")
    client.register_to_work_mail(OrganizationId=org_id, EntityId=bob, Email=f"bob@{alias}.awsapps.com")
    filled = {
        key: (value.replace("ORG", org_id).replace("ALIAS", alias) if isinstance(value, str) else value)
        for key, value in params.items()
    }
    with pytest.raises(ClientError) as caught:
        getattr(client, _snake(operation))(**filled)
    assert caught.value.response["Error"]["Code"] == code
    assert 400 <= caught.value.response["ResponseMetadata"]["HTTPStatusCode"] < 500


def _snake(name: str) -> str:
    import botocore

    return botocore.xform_name(name)


def test_everything_survives_a_restart(fresh_server: MailcrateServer) -> None:
    client = fresh_server.client("workmail")
    alias = _alias()
    org_id = client.create_organization(Alias=alias)["OrganizationId"]
    user_id = client.create_user(OrganizationId=org_id, Name="alice", DisplayName="Alice")["UserId"]
    client.register_to_work_mail(OrganizationId=org_id, EntityId=user_id, Email=f"alice@{alias}.awsapps.com")

    assert fresh_server.stop() == 0  # SIGTERM: a clean shutdown, exit status 0
    fresh_server.start()

    client = fresh_server.client("workmail")
    assert client.describe_organization(OrganizationId=org_id)["State"] == "Active"
    user = client.describe_user(OrganizationId=org_id, UserId=f"alice@{alias}.awsapps.com")
    assert user["UserId"] == user_id and user["State"] == "ENABLED"
