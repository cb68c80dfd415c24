"""AWS clients for the admin tool: the standard credential chain plus ``--endpoint-url``.

One :class:`AwsTarget` describes where requests go (endpoint, region, profile); every client is
built from it, with path-style S3 addressing when an endpoint is given (``mailcrate serve``,
moto, MinIO, Ceph answer on one host name) and a bounded retry policy, so a dead endpoint is
reported in seconds rather than after minutes of backoff.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from mailcrate.admin.errors import AdminError

if TYPE_CHECKING:  # boto3 is imported when a client is made: `mailcrate serve` never pays for it
    import boto3

__all__ = ["AwsTarget", "check_endpoint", "error_code", "jsonable"]


@dataclass(frozen=True)
class AwsTarget:
    """Where AWS requests go. ``None`` means: as the standard chain says (env, profile, IMDS)."""

    endpoint_url: str | None = None
    region: str | None = None
    profile: str | None = None
    access_key_id: str | None = field(default=None, repr=False)
    secret_access_key: str | None = field(default=None, repr=False)
    session_token: str | None = field(default=None, repr=False)
    max_attempts: int | None = None  # None: AWS_MAX_ATTEMPTS / the config file, else 3
    ca_bundle: str | None = None  # None: AWS_CA_BUNDLE / the config file, else the system's CAs

    def session(self) -> boto3.session.Session:
        import boto3

        return boto3.session.Session(
            profile_name=self.profile,
            region_name=self.region,
            aws_access_key_id=self.access_key_id,
            aws_secret_access_key=self.secret_access_key,
            aws_session_token=self.session_token,
        )

    @property
    def endpoint(self) -> str | None:
        """The endpoint in effect (the option, else ``AWS_ENDPOINT_URL``), for messages."""
        return self.endpoint_url or os.environ.get("AWS_ENDPOINT_URL")

    def client(self, service: str, session: boto3.session.Session | None = None) -> Any:
        from botocore.config import Config

        if self.endpoint:
            check_endpoint(self.endpoint)

        config = Config(
            retries={
                "mode": "standard",
                **({"max_attempts": self.max_attempts} if self.max_attempts else {}),
            },
            connect_timeout=5,
            read_timeout=120,
            s3={"addressing_style": "path"} if self.endpoint else None,
        )
        return (session or self.session()).client(
            service, endpoint_url=self.endpoint_url, config=config, verify=self.ca_bundle
        )

    def region_name(self) -> str:
        """The region requests are signed for (after the chain has been consulted)."""
        return self.session().region_name or "us-east-1"


def check_endpoint(url: str) -> None:
    """Refuse an endpoint botocore would only fail on deep inside (``htp://``, no scheme)."""
    parts = urlsplit(url)
    if parts.scheme in ("http", "https") and parts.hostname:
        return
    rest = url.split("://", 1)[-1] if "://" in url else url
    guess = f"http://{rest}" if rest else "http://127.0.0.1:4566"
    raise AdminError(
        f"the endpoint {url!r} (--endpoint-url or AWS_ENDPOINT_URL) is not an http:// or https:// URL",
        f"did you mean {guess} (https:// for a server started with --tls-cert)?",
        exit_code=2,
    )


def error_code(exc: Exception) -> str:
    """The AWS error code of a botocore ``ClientError`` (``NoSuchKey``, ``404``, ...)."""
    response = getattr(exc, "response", None) or {}
    return str(response.get("Error", {}).get("Code", ""))


def jsonable(value: Any) -> Any:
    """A boto3 response made JSON-safe: datetimes as ISO 8601, ``ResponseMetadata`` dropped."""
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items() if k != "ResponseMetadata"}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return value
