"""Helpers for the IAM/STS tests: raw signed query requests and users with given policies."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlencode

import httpx
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from tests.support.mailcrate_server import MailcrateServer

FORM = "application/x-www-form-urlencoded; charset=utf-8"


def signed_form(
    server: MailcrateServer,
    body: bytes | str | dict[str, str] | list[tuple[str, str]],
    *,
    service: str = "iam",
    content_type: str = FORM,
    access_key_id: str | None = None,
    secret_access_key: str | None = None,
    session_token: str | None = None,
) -> httpx.Response:
    """A SigV4-signed POST of any body, as no SDK would send it."""
    if isinstance(body, (dict, list)):
        body = urlencode(body)
    if isinstance(body, str):
        body = body.encode()
    request = AWSRequest(
        method="POST", url=server.endpoint + "/", data=body, headers={"Content-Type": content_type}
    )
    credentials = Credentials(
        access_key_id or server.access_key_id, secret_access_key or server.secret_access_key, session_token
    )
    SigV4Auth(credentials, service, "us-east-1").add_auth(request)
    return httpx.post(server.endpoint + "/", content=body, headers=dict(request.headers.items()), timeout=30)


def error_code(response: httpx.Response) -> str:
    from xml.etree import ElementTree as ET

    root = ET.fromstring(response.content)
    code = root.find(".//{*}Code")
    if code is None:
        code = root.find(".//Code")
    assert code is not None and code.text, response.text
    return code.text


def policy(*statements: dict[str, Any]) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


def allow(action: str | list[str], resource: str | list[str] = "*", **extra: Any) -> dict[str, Any]:
    return {"Effect": "Allow", "Action": action, "Resource": resource, **extra}


def deny(action: str | list[str], resource: str | list[str] = "*", **extra: Any) -> dict[str, Any]:
    return {"Effect": "Deny", "Action": action, "Resource": resource, **extra}


def user_with_policy(server: MailcrateServer, name: str, document: str | None) -> dict[str, str]:
    """Create an IAM user (with an inline policy when given) and an access key; its credentials."""
    iam = server.client("iam")
    iam.create_user(UserName=name)
    if document is not None:
        iam.put_user_policy(UserName=name, PolicyName="inline", PolicyDocument=document)
    key = iam.create_access_key(UserName=name)["AccessKey"]
    return {"access_key_id": key["AccessKeyId"], "secret_access_key": key["SecretAccessKey"]}
