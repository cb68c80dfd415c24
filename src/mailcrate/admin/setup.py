"""Export prerequisites in one step: create or check the KMS key, the bucket and the role.

Each prerequisite ends as one :class:`Check`: ``created``, ``ok`` (already fine) or ``wrong``
with the exact command that fixes it. Existing resources are never changed (an administrator's
bucket or role may serve other purposes); only what is missing is created, so re-running is
safe and a second run reports everything as already fine.
"""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass, field
from typing import Any, Literal

from botocore.exceptions import ClientError

from mailcrate.admin.aws import AwsTarget
from mailcrate.admin.errors import AdminError
from mailcrate.admin.key_policy_check import check_key_policy
from mailcrate.admin.policies import (
    DEFAULT_KEY_ALIAS,
    DEFAULT_POLICY_NAME,
    DEFAULT_ROLE_NAME,
    as_document,
    check_permission_policy,
    check_trust_policy,
    permission_policy,
    trust_policy,
)

__all__ = ["DEFAULT_KEY_ALIAS", "Check", "SetupResult", "ensure_prerequisites"]

Status = Literal["created", "ok", "wrong"]
_BLOCK_ALL = {
    "BlockPublicAcls": True,
    "IgnorePublicAcls": True,
    "BlockPublicPolicy": True,
    "RestrictPublicBuckets": True,
}


@dataclass
class Check:
    """One prerequisite's outcome; ``fix`` is a command to run when it is ``wrong``."""

    name: str
    status: Status
    detail: str
    fix: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "status": self.status, "detail": self.detail, "fix": self.fix}


@dataclass
class SetupResult:
    account_id: str
    region: str
    bucket: str
    prefix: str
    key_arn: str | None = None
    role_arn: str | None = None
    checks: list[Check] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(c.status != "wrong" for c in self.checks)

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "accountId": self.account_id,
            "region": self.region,
            "bucket": self.bucket,
            "prefix": self.prefix,
            "kmsKeyArn": self.key_arn,
            "roleArn": self.role_arn,
            "checks": [c.to_dict() for c in self.checks],
        }


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _json_arg(doc: dict[str, Any]) -> str:
    return shlex.quote(json.dumps(doc, separators=(",", ":")))


def _aws(endpoint: str | None, *args: str) -> str:
    """An ``aws`` command line (with ``--endpoint-url`` when not talking to AWS itself)."""
    tail = f" --endpoint-url {shlex.quote(endpoint)}" if endpoint else ""
    return "aws " + " ".join(args) + tail


def ensure_prerequisites(
    target: AwsTarget,
    *,
    bucket: str,
    prefix: str,
    kms_key: str | None = None,
    role_name: str = DEFAULT_ROLE_NAME,
    policy_name: str = DEFAULT_POLICY_NAME,
    organization_id: str | None = None,
    create: bool = True,
) -> SetupResult:
    """Create what is missing (``create``) and check everything; see the module docstring."""
    if not prefix or prefix.startswith("/"):
        raise AdminError(f"invalid prefix {prefix!r}", "give a prefix such as mailbox-exports")
    session = target.session()
    account = target.client("sts", session).get_caller_identity()["Account"]
    region = session.region_name or "us-east-1"
    result = SetupResult(account_id=account, region=region, bucket=bucket, prefix=prefix)
    endpoint = target.endpoint
    if organization_id:
        _organization(target.client("workmail", session), result, organization_id)
    _key(target.client("kms", session), result, kms_key, create, endpoint)
    _bucket(target.client("s3", session), result, create, endpoint)
    _role(target.client("iam", session), result, role_name, policy_name, create, endpoint)
    _key_policy(target.client("kms", session), result, role_name, endpoint)
    return result


# ------------------------------------------------------------------------------------ organization


