"""A NUL character in any text input, on a PostgreSQL-backed serve: a validation error that
changes nothing, never a 500.

PostgreSQL text cannot hold NUL, so such a value used to reach the driver and fail there as an
internal error (KMS CreateKey's Description, WorkMail CreateUser's DisplayName, a ListUsers
filter), while SQLite stored it. It is now refused in the protocol layer, the same on every
backend.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.e2e.test_postgres_backend import _init
from tests.support.mailcrate_server import MailcrateServer
from tests.support.postgres import PostgresServer

TRUST = json.dumps({"Version": "2012-10-17", "Statement": []})


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, postgres: PostgresServer) -> Iterator[MailcrateServer]:
    url = postgres.migrated_database("nul_input")
    srv = MailcrateServer(
        data_dir=Path(tmp_path_factory.mktemp("nul")) / "data", extra_args=("--database-url", url)
    )
    _init(srv, url)
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture(scope="module")
def world(server: MailcrateServer) -> dict[str, Any]:
    wm = server.client("workmail")
    org = wm.create_organization(Alias="nulinput")["OrganizationId"]
    server.client("s3").create_bucket(Bucket="nul-input")
    return {"org": org}


def _clients(server: MailcrateServer) -> dict[str, Any]:
    return {s: server.client(s, parameter_validation=False) for s in ("kms", "workmail", "s3", "iam")}


CASES: dict[str, tuple[str, str, Callable[[dict[str, Any], dict[str, Any]], Any]]] = {
    "kms-create-key-description": (
        "kms",
        "ValidationException",
        lambda c, w: c["kms"].create_key(Description="before\x00after"),
    ),
    "workmail-create-user-display-name": (
        "workmail",
        "ValidationException",
        lambda c, w: c["workmail"].create_user(
            OrganizationId=w["org"], Name="nul1", DisplayName="a\x00b", Password="Corr3ct-Horse-Battery"
        ),
    ),
    "workmail-list-users-filter": (
        "workmail",
        "ValidationException",
        lambda c, w: c["workmail"].list_users(
            OrganizationId=w["org"], Filters={"DisplayNamePrefix": "a\x00"}
        ),
    ),
    "iam-create-role-description": (
        "iam",
        "ValidationError",
        lambda c, w: c["iam"].create_role(
            RoleName="nulrole", AssumeRolePolicyDocument=TRUST, Description="a\x00"
        ),
    ),
}


#: S3 listings whose cursor or prefix carries a NUL: (operation, parameter).
S3_LISTINGS = {
    "s3-list-objects-v2-prefix": ("list_objects_v2", "Prefix"),
    "s3-list-objects-v2-start-after": ("list_objects_v2", "StartAfter"),
    "s3-list-objects-marker": ("list_objects", "Marker"),
    "s3-list-uploads-key-marker": ("list_multipart_uploads", "KeyMarker"),
}
for _case, (_operation, _parameter) in S3_LISTINGS.items():
    CASES[_case] = (
        "s3",
        "InvalidArgument",
        lambda c, w, op=_operation, name=_parameter: getattr(c["s3"], op)(
            Bucket="nul-input", **{name: "a\x00"}
        ),
    )


def _counts(server: MailcrateServer, org: str) -> tuple[int, int, int]:
    """Keys, WorkMail users and IAM roles: what a refused call must not have added to."""
    keys = len(server.client("kms").list_keys()["Keys"])
    users = len(server.client("workmail").list_users(OrganizationId=org)["Users"])
    roles = len(server.client("iam").list_roles()["Roles"])
    return keys, users, roles


@pytest.mark.parametrize("case", list(CASES))
def test_nul_is_a_validation_error_that_changes_nothing(
    server: MailcrateServer, world: dict[str, Any], case: str
) -> None:
    _, code, call = CASES[case]
    before = _counts(server, world["org"])
    with pytest.raises(ClientError) as caught:
        call(_clients(server), world)
    error = caught.value.response
    assert error["ResponseMetadata"]["HTTPStatusCode"] == 400, error
    assert error["Error"]["Code"] == code
    assert "must not contain null characters" in error["Error"]["Message"]
    assert _counts(server, world["org"]) == before


def test_the_log_has_no_internal_error(server: MailcrateServer, world: dict[str, Any]) -> None:
    """Runs after the cases above (file order): none of them failed inside the server."""
    assert server.log_path is not None
    log = server.log_path.read_text(errors="replace")
    assert "internal error" not in log and "Traceback" not in log, log[-3000:]
