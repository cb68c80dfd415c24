"""Bucket operations: create/head/location/list/delete, policies, public access blocks, encryption."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import select

from mailcrate.services.base import Call
from mailcrate.services.pagination import decode_cursor, encode_token
from mailcrate.services.s3 import buckets, errors
from mailcrate.services.s3.acls import check_bucket_acl
from mailcrate.services.s3.multipart import abort_all
from mailcrate.services.s3.store import Store
from mailcrate.storage.tables_kms_s3 import s3_objects

_BUCKETS_SCOPE = "s3:ListBuckets"


def create_bucket(call: Call, store: Store) -> dict[str, Any]:
    p = call.params
    name = p["Bucket"]
    buckets.check_name(name)
    check_bucket_acl(p)
    constraint = (p.get("CreateBucketConfiguration") or {}).get("LocationConstraint")
    region = call.region
    if constraint:
        if constraint == "EU":
            constraint = "eu-west-1"
        if constraint != region:
            raise errors.IllegalLocationConstraint(
                f"The {constraint} location constraint is incompatible for the region specific endpoint this "
                "request was sent to."
            )
    elif region != "us-east-1":
        raise errors.IllegalLocationConstraint(
            "The unspecified location constraint is incompatible for the region specific endpoint this request "
            "was sent to."
        )
    call.authorize("s3:CreateBucket", f"arn:aws:s3:::{name}")
    with call.context.db.begin() as conn:
        bucket = buckets.create(conn, name, call.account_id, region)
    return {"Location": f"/{bucket.name}", "BucketArn": bucket.arn}


def head_bucket(call: Call, store: Store) -> dict[str, Any]:
    with call.context.db.read() as conn:
        bucket = buckets.visible(conn, call, call.params["Bucket"], "s3:ListBucket")
    return {"BucketRegion": bucket.region, "AccessPointAlias": False, "BucketArn": bucket.arn}


def get_bucket_location(call: Call, store: Store) -> dict[str, Any]:
    with call.context.db.read() as conn:
        bucket = buckets.visible(conn, call, call.params["Bucket"], "s3:GetBucketLocation")
    return {"LocationConstraint": None if bucket.region == "us-east-1" else bucket.region}


def list_buckets(call: Call, store: Store) -> dict[str, Any]:
    call.authorize("s3:ListAllMyBuckets", "*")
    p = call.params
    prefix = p.get("Prefix") or ""
    limit = p.get("MaxBuckets")
    if limit is not None and not 1 <= limit <= 10000:
        raise errors.InvalidArgument(
            "Argument max-buckets must be an integer between 1 and 10000", ArgumentName="max-buckets"
        )
    after = decode_cursor(_BUCKETS_SCOPE, p["ContinuationToken"], 64) if p.get("ContinuationToken") else ""
    if after is None:
        raise errors.InvalidArgument(
            "The continuation token provided is incorrect", ArgumentName="continuation-token"
        )
    with call.context.db.read() as conn:
        owned = buckets.list_for(conn, call.account_id)
    chosen = [
        b
        for b in owned
        if b.name.startswith(prefix)
        and b.name > after
        and (not p.get("BucketRegion") or b.region == p["BucketRegion"])
    ]
    out: dict[str, Any] = {
        "Buckets": [
            {"Name": b.name, "CreationDate": b.created_at, "BucketRegion": b.region, "BucketArn": b.arn}
            for b in chosen[:limit]
        ],
        "Owner": {"ID": call.account_id, "DisplayName": call.account_id},
        "Prefix": prefix or None,
    }
    if limit is not None and len(chosen) > limit:
        out["ContinuationToken"] = encode_token(_BUCKETS_SCOPE, [chosen[limit - 1].name])
    return out


def delete_bucket(call: Call, store: Store) -> dict[str, Any]:
    with call.context.db.begin() as conn:
        bucket = buckets.visible(conn, call, call.params["Bucket"], "s3:DeleteBucket")
        if conn.execute(select(s3_objects.c.key).where(s3_objects.c.bucket == bucket.name).limit(1)).first():
            raise errors.BucketNotEmpty("The bucket you tried to delete is not empty", BucketName=bucket.name)
        released = abort_all(conn, bucket.name)
        buckets.remove(conn, bucket.name)
    store.free(released)
    return {}


# -- public access block ------------------------------------------------------------------
def put_public_access_block(call: Call, store: Store) -> dict[str, Any]:
    config = call.params.get("PublicAccessBlockConfiguration") or {}
    if not config:
        raise errors.ServiceError(
            "The XML you provided was not well-formed or did not validate against our published schema",
            code="MalformedXML",
        )
    values = {name: bool(config.get(name, False)) for name in buckets.PAB_FIELDS}
    with call.context.db.begin() as conn:
        bucket = buckets.visible(conn, call, call.params["Bucket"], "s3:PutBucketPublicAccessBlock")
        buckets.set_field(conn, bucket.name, public_access_block=json.dumps(values))
    return {}


def get_public_access_block(call: Call, store: Store) -> dict[str, Any]:
    with call.context.db.read() as conn:
        bucket = buckets.visible(conn, call, call.params["Bucket"], "s3:GetBucketPublicAccessBlock")
    if bucket.public_access_block is None:
        raise errors.NoSuchPublicAccessBlock(
            "The public access block configuration was not found", BucketName=bucket.name
        )
    return {"PublicAccessBlockConfiguration": bucket.public_access_block}


def delete_public_access_block(call: Call, store: Store) -> dict[str, Any]:
    with call.context.db.begin() as conn:
        bucket = buckets.visible(conn, call, call.params["Bucket"], "s3:PutBucketPublicAccessBlock")
        buckets.set_field(conn, bucket.name, public_access_block=None)
    return {}


# -- bucket policy --------------------------------------------------------------------------
def put_bucket_policy(call: Call, store: Store) -> dict[str, Any]:
    text = call.params.get("Policy") or ""
    policy = buckets.parse_policy(text)
    with call.context.db.begin() as conn:
        bucket = buckets.visible(conn, call, call.params["Bucket"], "s3:PutBucketPolicy")
        for statement in policy.statements:
            for resource in statement.resource or ():
                if not (resource == bucket.arn or resource.startswith(bucket.arn + "/")):
                    raise errors.MalformedPolicy("Policy has invalid resource")
        if (bucket.public_access_block or {}).get("BlockPublicPolicy") and buckets.is_public_policy(
            policy, bucket.account_id
        ):
            raise errors.AccessDenied(
                "User is not authorized to perform: s3:PutBucketPolicy on resource because public policies are "
                "blocked by the BlockPublicPolicy block public access setting."
            )
        buckets.set_field(conn, bucket.name, policy=text)
    return {"__status__": 204}  # as S3 answers it


def get_bucket_policy(call: Call, store: Store) -> dict[str, Any]:
    with call.context.db.read() as conn:
        bucket = buckets.visible(conn, call, call.params["Bucket"], "s3:GetBucketPolicy")
    if bucket.policy is None:
        raise errors.NoSuchBucketPolicy("The bucket policy does not exist", BucketName=bucket.name)
    return {"Policy": bucket.policy}


def delete_bucket_policy(call: Call, store: Store) -> dict[str, Any]:
    with call.context.db.begin() as conn:
        bucket = buckets.visible(conn, call, call.params["Bucket"], "s3:DeleteBucketPolicy")
        buckets.set_field(conn, bucket.name, policy=None)
    return {}


def get_bucket_policy_status(call: Call, store: Store) -> dict[str, Any]:
    with call.context.db.read() as conn:
        bucket = buckets.visible(conn, call, call.params["Bucket"], "s3:GetBucketPolicyStatus")
    if bucket.policy is None:
        raise errors.NoSuchBucketPolicy("The bucket policy does not exist", BucketName=bucket.name)
    return {"PolicyStatus": {"IsPublic": buckets.policy_is_public(bucket)}}


# -- default encryption ---------------------------------------------------------------------
def put_bucket_encryption(call: Call, store: Store) -> dict[str, Any]:
    rules = (call.params.get("ServerSideEncryptionConfiguration") or {}).get("Rules") or []
    if len(rules) != 1 or "ApplyServerSideEncryptionByDefault" not in rules[0]:
        raise errors.ServiceError(
            "The XML you provided was not well-formed or did not validate against our published schema",
            code="MalformedXML",
        )
    default = rules[0]["ApplyServerSideEncryptionByDefault"]
    algorithm = default.get("SSEAlgorithm")
    if algorithm not in ("AES256", "aws:kms"):
        raise errors.InvalidArgument(f"The encryption method specified is not supported: {algorithm}")
    if algorithm == "AES256" and default.get("KMSMasterKeyID"):
        raise errors.InvalidArgument(
            "a KMSMasterKeyID is not applicable if the default sse algorithm is not aws:kms"
        )
    value = {
        "SSEAlgorithm": algorithm,
        "KMSMasterKeyID": default.get("KMSMasterKeyID"),
        "BucketKeyEnabled": bool(rules[0].get("BucketKeyEnabled")),
    }
    with call.context.db.begin() as conn:
        bucket = buckets.visible(conn, call, call.params["Bucket"], "s3:PutEncryptionConfiguration")
        buckets.set_field(conn, bucket.name, encryption=json.dumps(value))
    return {}


def get_bucket_encryption(call: Call, store: Store) -> dict[str, Any]:
    with call.context.db.read() as conn:
        bucket = buckets.visible(conn, call, call.params["Bucket"], "s3:GetEncryptionConfiguration")
    if bucket.encryption is None:
        raise errors.NoEncryptionConfig(
            "The server side encryption configuration was not found", BucketName=bucket.name
        )
    enc = bucket.encryption
    default = {"SSEAlgorithm": enc["SSEAlgorithm"]}
    if enc.get("KMSMasterKeyID"):
        default["KMSMasterKeyID"] = enc["KMSMasterKeyID"]
    return {
        "ServerSideEncryptionConfiguration": {
            "Rules": [
                {
                    "ApplyServerSideEncryptionByDefault": default,
                    "BucketKeyEnabled": enc.get("BucketKeyEnabled", False),
                }
            ]
        }
    }


def delete_bucket_encryption(call: Call, store: Store) -> dict[str, Any]:
    with call.context.db.begin() as conn:
        bucket = buckets.visible(conn, call, call.params["Bucket"], "s3:PutEncryptionConfiguration")
        buckets.set_field(
            conn, bucket.name, encryption=json.dumps({"SSEAlgorithm": "AES256", "BucketKeyEnabled": False})
        )
    return {}