def _organization(wm: Any, result: SetupResult, organization_id: str) -> None:
    """The organization must be Active in the region the key and bucket are checked in."""
    try:
        org = wm.describe_organization(OrganizationId=organization_id)
    except ClientError as exc:
        if _code(exc) != "OrganizationNotFoundException":
            raise
        result.checks.append(
            Check(
                "WorkMail organization",
                "wrong",
                f"{organization_id} not found in {result.region}",
                "pass the organization's region: --region REGION (aws workmail list-organizations --region REGION)",
            )
        )
        return
    state = org.get("State")
    label = f"{organization_id} ({org.get('Alias')}) in {result.region}"
    if state != "Active":
        result.checks.append(
            Check("WorkMail organization", "wrong", f"{label} is {state}", "wait until it is Active")
        )
    else:
        result.checks.append(Check("WorkMail organization", "ok", f"{label}, Active"))


# ------------------------------------------------------------------------------------ key


def _key(kms: Any, result: SetupResult, kms_key: str | None, create: bool, endpoint: str | None) -> None:
    wanted = kms_key or DEFAULT_KEY_ALIAS
    try:
        meta = kms.describe_key(KeyId=wanted)["KeyMetadata"]
    except ClientError as exc:
        if _code(exc) != "NotFoundException":
            raise
        if not create or not wanted.startswith("alias/"):
            result.checks.append(
                Check(
                    "KMS key",
                    "wrong",
                    f"{wanted} does not exist in {result.region}",
                    _aws(endpoint, "kms", "create-key", "--description", "'WorkMail mailbox exports'"),
                )
            )
            return
        meta = kms.create_key(
            Description="WorkMail mailbox exports (mailcrate export setup)",
            KeyUsage="ENCRYPT_DECRYPT",
            KeySpec="SYMMETRIC_DEFAULT",
        )["KeyMetadata"]
        kms.create_alias(AliasName=wanted, TargetKeyId=meta["KeyId"])
        result.key_arn = meta["Arn"]
        result.checks.append(Check("KMS key", "created", f"{meta['Arn']} ({wanted}), symmetric"))
        return
    result.key_arn = meta["Arn"]
    key_id = meta["KeyId"]
    spec = meta.get("KeySpec") or meta.get("CustomerMasterKeySpec")
    arn_region = meta["Arn"].split(":")[3]
    label = f"{meta['Arn']}" + (f" ({wanted})" if wanted.startswith("alias/") else "")
    if spec != "SYMMETRIC_DEFAULT" or meta.get("KeyUsage") != "ENCRYPT_DECRYPT":
        fix = _aws(endpoint, "kms", "create-key", "--description", "'WorkMail mailbox exports'")
        result.checks.append(
            Check(
                "KMS key",
                "wrong",
                f"{label} is {spec}/{meta.get('KeyUsage')}; exports need a symmetric ENCRYPT_DECRYPT key",
                fix,
            )
        )
    elif arn_region != result.region:
        fix = _aws(endpoint, "kms", "create-key", "--region", result.region)
        result.checks.append(
            Check("KMS key", "wrong", f"{label} is in {arn_region}, the organization in {result.region}", fix)
        )
    elif meta.get("KeyState") != "Enabled":
        state = meta.get("KeyState")
        if state == "PendingDeletion":
            fix = (
                _aws(endpoint, "kms", "cancel-key-deletion", "--key-id", key_id)
                + " && "
                + _aws(endpoint, "kms", "enable-key", "--key-id", key_id)
            )
        else:
            fix = _aws(endpoint, "kms", "enable-key", "--key-id", key_id)
        result.checks.append(Check("KMS key", "wrong", f"{label} is {state}", fix))
    else:
        result.checks.append(Check("KMS key", "ok", f"{label}, symmetric, enabled"))


