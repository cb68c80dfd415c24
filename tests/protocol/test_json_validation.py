"""Every constraint of the WorkMail model, broken one at a time, gets the AWS error, never a 500.

The cases are generated from botocore's model itself, so a constraint cannot be forgotten:
required members, string lengths (in code points), patterns, enums, integer ranges, and wrong
JSON types, for every WorkMail operation mailcrate implements.
"""

from __future__ import annotations

import re
import uuid
from typing import Any

import pytest
from botocore.model import Shape

from mailcrate.protocol.models import service_model
from mailcrate.services.workmail.handlers import HANDLERS
from tests.support.mailcrate_server import MailcrateServer
from tests.support.signing import signed_json_request

MODEL = service_model("workmail")
VALID_ORG = "m-" + "0" * 32
_PATTERN_BREAKERS = ["", " ", "!!", "\u00e9\u00e9", "a b", "\x01", "--", "@@", "A" * 3, "a-", "d-x", "$"]


def _valid(shape: Shape, name: str) -> Any:
    """A value that satisfies the member's constraints (so only the broken one fails)."""
    meta = shape.metadata
    if shape.type_name == "string":
        if shape.enum:
            return shape.enum[0]
        known = {
            "OrganizationId": VALID_ORG,
            "Email": "someone@example.com",
            "DirectoryId": "d-0123456789",
            "KmsKeyArn": "arn:aws:kms:us-east-1:111122223333:key/abc",
            "RoleArn": "arn:aws:iam::111122223333:role/x",
            "IdentityProviderUserId": "12345678-1234-1234-1234-123456789012",
        }
        if name in known:
            return known[name]
        return "a" * max(meta.get("min", 1), 1)
    if shape.type_name in ("integer", "long"):
        return max(meta.get("min", 1), 1)
    if shape.type_name == "boolean":
        return True
    if shape.type_name == "list":
        return []
    if shape.type_name == "structure":
        return {}
    return None


def _base(operation: str) -> dict[str, Any]:
    shape = MODEL.operation_model(operation).input_shape
    return {name: _valid(shape.members[name], name) for name in shape.required_members}


def _violations(shape: Shape, name: str) -> list[tuple[str, Any, str]]:
    """(label, bad value, expected error code) for each constraint of one member."""
    meta = shape.metadata
    out: list[tuple[str, Any, str]] = []
    kind = shape.type_name
    if kind == "string":
        out.append(("wrong-type", 12345, "SerializationException"))
        if shape.enum:
            out.append(("enum", "NOT_A_VALUE", "ValidationException"))
            return out
        if meta.get("min", 0) > 0:
            out.append(("too-short", "a" * (meta["min"] - 1), "ValidationException"))
        if "max" in meta:
            # Non-ASCII code points: length is counted in characters, not bytes.
            out.append(("too-long", "\u00e9" * (meta["max"] + 1), "ValidationException"))
        if "pattern" in meta:
            regex = re.compile(meta["pattern"])
            low, high = meta.get("min", 0), meta.get("max", 10**6)
            for candidate in _PATTERN_BREAKERS:
                padded = candidate * max(1, low) if candidate else candidate
                if low <= len(padded) <= high and regex.search(padded) is None:
                    out.append(("pattern", padded, "ValidationException"))
                    break
    elif kind in ("integer", "long"):
        out.append(("wrong-type", "ten", "SerializationException"))
        if "min" in meta:
            out.append(("below-min", meta["min"] - 1, "ValidationException"))
        if "max" in meta:
            out.append(("above-max", meta["max"] + 1, "ValidationException"))
    elif kind == "boolean":
        out.append(("wrong-type", "yes", "SerializationException"))
    elif kind == "list":
        out.append(("wrong-type", {"not": "a list"}, "SerializationException"))
    elif kind == "structure":
        out.append(("wrong-type", ["not", "an object"], "SerializationException"))
    return out


def _cases() -> list[Any]:
    cases = []
    for operation in sorted(HANDLERS):
        shape = MODEL.operation_model(operation).input_shape
        for required in shape.required_members:
            cases.append(
                pytest.param(
                    operation,
                    required,
                    "missing",
                    None,
                    "ValidationException",
                    id=f"{operation}-{required}-missing",
                )
            )
        for name, member in shape.members.items():
            for label, value, code in _violations(member, name):
                cases.append(
                    pytest.param(operation, name, label, value, code, id=f"{operation}-{name}-{label}")
                )
            if member.type_name == "structure":  # nested members, e.g. ListUsers Filters
                for inner, inner_shape in member.members.items():
                    for label, value, code in _violations(inner_shape, inner):
                        cases.append(
                            pytest.param(
                                operation,
                                f"{name}.{inner}",
                                label,
                                value,
                                code,
                                id=f"{operation}-{name}.{inner}-{label}",
                            )
                        )
    return cases


