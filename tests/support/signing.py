"""Raw signed HTTP requests, for inputs no SDK would send (bad JSON, broken constraints, tampering)."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any
from unittest.mock import patch

import httpx
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials


def signed_json_request(
    endpoint: str,
    *,
    target: str,
    body: bytes | str | dict[str, Any],
    access_key_id: str,
    secret_access_key: str,
    service: str = "workmail",
    region: str = "us-east-1",
    content_type: str = "application/x-amz-json-1.1",
    when: dt.datetime | None = None,
    tamper: bytes | None = None,
    session_token: str | None = None,
) -> httpx.Response:
    """Sign like botocore does, optionally send a different body than the one signed."""
    if isinstance(body, dict):
        body = json.dumps(body)
    if isinstance(body, str):
        body = body.encode()
    headers = {"Content-Type": content_type, "X-Amz-Target": target}
    request = AWSRequest(method="POST", url=endpoint + "/", data=body, headers=headers)
    credentials = Credentials(access_key_id, secret_access_key, session_token)
    signer = SigV4Auth(credentials, service, region)
    if when is not None:
        # botocore takes the signing time from the clock; set it for stale/future requests.
        with patch("botocore.auth.get_current_datetime", return_value=when.replace(tzinfo=None)):
            signer.add_auth(request)
    else:
        signer.add_auth(request)
    sent = dict(request.headers.items())
    return httpx.post(
        endpoint + "/", content=tamper if tamper is not None else body, headers=sent, timeout=30
    )
