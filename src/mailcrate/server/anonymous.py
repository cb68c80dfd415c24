"""Unsigned requests: who they act as, and where they may go at all.

S3 serves a request without a signature as the anonymous principal, and only a bucket policy
that names ``Principal: "*"`` (with the bucket's public access block letting it count) lets it
read anything ("Granting read-only permission to a public anonymous user", S3 User Guide,
https://docs.aws.amazon.com/AmazonS3/latest/userguide/example-bucket-policies.html). WorkMail,
IAM, STS and KMS never take one: they answer ``MissingAuthenticationToken`` as before.

mailcrate admits anonymous callers to S3's read methods only (GET and HEAD: objects, listings,
HeadBucket). An unsigned write is refused before its body is read, whatever a bucket policy
says: no export, mailbox or account data ever arrives without a key that can be audited and
revoked.
"""

from __future__ import annotations

from mailcrate.accounts import Principal
from mailcrate.protocol.errors import AuthError
from mailcrate.protocol.http import HttpRequest
from mailcrate.services.base import ServiceSpec

READ_METHODS = frozenset({"GET", "HEAD"})
#: The front door's upload-share and cache key for anonymous callers (no account is "").
ACCOUNT = ""


def principal_for(spec: ServiceSpec | None, request: HttpRequest) -> Principal:
    """The principal an unsigned request acts as, or the AuthError that refuses it."""
    if spec is None or spec.name != "s3":
        raise AuthError("missing", "Missing Authentication Token")
    if request.method not in READ_METHODS:
        raise AuthError("missing", "Access Denied")  # S3: 403 AccessDenied, as AWS answers it
    return Principal.anonymous()