CASES = _cases()


def test_the_table_is_large_and_covers_every_operation() -> None:
    assert len(CASES) >= 150
    assert {case.values[0] for case in CASES} == set(HANDLERS)


@pytest.mark.parametrize(("operation", "member", "label", "value", "code"), CASES)
def test_broken_constraint_is_rejected(
    server: MailcrateServer, operation: str, member: str, label: str, value: Any, code: str
) -> None:
    body = _base(operation)
    if "." in member:
        outer, inner = member.split(".")
        body[outer] = {inner: value}
    elif label == "missing":
        body.pop(member)
    else:
        body[member] = value
    response = signed_json_request(
        server.endpoint,
        target=f"WorkMailService.{operation}",
        body=body,
        access_key_id=server.access_key_id,
        secret_access_key=server.secret_access_key,
    )
    assert response.status_code == 400, response.text
    error = response.json()
    assert error["__type"] == code, error
    assert response.headers["x-amzn-RequestId"]
    if code == "ValidationException":
        path = member[0].lower() + member[1:]
        if "." in path:
            outer, inner = path.split(".")
            path = f"{outer}.{inner[0].lower() + inner[1:]}"
        assert f"at '{path}'" in error["message"], error["message"]


def _post(server: MailcrateServer, **kwargs: Any):
    return signed_json_request(
        server.endpoint,
        access_key_id=server.access_key_id,
        secret_access_key=server.secret_access_key,
        **kwargs,
    )


@pytest.mark.parametrize(
    ("body", "content_type", "target", "status", "code"),
    [
        (
            b"{not json",
            "application/x-amz-json-1.1",
            "WorkMailService.ListOrganizations",
            400,
            "SerializationException",
        ),
        (
            b"[1, 2]",
            "application/x-amz-json-1.1",
            "WorkMailService.ListOrganizations",
            400,
            "SerializationException",
        ),
        (
            b"\xff\xfe",
            "application/x-amz-json-1.1",
            "WorkMailService.ListOrganizations",
            400,
            "SerializationException",
        ),
        (b"{}", "text/plain", "WorkMailService.ListOrganizations", 400, "SerializationException"),
        (
            b"{}",
            "application/x-amz-json-1.1",
            "WorkMailService.NoSuchOperation",
            400,
            "UnknownOperationException",
        ),
        (
            b"{}",
            "application/x-amz-json-1.1",
            "NotAService.ListOrganizations",
            400,
            "UnknownOperationException",
        ),
        (b"{}", "application/x-amz-json-1.1", "WorkMailService.", 400, "UnknownOperationException"),
        (
            b"{}",
            "application/x-amz-json-1.1",
            "WorkMailService.CreateGroup",
            400,
            "UnknownOperationException",
        ),
    ],
)
def test_malformed_requests(
    server: MailcrateServer, body: bytes, content_type: str, target: str, status: int, code: str
) -> None:
    response = _post(server, target=target, body=body, content_type=content_type)
    assert response.status_code == status
    assert response.json()["__type"] == code


def test_oversize_body_is_refused_without_reading_it_all(server: MailcrateServer) -> None:
    huge = b'{"Alias": "' + b"a" * (11 * 1024 * 1024) + b'"}'
    response = _post(server, target="WorkMailService.CreateOrganization", body=huge)
    assert response.status_code == 413
    assert response.json()["__type"] == "RequestEntityTooLarge"


def test_nothing_changes_after_rejected_input(server: MailcrateServer) -> None:
    client = server.client("workmail")
    before = client.list_organizations()["OrganizationSummaries"]
    alias = "-" + uuid.uuid4().hex  # may not start with "-"
    response = _post(server, target="WorkMailService.CreateOrganization", body={"Alias": alias})
    assert response.status_code == 400
    assert client.list_organizations()["OrganizationSummaries"] == before


def test_sensitive_values_are_not_echoed(server: MailcrateServer) -> None:
    secret = "\u00ff" * 300  # too long a password
    response = _post(
        server,
        target="WorkMailService.CreateUser",
        body={"OrganizationId": VALID_ORG, "Name": "x", "DisplayName": "x", "Password": secret},
    )
    assert response.status_code == 400
    assert secret[:20] not in response.text and "***" in response.text
