"""The query protocol, round-tripped through botocore's own serializer and parser.

Requests are written by botocore's ``QuerySerializer`` and read by :class:`QueryProtocol`;
responses and errors are written by :class:`QueryProtocol` and read by botocore's
``QueryParser``. Models of several query services cover lists (``member``, locationName,
flattened), maps, nested structures, integers, booleans and timestamps.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

import pytest
from botocore.parsers import create_parser
from botocore.serialize import create_serializer
from hypothesis import given, settings
from hypothesis import strategies as st

from mailcrate.protocol.errors import AuthError, ServiceError, ValidationError
from mailcrate.protocol.http import Headers, HttpRequest
from mailcrate.protocol.models import operation_model, service_model
from mailcrate.protocol.query import QueryProtocol

PROTOCOL = QueryProtocol("ValidationError")
T0 = datetime(2026, 11, 25, 14, 7, 18, tzinfo=UTC)


def _request(body: bytes | str, method: str = "POST", query: str = "") -> HttpRequest:
    if isinstance(body, str):
        body = body.encode()
    headers = Headers([("Content-Type", "application/x-www-form-urlencoded; charset=utf-8")])
    return HttpRequest(method=method, raw_path="/", query_string=query, headers=headers, body=body)


def _serialized(service: str, operation: str, params: dict[str, Any]) -> HttpRequest:
    model = operation_model(service, operation)
    serialized = create_serializer("query").serialize_to_request(params, model)
    return _request(urlencode(serialized["body"]))


def _roundtrip(service: str, operation: str, params: dict[str, Any]) -> dict[str, Any]:
    request = _serialized(service, operation, params)
    assert PROTOCOL.operation_name(request, service_model(service)) == operation
    return PROTOCOL.parse(request, operation_model(service, operation))


def _parsed_response(service: str, operation: str, output: dict[str, Any]) -> dict[str, Any]:
    model = operation_model(service, operation)
    response = PROTOCOL.serialize(model, output, "req-1")
    assert response.status == 200
    assert response.header("Content-Type") == "text/xml"
    parsed = create_parser("query").parse(
        {"body": response.body, "headers": {}, "status_code": 200}, model.output_shape
    )
    assert parsed["ResponseMetadata"]["RequestId"] == "req-1"
    parsed.pop("ResponseMetadata")
    return parsed


def _parsed_error(error: ServiceError, service: str = "iam") -> tuple[int, dict[str, Any]]:
    response = PROTOCOL.serialize_error(error, service_model(service), "req-2")
    parsed = create_parser("query").parse(
        {"body": response.body, "headers": {}, "status_code": response.status}, None
    )
    return response.status, parsed


# --- requests ----------------------------------------------------------------------------------
REQUEST_CASES = [
    (
        "iam",
        "CreateRole",
        {
            "RoleName": "WorkmailMailboxExportRole",
            "Path": "/service/",
            "AssumeRolePolicyDocument": '{"Version":"2012-10-17","Statement":[]}\n',
            "MaxSessionDuration": 7200,
            "Tags": [{"Key": "team", "Value": "mail"}, {"Key": "env", "Value": "a=b&c d"}],
        },
    ),
    ("iam", "ListRoles", {"PathPrefix": "/", "MaxItems": 5, "Marker": "abc=="}),
    (
        "sts",
        "AssumeRole",
        {
            "RoleArn": "arn:aws:iam::111122223333:role/x",
            "RoleSessionName": "s1",
            "DurationSeconds": 900,
            "ExternalId": "111122223333",
            "PolicyArns": [{"arn": "arn:aws:iam::aws:policy/ReadOnlyAccess"}],
            "Tags": [{"Key": "k", "Value": "v"}],
            "TransitiveTagKeys": ["k"],
        },
    ),
    # Map (entry.N.key/value) and list of structures.
    (
        "sns",
        "CreateTopic",
        {
            "Name": "t",
            "Attributes": {"DisplayName": "x", "Policy": "{}"},
            "Tags": [{"Key": "a", "Value": "b"}],
        },
    ),
    # Flattened list with a member locationName (Attribute.N.Name), nested structure, boolean.
    (
        "sdb",
        "PutAttributes",
        {
            "DomainName": "d",
            "ItemName": "i",
            "Attributes": [{"Name": "n1", "Value": "v1", "Replace": True}, {"Name": "n2", "Value": "v2"}],
            "Expected": {"Name": "n1", "Value": "v0", "Exists": False},
        },
    ),
    # Timestamps, integers, lists whose members have a locationName, list inside a structure list.
    (
        "rds",
        "DescribeEvents",
        {
            "StartTime": T0,
            "EndTime": datetime(2026, 11, 26, tzinfo=UTC),
            "Duration": 60,
            "EventCategories": ["backup", "failover"],
            "Filters": [{"Name": "f", "Values": ["1", "2"]}],
            "MaxRecords": 20,
        },
    ),
    # An empty list is sent as "Name=" and reads back as [].
    ("sns", "CreateTopic", {"Name": "t", "Tags": []}),
]


@pytest.mark.parametrize(("service", "operation", "params"), REQUEST_CASES, ids=lambda v: str(v)[:20])
def test_request_roundtrip(service: str, operation: str, params: dict[str, Any]) -> None:
    assert _roundtrip(service, operation, params) == params


def test_get_request_reads_the_query_string() -> None:
    request = _request(b"", method="GET", query="Action=GetRole&Version=2010-05-08&RoleName=r")
    assert PROTOCOL.operation_name(request, service_model("iam")) == "GetRole"
    assert PROTOCOL.parse(request, operation_model("iam", "GetRole")) == {"RoleName": "r"}


def test_cli_wire_format_from_recipes() -> None:
    """The exact body aws-cli 1.45 sent for create-role (RECIPES.md section 6)."""
    body = (
        "Action=CreateRole&Version=2010-05-08&RoleName=X&AssumeRolePolicyDocument=%7B%22Version%22%3A"
        "%222012-10-17%22%2C%22Statement%22%3A%5B%7B%22Effect%22%3A%22Allow%22%2C%22Principal%22%3A%7B"
        "%22Service%22%3A%22export.workmail.amazonaws.com%22%7D%2C%22Action%22%3A%22sts%3AAssumeRole%22"
        "%2C%22Condition%22%3A%7B%22StringEquals%22%3A%7B%22sts%3AExternalId%22%3A%22m-0123456789abcdef"
        "0123456789abcdef%22%7D%7D%7D%5D%7D%0A"
    )
    params = PROTOCOL.parse(_request(body), operation_model("iam", "CreateRole"))
    assert params["RoleName"] == "X"
    assert params["AssumeRolePolicyDocument"].startswith('{"Version":"2012-10-17"')
    assert params["AssumeRolePolicyDocument"].endswith("}\n")


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ("RoleName=r&MaxItems=abc", "Member must be of type integer"),
        ("RoleName=r&MaxItems=99999999999", "Member must be of type integer"),
        ("MaxItems=0", "greater than or equal to 1"),
        ("MaxItems=1001", "less than or equal to 1000"),
        ("PathPrefix=nope", "regular expression pattern"),
    ],
)
def test_bad_values_are_iam_validation_errors(body: str, fragment: str) -> None:
    with pytest.raises(ValidationError) as caught:
        PROTOCOL.parse(_request("Action=ListRoles&" + body), operation_model("iam", "ListRoles"))
    assert caught.value.code == "ValidationError"
    assert fragment in caught.value.message


def test_bad_boolean_and_timestamp() -> None:
    with pytest.raises(ValidationError, match="type boolean"):
        PROTOCOL.parse(
            _request(
                "DomainName=d&ItemName=i&Attribute.1.Name=n&Attribute.1.Value=v&Attribute.1.Replace=maybe"
            ),
            operation_model("sdb", "PutAttributes"),
        )
    with pytest.raises(ValidationError, match="type timestamp"):
        PROTOCOL.parse(_request("StartTime=yesterday"), operation_model("rds", "DescribeEvents"))


@pytest.mark.parametrize("name", ["bad name", "a/b", "r\u00f4le", "x!", "semi;colon", "\x01"])
def test_patterns_match_the_whole_value(name: str) -> None:
    """``[\\w+=,.@-]+`` is anchored: a role name with one bad character is rejected."""
    with pytest.raises(ValidationError, match="regular expression pattern"):
        PROTOCOL.parse(_request(urlencode({"RoleName": name})), operation_model("iam", "GetRole"))


def test_missing_required_member() -> None:
    with pytest.raises(
        ValidationError, match="'roleName' failed to satisfy constraint: Member must not be null"
    ):
        PROTOCOL.parse(_request("Action=GetRole"), operation_model("iam", "GetRole"))


@pytest.mark.parametrize(
    ("body", "code"), [("Version=2010-05-08", "MissingAction"), ("Action=Nope", "InvalidAction")]
)
def test_unknown_or_missing_action(body: str, code: str) -> None:
    with pytest.raises(ServiceError) as caught:
        PROTOCOL.operation_name(_request(body), service_model("iam"))
    assert caught.value.code == code


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(
                [
                    "RoleName",
                    "Path",
                    "Tags",
                    "Tags.member",
                    "Tags.member.1",
                    "Tags.member.1.Key",
                    "Tags.member.x.Value",
                    "Tags.member.999999.Key",
                    "MaxSessionDuration",
                    "AssumeRolePolicyDocument",
                    "Tags.member.1.Key.deeper",
                    ".",
                    "",
                ]
            ),
            st.text(max_size=30),
        ),
        max_size=8,
    )
)
def test_arbitrary_forms_parse_or_fail_cleanly(pairs: list[tuple[str, str]]) -> None:
    try:
        PROTOCOL.parse(_request(urlencode(pairs)), operation_model("iam", "CreateRole"))
    except ServiceError as error:
        status, parsed = _parsed_error(error)
        assert status == 400 and parsed["Error"]["Code"] == "ValidationError"


# --- responses ---------------------------------------------------------------------------------
def test_role_response() -> None:
    role = {
        "Path": "/",
        "RoleName": "R",
        "RoleId": "AROAEXAMPLE1234567890",
        "Arn": "arn:aws:iam::111122223333:role/R",
        "CreateDate": T0,
        "AssumeRolePolicyDocument": "%7B%22Version%22%3A%222012-10-17%22%7D",
        "MaxSessionDuration": 3600,
        "Tags": [{"Key": "a", "Value": "<&>\"'"}],
        "RoleLastUsed": {},
    }
    parsed = _parsed_response("iam", "GetRole", {"Role": role})
    assert parsed == {"Role": {**role, "RoleLastUsed": {}}}


def test_list_response_with_truncation() -> None:
    output = {"PolicyNames": ["a", "b"], "IsTruncated": True, "Marker": "m=="}
    assert _parsed_response("iam", "ListRolePolicies", output) == output
    empty = _parsed_response("iam", "ListRolePolicies", {"PolicyNames": [], "IsTruncated": False})
    assert empty == {"PolicyNames": [], "IsTruncated": False}


def test_sts_credentials_response() -> None:
    output = {
        "Credentials": {
            "AccessKeyId": "ASIAX",
            "SecretAccessKey": "s",
            "SessionToken": "t",
            "Expiration": T0,
        },
        "AssumedRoleUser": {"AssumedRoleId": "AROAX:s", "Arn": "arn:aws:sts::111122223333:assumed-role/R/s"},
        "PackedPolicySize": 0,
    }
    assert _parsed_response("sts", "AssumeRole", output) == output


def test_map_and_flattened_list_responses() -> None:
    attrs = {"Attributes": {"DisplayName": "x", "Owner": "111122223333"}}
    assert _parsed_response("sns", "GetTopicAttributes", attrs) == attrs
    items = {
        "Items": [{"Name": "i1", "Attributes": [{"Name": "a", "Value": "1"}, {"Name": "b", "Value": "2"}]}]
    }
    assert _parsed_response("sdb", "Select", items) == items


def test_response_without_output_shape() -> None:
    response = PROTOCOL.serialize(operation_model("iam", "DeleteRole"), {}, "req-3")
    assert b"<DeleteRoleResponse" in response.body and b"<RequestId>req-3</RequestId>" in response.body


def test_response_xml_namespace_and_wrapper() -> None:
    response = PROTOCOL.serialize(operation_model("sts", "GetCallerIdentity"), {"Account": "1"}, "r")
    body = response.body.decode()
    assert '<GetCallerIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">' in body
    assert "<GetCallerIdentityResult><Account>1</Account></GetCallerIdentityResult>" in body


# --- errors ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("error", "status", "code"),
    [
        (
            ServiceError("The role with name x cannot be found.", code="NoSuchEntity", status=404),
            404,
            "NoSuchEntity",
        ),
        (ServiceError("no", code="AccessDenied", status=403), 403, "AccessDenied"),
        (
            ValidationError.from_problems(["Value '\x01<&>' at 'x' bad"], "ValidationError"),
            400,
            "ValidationError",
        ),
    ],
)
def test_errors_parse_in_botocore(error: ServiceError, status: int, code: str) -> None:
    got_status, parsed = _parsed_error(error)
    assert got_status == status
    assert parsed["Error"]["Code"] == code
    assert parsed["Error"]["Message"] == error.message.replace("\x01", "\ufffd")
    assert parsed["ResponseMetadata"]["RequestId"] == "req-2"


def test_error_type_sender_and_receiver() -> None:
    sender = PROTOCOL.serialize_error(ServiceError("x", code="C"), None, "r").body
    assert b"<Type>Sender</Type>" in sender
    from mailcrate.protocol.errors import InternalFailure

    receiver = PROTOCOL.serialize_error(InternalFailure("x"), None, "r")
    assert receiver.status == 500 and b"<Type>Receiver</Type>" in receiver.body


def test_auth_error_codes_cover_every_kind() -> None:
    kinds = {"missing", "unknown-key", "signature", "skew", "expired", "incomplete"}
    assert set(PROTOCOL.auth_error_codes) == kinds
    assert PROTOCOL.auth_error_codes["unknown-key"] == "InvalidClientTokenId"
    assert PROTOCOL.auth_error_codes["expired"] == "ExpiredToken"
    assert isinstance(AuthError("expired", "m"), ServiceError)
