"""SigV4 authentication and tenant isolation, against a real server."""

from __future__ import annotations

import datetime as dt

import httpx
import pytest
from botocore.exceptions import ClientError

from tests.support.mailcrate_server import MailcrateServer
from tests.support.signing import signed_json_request

TARGET = "WorkMailService.ListOrganizations"


def _call(server: MailcrateServer, **kwargs):
    params = {"access_key_id": server.access_key_id, "secret_access_key": server.secret_access_key, **kwargs}
    return signed_json_request(server.endpoint, target=TARGET, body={}, **params)


def test_signed_request_is_accepted(server: MailcrateServer) -> None:
    assert _call(server).status_code == 200


def test_unsigned_request_is_rejected(server: MailcrateServer) -> None:
    response = httpx.post(
        server.endpoint + "/",
        content=b"{}",
        headers={"X-Amz-Target": TARGET, "Content-Type": "application/x-amz-json-1.1"},
    )
    assert response.status_code == 403
    assert response.json()["__type"] == "MissingAuthenticationTokenException"


def test_health_needs_no_signature(server: MailcrateServer) -> None:
    response = httpx.get(server.endpoint + "/health")
    assert response.status_code == 200 and response.json() == {"status": "ok"}


def test_unknown_access_key(server: MailcrateServer) -> None:
    response = _call(server, access_key_id="AKIAUNKNOWNKEY000000")
    assert response.status_code == 403
    assert response.json()["__type"] == "UnrecognizedClientException"


def test_wrong_secret(server: MailcrateServer) -> None:
    response = _call(server, secret_access_key="x" * 40)
    assert response.status_code == 403
    assert response.json()["__type"] == "InvalidSignatureException"


def test_tampered_body(server: MailcrateServer) -> None:
    response = _call(server, tamper=b'{"MaxResults": 1}')
    assert response.status_code == 403
    assert response.json()["__type"] == "InvalidSignatureException"


@pytest.mark.parametrize("minutes", [-16, 16, -60 * 24])
def test_stale_or_future_timestamps(server: MailcrateServer, minutes: int) -> None:
    when = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=minutes)
    response = _call(server, when=when)
    assert response.status_code == 403
    body = response.json()
    assert body["__type"] == "InvalidSignatureException"
    assert "Signature expired" in body["message"] or "not yet current" in body["message"]


def test_timestamp_within_skew_is_fine(server: MailcrateServer) -> None:
    assert _call(server, when=dt.datetime.now(dt.UTC) - dt.timedelta(minutes=10)).status_code == 200


def test_boto3_raises_the_right_client_errors(server: MailcrateServer) -> None:
    with pytest.raises(ClientError) as caught:
        server.client("workmail", secret_access_key="y" * 40).list_organizations()
    assert caught.value.response["Error"]["Code"] == "InvalidSignatureException"
    with pytest.raises(ClientError) as caught:
        server.client("workmail", access_key_id="AKIANOSUCHKEY0000000").list_organizations()
    assert caught.value.response["Error"]["Code"] == "UnrecognizedClientException"


@pytest.mark.parametrize(
    "header",
    [
        "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20260101/us-east-1/workmail, SignedHeaders=host, Signature=ab",
        "AWS4-HMAC-SHA256 garbage",
        "Basic dXNlcjpwYXNz",
    ],
)
def test_malformed_authorization_headers(server: MailcrateServer, header: str) -> None:
    response = httpx.post(
        server.endpoint + "/",
        content=b"{}",
        headers={
            "X-Amz-Target": TARGET,
            "Content-Type": "application/x-amz-json-1.1",
            "Authorization": header,
            "X-Amz-Date": "20260101T000000Z",
        },
    )
    assert response.status_code == 403
    assert response.json()["__type"] == "IncompleteSignatureException"


def test_second_account_sees_nothing_of_the_first(server: MailcrateServer) -> None:
    created = server.add_account("444455556666", "AKIASECONDACCOUNT000", "s" * 40)
    assert "AKIASECONDACCOUNT000" in created.stdout

    first = server.client("workmail")
    org_id = first.create_organization(Alias="tenantone")["OrganizationId"]
    first.create_user(OrganizationId=org_id, Name="alice", DisplayName="Alice")

    second = server.client("workmail", access_key_id="AKIASECONDACCOUNT000", secret_access_key="s" * 40)
    assert org_id not in [o["OrganizationId"] for o in second.list_organizations()["OrganizationSummaries"]]
    for call in (
        lambda: second.describe_organization(OrganizationId=org_id),
        lambda: second.list_users(OrganizationId=org_id),
        lambda: second.describe_user(OrganizationId=org_id, UserId="alice"),
        lambda: second.create_user(OrganizationId=org_id, Name="mallory", DisplayName="M"),
        lambda: second.delete_organization(OrganizationId=org_id, DeleteDirectory=True, ForceDelete=True),
    ):
        with pytest.raises(ClientError) as caught:
            call()
        assert caught.value.response["Error"]["Code"] == "OrganizationNotFoundException"
    assert first.describe_organization(OrganizationId=org_id)["State"] == "Active"
    assert [u["Name"] for u in first.list_users(OrganizationId=org_id)["Users"]] == ["alice"]


def test_regions_are_separate(server: MailcrateServer) -> None:
    east = server.client("workmail")
    org_id = east.create_organization(Alias="regional")["OrganizationId"]
    west = server.client("workmail", region="eu-west-1")
    with pytest.raises(ClientError) as caught:
        west.describe_organization(OrganizationId=org_id)
    assert caught.value.response["Error"]["Code"] == "OrganizationNotFoundException"


def test_presigned_query_signature_for_a_non_s3_service(server: MailcrateServer) -> None:
    """The form tools such as EKS token generators use: a presigned STS GetCallerIdentity GET."""
    sts = server.client("sts")
    url = sts.generate_presigned_url("get_caller_identity", ExpiresIn=60, HttpMethod="GET")
    response = httpx.get(url)
    assert response.status_code == 200
    assert f"arn:aws:iam::{server.account_id}:root" in response.text
    tampered = url.replace("Action=GetCallerIdentity", "Action=GetCallerIdentity&Extra=1")
    assert httpx.get(tampered).status_code == 403
