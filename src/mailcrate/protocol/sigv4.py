"""SigV4 request authentication: header-signed and presigned (query) forms.

The expected signature is computed as botocore's signer (the code every AWS client signs with)
computes it, fed with exactly the headers the client says it signed, and compared in constant
time.
Nothing here knows about accounts: the caller looks the access key up and passes the secret.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import hmac
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from urllib.parse import quote, urlsplit

from botocore.utils import normalize_url_path

from mailcrate.protocol.errors import AuthError
from mailcrate.protocol.http import HttpRequest

ALGORITHM = "AWS4-HMAC-SHA256"
UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"
_AUTH_RE = re.compile(
    r"^AWS4-HMAC-SHA256\s+Credential=(?P<credential>[^,\s]+),\s*"
    r"SignedHeaders=(?P<signed>[^,\s]+),\s*Signature=(?P<signature>[0-9a-fA-F]+)\s*$"
)
_AMZ_DATE_RE = re.compile(r"\d{8}T\d{6}Z\Z", re.ASCII)
MAX_PRESIGN_SECONDS = 7 * 24 * 3600


@dataclass(frozen=True)
class SignatureInfo:
    access_key_id: str
    scope_date: str
    region: str
    service: str
    signed_headers: tuple[str, ...]
    signature: str
    amz_date: str  # YYYYMMDDTHHMMSSZ
    presigned: bool
    expires_seconds: int | None
    session_token: str | None

    @property
    def timestamp(self) -> datetime:
        """X-Amz-Date as a UTC datetime; ValueError unless it is YYYYMMDDTHHMMSSZ (a regular
        expression and ``datetime()``: ``strptime`` cost more than checking the signature)."""
        d = self.amz_date
        if _AMZ_DATE_RE.match(d) is None:
            raise ValueError(f"{d!r} is not YYYYMMDDTHHMMSSZ")
        return datetime(
            int(d[0:4]), int(d[4:6]), int(d[6:8]), int(d[9:11]), int(d[11:13]), int(d[13:15]), tzinfo=UTC
        )


def _from_date_header(value: str | None) -> str | None:
    """A signature may take its time from ``Date`` instead of ``X-Amz-Date`` (then signed as a
    header like any other); the string to sign still carries it as YYYYMMDDTHHMMSSZ. Accepts
    that form or an HTTP date (RFC 9110 IMF-fixdate); None for anything else, so the request
    is refused as one without a date.
    https://docs.aws.amazon.com/IAM/latest/UserGuide/signing-elements.html"""
    if not value:
        return None
    value = value.strip()
    if _AMZ_DATE_RE.match(value):
        return value
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # "-0000": UTC, local zone unknown (RFC 5322 3.3), as botocore writes it
        when = when.replace(tzinfo=UTC)
    return when.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


def _split_credential(credential: str) -> tuple[str, str, str, str]:
    parts = credential.split("/")
    if len(parts) != 5 or parts[4] != "aws4_request":
        raise AuthError("incomplete", f"Credential should be scoped to a valid region, not '{credential}'.")
    return parts[0], parts[1], parts[2], parts[3]