def _key_policy(kms: Any, result: SetupResult, role_name: str, endpoint: str | None) -> None:
    """The key policy must let the export role use the key (the key's first gate); a key this run
    created has AWS's default policy, which lets the role's permission policy decide."""
    created = any(c.name == "KMS key" and c.status == "created" for c in result.checks)
    if result.key_arn is None or created:
        return
    role_arn = result.role_arn or f"arn:aws:iam::{result.account_id}:role/{role_name}"
    try:
        text = kms.get_key_policy(KeyId=result.key_arn, PolicyName="default")["Policy"]
    except ClientError as exc:
        detail = f"{result.key_arn}: cannot read the key policy ({_code(exc)})"
        result.checks.append(Check("KMS key policy", "wrong", detail, "ask the key's administrator"))
        return
    problems, fixed = check_key_policy(
        text,
        key_arn=result.key_arn,
        role_arn=role_arn,
        region=result.region,
        bucket=result.bucket,
        prefix=result.prefix,
    )
    if not problems:
        detail = f"{result.key_arn}: lets {role_arn} use the key through S3"
        result.checks.append(Check("KMS key policy", "ok", detail))
        return
    fix = (
        _aws(
            endpoint,
            "kms",
            "put-key-policy",
            "--key-id",
            result.key_arn.rsplit("/", 1)[1],
            "--policy-name",
            "default",
            "--policy",
            _json_arg(fixed),
        )
        if fixed is not None
        else "write a valid key policy that allows the export role kms:GenerateDataKey and kms:Decrypt"
    )
    result.checks.append(Check("KMS key policy", "wrong", f"{result.key_arn}: " + "; ".join(problems), fix))


# ------------------------------------------------------------------------------------ bucket


def _bucket(s3: Any, result: SetupResult, create: bool, endpoint: str | None) -> None:
    name = result.bucket
    try:
        s3.head_bucket(Bucket=name)
        exists = True
    except ClientError as exc:
        code = _code(exc)
        if code in ("403", "AccessDenied"):
            result.checks.append(
                Check(
                    "S3 bucket",
                    "wrong",
                    f"{name} exists but this account cannot use it (bucket names are global)",
                    "choose another --bucket name",
                )
            )
            return
        if code not in ("404", "NoSuchBucket", "NotFound"):
            raise
        exists = False
    if not exists:
        if not create:
            result.checks.append(
                Check(
                    "S3 bucket",
                    "wrong",
                    f"{name} does not exist",
                    _aws(endpoint, "s3api", "create-bucket", "--bucket", name),
                )
            )
            return
        args: dict[str, Any] = {"Bucket": name}
        if result.region != "us-east-1":
            args["CreateBucketConfiguration"] = {"LocationConstraint": result.region}
        s3.create_bucket(**args)
        s3.put_public_access_block(Bucket=name, PublicAccessBlockConfiguration=_BLOCK_ALL)
        result.checks.append(
            Check("S3 bucket", "created", f"{name} in {result.region}, public access blocked")
        )
        return
    location = s3.get_bucket_location(Bucket=name).get("LocationConstraint") or "us-east-1"
    location = "eu-west-1" if location == "EU" else location
    if location != result.region:
        result.checks.append(
            Check(
                "S3 bucket",
                "wrong",
                f"{name} is in {location}, the organization in {result.region}",
                f"use a bucket in {result.region}: mailcrate export setup --bucket NEW-NAME "
                f"--region {result.region}",
            )
        )
        return
    problems: list[str] = []
    fixes: list[str] = []
    try:
        block = s3.get_public_access_block(Bucket=name)["PublicAccessBlockConfiguration"]
    except ClientError as exc:
        if _code(exc) != "NoSuchPublicAccessBlockConfiguration":
            raise
        block = {}
    if not all(block.get(k) for k in _BLOCK_ALL):
        problems.append("public access is not blocked")
        fixes.append(
            _aws(
                endpoint,
                "s3api",
                "put-public-access-block",
                "--bucket",
                name,
                "--public-access-block-configuration",
                ",".join(f"{k}=true" for k in _BLOCK_ALL),
            )
        )
    try:
        public = s3.get_bucket_policy_status(Bucket=name)["PolicyStatus"].get("IsPublic")
    except ClientError as exc:
        if _code(exc) not in ("NoSuchBucketPolicy", "NoSuchBucketPolicyStatus"):
            raise
        public = False
    if public:
        problems.append("its bucket policy makes it public")
        fixes.append(_aws(endpoint, "s3api", "delete-bucket-policy", "--bucket", name))
    if problems:
        result.checks.append(
            Check("S3 bucket", "wrong", f"{name}: " + "; ".join(problems), " && ".join(fixes))
        )
    else:
        result.checks.append(Check("S3 bucket", "ok", f"{name} in {result.region}, public access blocked"))


