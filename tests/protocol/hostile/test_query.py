"""Hostile, signed IAM and STS requests (query protocol) against a real ``mailcrate serve``."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.protocol.hostile.support import (
    DEEP,
    ROLE,
    SERVE_ARGS,  # noqa: F401 - read by the server fixture (tests/conftest.py)
    Build,
    World,
    _deep,
    _forged,
    _iam,
    _sts,
    assert_error,
    query,
    send,
)

_ASSUME = {"RoleArn": ROLE, "RoleSessionName": "s"}


QUERY_CASES: list[Any] = [
    pytest.param(
        lambda w: query(w, "iam", {"Version": "2010-05-08"}), 400, "MissingAction", id="iam-no-action"
    ),
    pytest.param(
        lambda w: query(w, "iam", _iam(Action="Nope")), 400, "InvalidAction", id="iam-unknown-action"
    ),
    pytest.param(
        lambda w: query(w, "iam", b"Action=\xff\xfe"), 400, "InvalidAction", id="iam-action-not-utf8"
    ),
    pytest.param(
        lambda w: query(
            w, "iam", _iam(Action="CreateRole", RoleName="hostile-deep", AssumeRolePolicyDocument=_deep())
        ),
        400,
        "MalformedPolicyDocument",
        id="iam-policy-nested-10000",
    ),
    pytest.param(
        lambda w: query(
            w,
            "iam",
            _iam(
                Action="CreateRole",
                RoleName="hostile-deep-obj",
                AssumeRolePolicyDocument='{"a":' * DEEP + "1" + "}" * DEEP,
            ),
        ),
        400,
        "MalformedPolicyDocument",
        id="iam-policy-nested-objects",
    ),
    pytest.param(
        lambda w: query(w, "iam", _iam(Action="CreateRole", RoleName="a b", AssumeRolePolicyDocument="{}")),
        400,
        "ValidationError",
        id="iam-role-name-pattern",
    ),
    pytest.param(
        lambda w: query(w, "iam", b"Action=GetRole&Version=2010-05-08&RoleName=%FF%FE"),
        400,
        "ValidationError",
        id="iam-role-name-not-utf8",
    ),
    pytest.param(
        lambda w: query(w, "iam", _iam(Action="ListRoles", MaxItems="0")),
        400,
        "ValidationError",
        id="maxitems-0",
    ),
    pytest.param(
        lambda w: query(w, "iam", _iam(Action="ListRoles", MaxItems="-1")),
        400,
        "ValidationError",
        id="maxitems-neg",
    ),
    pytest.param(
        lambda w: query(w, "iam", _iam(Action="ListRoles", MaxItems="1e30")),
        400,
        "ValidationError",
        id="maxitems-1e30",
    ),
    pytest.param(
        lambda w: query(w, "iam", _iam(Action="ListRoles", MaxItems="9" * 40)),
        400,
        "ValidationError",
        id="maxitems-huge",
    ),
    pytest.param(
        lambda w: query(w, "iam", _iam(Action="ListRoles", Marker="garbage")),
        400,
        "InvalidInput",
        id="marker-garbage",
    ),
    pytest.param(
        lambda w: query(w, "iam", _iam(Action="ListRoles", Marker=_forged("roles", [{"a": 1}]))),
        400,
        "InvalidInput",
        id="marker-forged",
    ),
    pytest.param(
        lambda w: query(
            w,
            "iam",
            [("Action", "GetRole"), ("Version", "2010-05-08"), ("RoleName", "no-such"), ("RoleName", "x")],
        ),
        404,
        "NoSuchEntity",
        id="iam-duplicate-params",
    ),
    pytest.param(
        lambda w: query(
            w,
            "iam",
            _iam(
                Action="CreateRole",
                RoleName="hostile-tag",
                AssumeRolePolicyDocument="{}",
                **{"Tags.member.1.Key.x": "1"},
            ),
        ),
        400,
        "ValidationError",
        id="iam-tag-key-structure",
    ),
    pytest.param(
        lambda w: query(
            w,
            "iam",
            _iam(
                Action="CreateRole",
                RoleName="hostile-tag-case",
                AssumeRolePolicyDocument=json.dumps(
                    {
                        "Statement": [
                            {
                                "Effect": "Allow",
                                "Principal": {"Service": "x.amazonaws.com"},
                                "Action": "sts:AssumeRole",
                            }
                        ]
                    }
                ),
                **{
                    "Tags.member.1.Key": "Cost",
                    "Tags.member.1.Value": "a",
                    "Tags.member.2.Key": "cost",
                    "Tags.member.2.Value": "b",
                },
            ),
        ),
        400,
        "InvalidInput",
        id="iam-tag-keys-differ-in-case",
    ),
    pytest.param(
        lambda w: query(w, "iam", _iam(Action="GetRole", **{"RoleName." + ".".join(["a"] * 5000): "x"})),
        400,
        "ValidationError",
        id="iam-key-5000-segments",
    ),
    pytest.param(
        lambda w: query(w, "sts", _sts(Action="AssumeRole", DurationSeconds="abc", **_ASSUME)),
        400,
        "ValidationError",
        id="sts-duration-not-number",
    ),
    pytest.param(
        lambda w: query(w, "sts", _sts(Action="AssumeRole", DurationSeconds="99999999999", **_ASSUME)),
        400,
        "ValidationError",
        id="sts-duration-huge",
    ),
    pytest.param(
        lambda w: query(
            w, "sts", _sts(Action="AssumeRole", **_ASSUME, **{"TransitiveTagKeys.member.1.x": "y"})
        ),
        400,
        "ValidationError",
        id="sts-list-item-structure-where-string-goes",
    ),
    pytest.param(
        lambda w: query(w, "sts", _sts(Action="AssumeRole", **_ASSUME, **{"PolicyArns.member.1.arn.x": "y"})),
        400,
        "ValidationError",
        id="sts-structure-member-nested",
    ),
    pytest.param(
        lambda w: query(w, "sts", _sts(Action="AssumeRole", **_ASSUME, **{"Tags.member.1.Key": "k"})),
        400,
        "ValidationError",
        id="sts-tag-without-value",
    ),
    pytest.param(
        lambda w: query(w, "sts", _sts(Action="AssumeRole", RoleArn="x", RoleSessionName="s" * 100)),
        400,
        "ValidationError",
        id="sts-bad-role-arn",
    ),
    pytest.param(
        lambda w: query(w, "iam", _iam(Action="ListRoles"), replace_headers={"Authorization": "Bearer x"}),
        (400, 403),
        "IncompleteSignature",
        id="iam-bearer",
    ),
    pytest.param(
        lambda w: query(w, "sts", _sts(Action="GetCallerIdentity"), sign=False),
        403,
        "MissingAuthenticationToken",
        id="sts-unsigned",
    ),
    pytest.param(
        lambda w: query(
            w,
            "sts",
            _sts(Action="GetCallerIdentity"),
            replace_headers={
                "Authorization": "AWS4-HMAC-SHA256 Credential=x/y/sts/aws4_request, SignedHeaders=host, Signature=00"
            },
        ),
        (400, 403),
        "IncompleteSignature",
        id="sts-garbled-credential",
    ),
]


@pytest.mark.parametrize(("build", "status", "code"), QUERY_CASES)
def test_query_protocol_rejects_hostile_input(
    world: World, build: Build, status: int | tuple[int, ...], code: str
) -> None:
    assert_error(build(world), "query", status, code)


def test_rejected_iam_calls_create_nothing(world: World) -> None:
    iam = world.server.client("iam")
    names = {role["RoleName"] for role in iam.list_roles()["Roles"]}
    assert not names & {"hostile-deep", "hostile-deep-obj", "hostile-tag", "hostile-tag-case", "a b"}


def test_query_get_with_duplicate_params_is_answered(world: World) -> None:
    reply = send(
        world.server,
        "GET",
        service="sts",
        query="Action=GetCallerIdentity&Version=2011-06-15&Action=GetCallerIdentity&Version=x",
    )
    assert reply.status == 200, reply.body
    assert b"<Account>" + world.server.account_id.encode() in reply.body
