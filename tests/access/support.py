"""Two accounts on one real ``mailcrate serve``: account A (the test account) and account B.

The access matrices ask, with boto3 as a user would, whether a caller may use a resource; each
case builds what it needs (users with inline policies, keys with key policies, buckets) under
names of its own, so cases do not depend on each other.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.support.mailcrate_server import MailcrateServer

ACCOUNT_B = "444455556666"
B_ACCESS_KEY_ID = "AKIAB0000000EXAMPLE1"
B_SECRET_ACCESS_KEY = "bBbBbBbBbBbBbBbBbBbBbBbBbBbBbBbBbBbBbBbB"


def add_account_b(server: MailcrateServer) -> None:
    """A second tenant in the same data directory (``mailcrate account create``)."""
    server.add_account(ACCOUNT_B, B_ACCESS_KEY_ID, B_SECRET_ACCESS_KEY)


@dataclass
class Caller:
    """Credentials of one principal, and its clients."""

    server: MailcrateServer
    access_key_id: str
    secret_access_key: str
    arn: str
    session_token: str | None = None
    clients: dict[str, Any] = field(default_factory=dict, repr=False)

    def client(self, service: str) -> Any:
        """One client per service (making a boto3 client costs more than most calls)."""
        if service not in self.clients:
            self.clients[service] = self.server.client(
                service,
                access_key_id=self.access_key_id,
                secret_access_key=self.secret_access_key,
                session_token=self.session_token,
            )
        return self.clients[service]


def root_a(server: MailcrateServer) -> Caller:
    return Caller(
        server, server.access_key_id, server.secret_access_key, f"arn:aws:iam::{server.account_id}:root"
    )


def root_b(server: MailcrateServer) -> Caller:
    return Caller(server, B_ACCESS_KEY_ID, B_SECRET_ACCESS_KEY, f"arn:aws:iam::{ACCOUNT_B}:root")


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def policy(*statements: dict[str, Any]) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


def statement(effect: str, action: str | list[str], resource: str = "*", **extra: Any) -> dict[str, Any]:
    return {"Effect": effect, "Action": action, "Resource": resource, **extra}


def user(root: Caller, name: str, *statements: dict[str, Any]) -> Caller:
    """An IAM user of ``root``'s account with those identity-policy statements (none: none)."""
    iam = root.client("iam")
    arn = iam.create_user(UserName=name)["User"]["Arn"]
    if statements:
        iam.put_user_policy(UserName=name, PolicyName="inline", PolicyDocument=policy(*statements))
    key = iam.create_access_key(UserName=name)["AccessKey"]
    return Caller(root.server, key["AccessKeyId"], key["SecretAccessKey"], arn)


def error_code(call: Any, **kwargs: Any) -> str:
    with pytest.raises(ClientError) as caught:
        call(**kwargs)
    return str(caught.value.response["Error"]["Code"])