# ------------------------------------------------------------------------------------ role


def _role(
    iam: Any, result: SetupResult, role_name: str, policy_name: str, create: bool, endpoint: str | None
) -> None:
    trust = trust_policy(result.account_id)
    try:
        role = iam.get_role(RoleName=role_name)["Role"]
    except ClientError as exc:
        if _code(exc) != "NoSuchEntity":
            raise
        if not create:
            result.checks.append(
                Check(
                    "IAM role",
                    "wrong",
                    f"{role_name} does not exist",
                    _aws(
                        endpoint,
                        "iam",
                        "create-role",
                        "--role-name",
                        role_name,
                        "--assume-role-policy-document",
                        _json_arg(trust),
                    ),
                )
            )
            return
        role = iam.create_role(RoleName=role_name, AssumeRolePolicyDocument=json.dumps(trust))["Role"]
        result.role_arn = role["Arn"]
        result.checks.append(
            Check(
                "IAM role",
                "created",
                f"{role['Arn']}, trusted by export.workmail.amazonaws.com "
                f"with sts:ExternalId {result.account_id}",
            )
        )
    else:
        result.role_arn = role["Arn"]
        problems = check_trust_policy(
            as_document(role.get("AssumeRolePolicyDocument", {})), result.account_id
        )
        if problems:
            result.checks.append(
                Check(
                    "IAM role",
                    "wrong",
                    f"{role['Arn']}: " + "; ".join(problems),
                    _aws(
                        endpoint,
                        "iam",
                        "update-assume-role-policy",
                        "--role-name",
                        role_name,
                        "--policy-document",
                        _json_arg(trust),
                    ),
                )
            )
        else:
            result.checks.append(Check("IAM role", "ok", f"{role['Arn']}, trust policy as the procedure's"))
    _permissions(iam, result, role_name, policy_name, create, endpoint)


def _permissions(
    iam: Any, result: SetupResult, role_name: str, policy_name: str, create: bool, endpoint: str | None
) -> None:
    if result.key_arn is None:
        result.checks.append(
            Check(
                "role permission policy",
                "wrong",
                "not checked: no usable KMS key",
                "fix the KMS key first, then run mailcrate export setup again",
            )
        )
        return
    wanted = permission_policy(result.bucket, result.prefix, result.key_arn, result.region)
    fix = _aws(
        endpoint,
        "iam",
        "put-role-policy",
        "--role-name",
        role_name,
        "--policy-name",
        policy_name,
        "--policy-document",
        _json_arg(wanted),
    )
    label = f"{role_name}/{policy_name}"
    try:
        doc = as_document(iam.get_role_policy(RoleName=role_name, PolicyName=policy_name)["PolicyDocument"])
    except ClientError as exc:
        if _code(exc) != "NoSuchEntity":
            raise
        if not create:
            result.checks.append(Check("role permission policy", "wrong", f"{label} does not exist", fix))
            return
        iam.put_role_policy(RoleName=role_name, PolicyName=policy_name, PolicyDocument=json.dumps(wanted))
        result.checks.append(
            Check(
                "role permission policy",
                "created",
                f"{label}: s3:PutObject/AbortMultipartUpload/GetBucketPolicyStatus on {result.bucket}, "
                f"kms:GenerateDataKey/Decrypt via S3 for {result.prefix}*",
            )
        )
        return
    problems = check_permission_policy(doc, result.bucket, result.prefix, result.key_arn, result.region)
    if problems:
        result.checks.append(
            Check("role permission policy", "wrong", f"{label}: " + "; ".join(problems), fix)
        )
    else:
        result.checks.append(
            Check("role permission policy", "ok", f"{label}, least privilege as the procedure's")
        )