def parse_signature(request: HttpRequest) -> SignatureInfo | None:
    """Read the signature's parts; None when the request carries no signature at all."""
    authorization = request.headers.get("authorization")
    query = request.query
    if authorization is not None:
        if not authorization.startswith(ALGORITHM):
            raise AuthError(
                "incomplete", "Unsupported authorization type; only AWS4-HMAC-SHA256 is accepted."
            )
        match = _AUTH_RE.match(authorization)
        if match is None:
            raise AuthError(
                "incomplete",
                "Authorization header requires 'Credential', 'SignedHeaders' and 'Signature' parameters.",
            )
        key, date, region, service = _split_credential(match["credential"])
        amz_date = request.headers.get("x-amz-date")
        if amz_date is None and "date" in match["signed"].lower().split(";"):
            amz_date = _from_date_header(request.headers.get("date"))
        if amz_date is None:
            raise AuthError("incomplete", "Authorization header requires existence of the X-Amz-Date header.")
        return SignatureInfo(
            access_key_id=key,
            scope_date=date,
            region=region,
            service=service,
            signed_headers=tuple(match["signed"].lower().split(";")),
            signature=match["signature"].lower(),
            amz_date=amz_date,
            presigned=False,
            expires_seconds=None,
            session_token=request.headers.get("x-amz-security-token"),
        )
    if "X-Amz-Signature" in query or "X-Amz-Credential" in query:
        missing = [
            name
            for name in (
                "X-Amz-Algorithm",
                "X-Amz-Credential",
                "X-Amz-Date",
                "X-Amz-SignedHeaders",
                "X-Amz-Signature",
            )
            if name not in query
        ]
        if missing or query["X-Amz-Algorithm"] != ALGORITHM:
            raise AuthError(
                "incomplete", f"Presigned URL is missing or has bad parameters: {', '.join(missing)}"
            )
        key, date, region, service = _split_credential(query["X-Amz-Credential"])
        try:
            expires = int(query.get("X-Amz-Expires", "900"))
        except ValueError:
            raise AuthError("incomplete", "X-Amz-Expires must be a number of seconds") from None
        if not 1 <= expires <= MAX_PRESIGN_SECONDS:
            raise AuthError("incomplete", "X-Amz-Expires must be between 1 and 604800 seconds")
        return SignatureInfo(
            access_key_id=key,
            scope_date=date,
            region=region,
            service=service,
            signed_headers=tuple(query["X-Amz-SignedHeaders"].lower().split(";")),
            signature=query["X-Amz-Signature"].lower(),
            amz_date=query["X-Amz-Date"],
            presigned=True,
            expires_seconds=expires,
            session_token=query.get("X-Amz-Security-Token"),
        )
    return None


def _stamp(now: datetime) -> str:
    return now.strftime("%Y%m%dT%H%M%SZ")


def check_time(info: SignatureInfo, now: datetime, skew_seconds: int) -> None:
    """Reject stale or future-dated requests, and presigned URLs past their expiry."""
    try:
        signed_at = info.timestamp
    except ValueError:
        raise AuthError(
            "incomplete", f"X-Amz-Date '{info.amz_date}' is not in the form YYYYMMDDTHHMMSSZ"
        ) from None
    if info.scope_date != info.amz_date[:8]:
        raise AuthError("signature", "Credential scope date does not match X-Amz-Date.")
    if info.presigned:
        assert info.expires_seconds is not None
        if (now - signed_at).total_seconds() > info.expires_seconds:
            raise AuthError("expired", f"Request has expired (signed {info.amz_date}, now {_stamp(now)}).")
        if (signed_at - now).total_seconds() > skew_seconds:
            raise AuthError(
                "skew", f"Signature not yet current: {info.amz_date} is still later than {_stamp(now)}."
            )
        return
    delta = (now - signed_at).total_seconds()
    if abs(delta) > skew_seconds:
        stamp = _stamp(now)
        raise AuthError(
            "skew",
            f"Signature expired: {info.amz_date} is now earlier than allowed "
            f"({stamp} - {skew_seconds // 60} min.)"
            if delta > 0
            else f"Signature not yet current: {info.amz_date} is still later than {stamp} "
            f"(+{skew_seconds // 60} min.)",
        )


def _canonical_path(raw_path: str, *, normalize: bool) -> str:
    """The path as botocore's signer canonicalizes it: S3 signs the path as sent; every other
    service signs it with dot segments and repeated slashes removed, percent-encoded again."""
    path = urlsplit(f"http://host{raw_path}").path
    if not normalize:
        return path
    return quote(normalize_url_path(path), safe="/~")


def _canonical_query(params: list[tuple[str, str]]) -> str:
    pairs = [
        (quote(key, safe="-_.~"), quote(value, safe="-_.~"))
        for key, value in params
        if key != "X-Amz-Signature"
    ]
    return "&".join(f"{key}={value}" for key, value in sorted(pairs))


@functools.lru_cache(maxsize=256)
def _signing_key(secret: str, date: str, region: str, service: str) -> bytes:
    """The derived SigV4 key: four HMACs that depend only on the secret and the scope, so one
    derivation serves a key's requests for the day (a secret never changes; a rotated key has
    another secret, hence another cache entry)."""
    key = hmac.digest(f"AWS4{secret}".encode(), date.encode(), "sha256")
    for part in (region, service, "aws4_request"):
        key = hmac.digest(key, part.encode(), "sha256")
    return key


