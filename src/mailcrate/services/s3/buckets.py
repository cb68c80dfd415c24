"""Buckets: names, ownership, policies, public access blocks, default encryption, and who may act.

Authorization of every S3 call is :func:`authorize`: the caller's identity policies (through
``call.authorize``, the server's IAM check) combined with the bucket policy evaluated by the
policy engine, as AWS combines them: an explicit deny in the bucket policy wins; within the
owning account either may allow; another account needs both. The root of the owning account may
do everything except what its bucket policy explicitly denies (policy management excepted, so it
can never lock itself out).
"""

from __future__ import annotations

import ipaddress
import json
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, delete, insert, select, update

from mailcrate.policy import (
    Decision,
    MalformedPolicyError,
    RequestContext,
    RequestPrincipal,
    evaluate_resource_policy,
    is_public_policy,
    parse_resource_policy,
)
from mailcrate.protocol.errors import ServiceError
from mailcrate.services.base import Call
from mailcrate.services.iam import request_keys
from mailcrate.services.s3 import errors
from mailcrate.storage.db import as_utc, utcnow
from mailcrate.storage.tables_kms_s3 import s3_buckets

PAB_FIELDS = ("BlockPublicAcls", "IgnorePublicAcls", "BlockPublicPolicy", "RestrictPublicBuckets")
_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_BAD_PREFIXES = ("xn--", "sthree-", "amzn-s3-demo-")
_BAD_SUFFIXES = ("-s3alias", "--ol-s3", ".mrap", "--x-s3", "--table-s3")
_POLICY_ACTIONS = {"s3:GetBucketPolicy", "s3:PutBucketPolicy", "s3:DeleteBucketPolicy"}
# What a bucket policy can let an anonymous (unsigned) caller do here: read objects and list.
# The server admits unsigned requests to S3's GET and HEAD only (server/anonymous.py).
ANONYMOUS_ACTIONS = frozenset({"s3:GetObject", "s3:ListBucket", "s3:ListBucketVersions"})


@dataclass(frozen=True)
class Bucket:
    name: str
    account_id: str
    region: str
    created_at: datetime
    policy: str | None
    public_access_block: dict[str, bool] | None
    encryption: dict[str, Any] | None

    @property
    def arn(self) -> str:
        return f"arn:aws:s3:::{self.name}"


def check_name(name: str) -> None:
    problem = None
    if not _NAME_RE.match(name):
        problem = "Bucket names must be 3-63 lowercase letters, digits, dots and hyphens, starting and ending with a letter or digit"
    elif ".." in name or ".-" in name or "-." in name:
        problem = "Bucket names must not contain adjacent periods or a period next to a hyphen"
    elif name.startswith(_BAD_PREFIXES) or name.endswith(_BAD_SUFFIXES):
        problem = "Bucket names must not use a reserved prefix or suffix"
    else:
        try:
            ipaddress.IPv4Address(name)
            problem = "Bucket names must not be formatted as an IP address"
        except ValueError:
            pass
    if problem:
        raise errors.InvalidBucketName("The specified bucket is not valid.", BucketName=name)


def _row(row: Any) -> Bucket:
    return Bucket(
        name=row.name,
        account_id=row.account_id,
        region=row.region,
        created_at=as_utc(row.created_at),  # type: ignore[arg-type]
        policy=row.policy,
        public_access_block=json.loads(row.public_access_block) if row.public_access_block else None,
        encryption=json.loads(row.encryption) if row.encryption else None,
    )


def find(conn: Connection, name: str) -> Bucket:
    row = conn.execute(select(s3_buckets).where(s3_buckets.c.name == name)).first()
    if row is None:
        raise errors.NoSuchBucket(name)
    return _row(row)


def create(conn: Connection, name: str, account_id: str, region: str) -> Bucket:
    check_name(name)
    existing = conn.execute(select(s3_buckets.c.account_id).where(s3_buckets.c.name == name)).first()
    if existing is not None:
        if existing.account_id == account_id and region == "us-east-1" == find(conn, name).region:
            # us-east-1 answers a repeated create by the owner with 200 (S3's legacy behaviour:
            # https://docs.aws.amazon.com/AmazonS3/latest/API/API_CreateBucket.html, Errors).
            return find(conn, name)
        if existing.account_id == account_id:
            raise errors.BucketAlreadyOwnedByYou(
                "Your previous request to create the named bucket succeeded and you already own it.",
                BucketName=name,
            )
        raise errors.BucketAlreadyExists(
            "The requested bucket name is not available. The bucket namespace is shared by all users "
            "of the system. Please select a different name and try again.",
            BucketName=name,
        )
    conn.execute(
        insert(s3_buckets).values(
            name=name,
            account_id=account_id,
            region=region,
            created_at=utcnow(),
            # New buckets block all public access and encrypt with SSE-S3, as AWS does.
            public_access_block=json.dumps(dict.fromkeys(PAB_FIELDS, True)),
            encryption=json.dumps({"SSEAlgorithm": "AES256", "BucketKeyEnabled": False}),
        )
    )
    return find(conn, name)


