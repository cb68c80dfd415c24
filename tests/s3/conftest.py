"""Fixtures for the S3 tests: boto3 clients of the module's server and a KMS key."""

from __future__ import annotations

import itertools
import re
from typing import Any

import pytest

from tests.support.mailcrate_server import MailcrateServer

_names = itertools.count()


@pytest.fixture(scope="module")
def s3(server: MailcrateServer) -> Any:
    return server.client("s3")


@pytest.fixture(scope="module")
def kms(server: MailcrateServer) -> Any:
    return server.client("kms")


@pytest.fixture(scope="module")
def kms_key(kms: Any) -> dict[str, Any]:
    return kms.create_key(Description="s3 tests")["KeyMetadata"]


@pytest.fixture
def bucket(s3: Any, request: pytest.FixtureRequest) -> str:
    stem = re.sub(r"[^a-z0-9]+", "-", request.node.name.lower())[:40].strip("-")
    name = f"t{next(_names)}-{stem}"
    s3.create_bucket(Bucket=name)
    return name