def expected_signature(
    request: HttpRequest, info: SignatureInfo, secret: str, *, wire_bytes: bool = False
) -> str:
    """The signature botocore's signer (``SigV4Auth``) computes for this request with ``secret``,
    fed with exactly the headers the client declared it signed.

    Built here rather than through botocore's ``AWSRequest``/``SigV4Auth`` objects, which cost a
    few times more than the rest of an API call; ``tests/protocol/test_sigv4.py`` checks the two
    agree on paths, queries, header whitespace and presigned requests.
    """
    missing = [name for name in info.signed_headers if name not in request.headers]
    if "host" not in info.signed_headers:
        raise AuthError("incomplete", "'Host' must be a signed header.")
    if missing:
        raise AuthError("signature", f"Signed header(s) missing from the request: {', '.join(missing)}")
    is_s3 = info.service == "s3"
    if info.presigned and is_s3:
        payload_hash = UNSIGNED_PAYLOAD  # S3 presigned URLs never sign the body; other services do
    elif info.presigned:
        payload_hash = hashlib.sha256(request.body).hexdigest()
    else:
        declared = request.headers.get("x-amz-content-sha256")
        payload_hash = declared if declared is not None else hashlib.sha256(request.body).hexdigest()
        if (
            declared is not None
            and not is_s3
            and declared.lower() != hashlib.sha256(request.body).hexdigest()
        ):
            # Only S3 checks a body against its declared hash (services/s3/payload.py) or takes
            # it unsigned; anywhere else the signature would then not cover the body at all, and
            # a captured request could be replayed with any other body.
            raise AuthError("signature", "The x-amz-content-sha256 header does not match the request body.")
    names = sorted(set(info.signed_headers))
    headers = request.headers
    canonical = "\n".join(
        (
            request.method.upper(),
            _canonical_path(request.raw_path, normalize=not is_s3),
            _canonical_query(request.query_params) if request.query_string else "",
            *(f"{name}:{_trimmed(headers[name], wire_bytes)}" for name in names),
            "",
            ";".join(names),
            payload_hash,
        )
    )
    scope = f"{info.amz_date[:8]}/{info.region}/{info.service}/aws4_request"
    # Header values arrive latin-1 decoded (a character per byte). A client that wrote a
    # non-ASCII value as UTF-8 (urllib3 2 does, for S3 user metadata) signed those bytes:
    # ``wire_bytes`` hashes the bytes as received instead of the text re-encoded.
    data = canonical.encode("latin-1", "strict") if wire_bytes else canonical.encode()
    string_to_sign = f"{ALGORITHM}\n{info.amz_date}\n{scope}\n{hashlib.sha256(data).hexdigest()}"
    key = _signing_key(secret, info.amz_date[:8], info.region, info.service)
    return hmac.new(key, string_to_sign.encode(), hashlib.sha256).hexdigest()


_ASCII_SPACES = re.compile(r"[ \t\r\n\f\v]+")


def _trimmed(value: str, wire_bytes: bool) -> str:
    """A header value with its runs of spaces as one (SigV4's canonical form). Over bytes taken
    as latin-1 only ASCII whitespace counts: \\xa0 or \\x85 there are halves of UTF-8 characters."""
    if wire_bytes:
        return _ASCII_SPACES.sub(" ", value).strip(" ")
    return " ".join(value.split())


def _non_ascii(request: HttpRequest, info: SignatureInfo) -> bool:
    """Whether a signed header carries bytes beyond ASCII (its text depends on their encoding)."""
    return any(not request.headers[name].isascii() for name in info.signed_headers if name in request.headers)


def verify_signature(request: HttpRequest, info: SignatureInfo, secret: str) -> None:
    """Raise ``AuthError('signature')`` unless the request was signed with ``secret``."""
    expected = expected_signature(request, info, secret)
    if not hmac.compare_digest(expected, info.signature) and _non_ascii(request, info):
        with contextlib.suppress(UnicodeEncodeError):
            expected = expected_signature(request, info, secret, wire_bytes=True)
    if not hmac.compare_digest(expected, info.signature):
        raise AuthError(
            "signature",
            "The request signature we calculated does not match the signature you provided. "
            "Check your AWS Secret Access Key and signing method.",
        )