def list_for(conn: Connection, account_id: str) -> list[Bucket]:
    rows = conn.execute(
        select(s3_buckets).where(s3_buckets.c.account_id == account_id).order_by(s3_buckets.c.name)
    ).all()
    return [_row(row) for row in rows]


def remove(conn: Connection, name: str) -> None:
    conn.execute(delete(s3_buckets).where(s3_buckets.c.name == name))


def set_field(conn: Connection, name: str, **values: Any) -> None:
    conn.execute(update(s3_buckets).where(s3_buckets.c.name == name).values(**values))


def parse_policy(text: str) -> Any:
    try:
        return parse_resource_policy(text, resource_rule="required")
    except MalformedPolicyError as exc:
        raise errors.MalformedPolicy(str(exc)) from None


def policy_is_public(bucket: Bucket) -> bool:
    """``PolicyStatus.IsPublic``: a public bucket policy that RestrictPublicBuckets does not neuter."""
    if bucket.policy is None:
        return False
    if (bucket.public_access_block or {}).get("RestrictPublicBuckets"):
        return False
    return is_public_policy(parse_policy(bucket.policy), bucket.account_id)


def request_principal(call: Call) -> RequestPrincipal:
    p = call.principal
    if p.is_root:
        return RequestPrincipal.root(p.account_id)
    if p.is_anonymous:
        return RequestPrincipal.anonymous()
    if p.kind == "session":
        return RequestPrincipal.assumed_role(p.arn)
    return RequestPrincipal.user(p.arn, p.principal_id)


def base_context(call: Call) -> dict[str, Any]:
    return {
        "aws:SourceIp": call.request.client_ip,
        "aws:SecureTransport": call.request.scheme == "https",
        "s3:ResourceAccount": None,
    }


def authorize(
    call: Call,
    bucket: Bucket,
    action: str,
    resource: str | None = None,
    context: dict[str, Any] | None = None,
) -> None:
    """Raise AccessDenied unless the caller may do ``action`` on the bucket (or its object)."""
    resource = resource or bucket.arn
    keys = {k: v for k, v in {**base_context(call), **(context or {})}.items() if v is not None}
    keys["s3:ResourceAccount"] = bucket.account_id
    keys = {**request_keys.for_call(call, resource, keys), **keys}  # aws:RequestedRegion, ...
    same_account = call.account_id == bucket.account_id
    policy_decision = Decision.IMPLICIT_DENY
    if bucket.policy:
        policy = parse_policy(bucket.policy)
        restricted = (bucket.public_access_block or {}).get("RestrictPublicBuckets")
        if not (restricted and not same_account and is_public_policy(policy, bucket.account_id)):
            ctx = RequestContext.build(action, resource, request_principal(call), keys)
            policy_decision = evaluate_resource_policy(policy, ctx)
    if policy_decision is Decision.EXPLICIT_DENY and not (
        call.principal.is_root and action in _POLICY_ACTIONS
    ):
        raise _denied(call, action, resource, "explicit deny in a resource-based policy")
    if call.principal.is_anonymous:
        # The bucket policy alone decides (there is no identity to ask); RestrictPublicBuckets
        # has already set a public policy aside above.
        if policy_decision is Decision.ALLOW and action in ANONYMOUS_ACTIONS:
            return
        raise errors.AccessDenied("Access Denied")
    if same_account and policy_decision is Decision.ALLOW:
        return
    try:
        call.authorize(action, resource, keys)
    except ServiceError:
        raise _denied(call, action, resource, "no identity-based policy allows the action") from None
    if not same_account and policy_decision is not Decision.ALLOW and not call.principal.is_root:
        raise _denied(call, action, resource, "no resource-based policy allows the action")
    if not same_account and call.principal.is_root and policy_decision is not Decision.ALLOW:
        raise _denied(call, action, resource, "no resource-based policy allows the action")


def allows(call: Call, bucket: Bucket, action: str, resource: str | None = None) -> bool:
    """Whether :func:`authorize` would let the caller do ``action``."""
    try:
        authorize(call, bucket, action, resource)
    except errors.AccessDenied:
        return False
    return True


def _denied(call: Call, action: str, resource: str, why: str) -> errors.AccessDenied:
    if call.principal.is_anonymous:
        return errors.AccessDenied("Access Denied")
    return errors.AccessDenied(
        f"User: {call.principal.arn} is not authorized to perform: {action} on resource: "
        f'"{resource}" because {why}'
    )


def visible(
    conn: Connection,
    call: Call,
    name: str,
    action: str,
    resource: str | None = None,
    context: dict[str, Any] | None = None,
) -> Bucket:
    """Find a bucket and authorize the caller on it (NoSuchBucket if absent)."""
    bucket = find(conn, name)
    authorize(call, bucket, action, resource, context)
    return bucket
