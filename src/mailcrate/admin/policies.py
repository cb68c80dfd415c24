"""The export role's policies exactly as the AWS procedure writes them, and checks of existing ones.

The procedure (Amazon WorkMail, "Exporting mailbox content") creates a role with::

    aws iam create-role --role-name WorkmailMailboxExportRole \\
        --assume-role-policy-document file://mailbox-export-trust-policy.json
    aws iam put-role-policy --role-name WorkmailMailboxExportRole \\
        --policy-name MailboxExport --policy-document file://mailbox-export-policy.json

The checks compare meaning, not bytes: statement order, single values versus one-element lists
and the newer trust form (ExternalId plus ``aws:SourceAccount``/``aws:SourceArn``) are all fine;
what matters is that the export service can assume the role only for this account and that the
role may write the bucket and use the key - and no more than the procedure grants.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import unquote

__all__ = [
    "DEFAULT_KEY_ALIAS",
    "DEFAULT_POLICY_NAME",
    "DEFAULT_ROLE_NAME",
    "EXPORT_SERVICE",
    "as_document",
    "check_permission_policy",
    "check_trust_policy",
    "permission_policy",
    "trust_policy",
]

EXPORT_SERVICE = "export.workmail.amazonaws.com"
DEFAULT_ROLE_NAME = "WorkmailMailboxExportRole"
DEFAULT_POLICY_NAME = "MailboxExport"
DEFAULT_KEY_ALIAS = "alias/mailcrate-export"
S3_ACTIONS = ("s3:AbortMultipartUpload", "s3:PutObject", "s3:GetBucketPolicyStatus")
KMS_ACTIONS = ("kms:Decrypt", "kms:GenerateDataKey")


def trust_policy(account_id: str) -> dict[str, Any]:
    """mailbox-export-trust-policy.json with AWS_ACCOUNT_ID replaced."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Service": EXPORT_SERVICE},
                "Action": "sts:AssumeRole",
                "Condition": {"StringEquals": {"sts:ExternalId": account_id}},
            }
        ],
    }


def permission_policy(bucket: str, prefix: str, key_arn: str, region: str) -> dict[str, Any]:
    """mailbox-export-policy.json with the bucket, prefix, key ARN and region filled in."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": list(S3_ACTIONS),
                "Resource": [f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/*"],
            },
            {
                "Effect": "Allow",
                "Action": list(KMS_ACTIONS),
                "Resource": [key_arn],
                "Condition": {
                    "StringEquals": {"kms:ViaService": f"s3.{region}.amazonaws.com"},
                    "StringLike": {"kms:EncryptionContext:aws:s3:arn": f"arn:aws:s3:::{bucket}/{prefix}*"},
                },
            },
        ],
    }


def as_document(value: Any) -> dict[str, Any]:
    """A policy document as boto3 returns it (already a dict) or as IAM sends it (URL-encoded)."""
    if isinstance(value, dict):
        return value
    text = str(value)
    try:
        return json.loads(text)
    except ValueError:
        return json.loads(unquote(text))


def _list(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, list) else [value]


def _statements(doc: dict[str, Any]) -> list[dict[str, Any]]:
    return [s for s in _list(doc.get("Statement")) if isinstance(s, dict)]


def _lower(values: Any) -> set[str]:
    return {str(v).lower() for v in _list(values)}


def check_trust_policy(doc: dict[str, Any], account_id: str) -> list[str]:
    """What is wrong with a role's trust policy for exports (empty: fine)."""
    allows = [
        s
        for s in _statements(doc)
        if s.get("Effect") == "Allow"
        and EXPORT_SERVICE
        in _list((s.get("Principal") or {}).get("Service") if isinstance(s.get("Principal"), dict) else None)
        and ({"sts:assumerole", "sts:*", "*"} & _lower(s.get("Action")))
    ]
    if not allows:
        return [f"no statement allows {EXPORT_SERVICE} to sts:AssumeRole"]
    problems: list[str] = []
    for s in allows:
        cond = s.get("Condition") or {}
        external = None
        for op, keys in cond.items():
            if op.startswith("StringEquals") and isinstance(keys, dict):
                for k, v in keys.items():
                    if k.lower() == "sts:externalid":
                        external = _list(v)
        if external is None:
            problems.append("the trust policy lets the export service assume the role without sts:ExternalId")
        elif external != [account_id]:
            problems.append(f"sts:ExternalId is {external}, must be the account id {account_id}")
    if any(s.get("Effect") == "Deny" for s in _statements(doc)):
        problems.append("the trust policy has a Deny statement (check it does not block the export service)")
    return problems


def _grants(doc: dict[str, Any]) -> list[tuple[set[str], set[str], dict[str, Any]]]:
    return [
        (_lower(s.get("Action")), {str(r) for r in _list(s.get("Resource"))}, s.get("Condition") or {})
        for s in _statements(doc)
        if s.get("Effect") == "Allow"
    ]


def check_permission_policy(
    doc: dict[str, Any], bucket: str, prefix: str, key_arn: str, region: str
) -> list[str]:
    """What is missing from (or broader than) the procedure's permission policy (empty: fine)."""
    problems: list[str] = []
    grants = _grants(doc)
    wanted_s3 = {f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/*"}
    for action in S3_ACTIONS:
        if not any(action.lower() in acts and wanted_s3 <= res for acts, res, _ in grants):
            problems.append(f"{action} is not allowed on {' and '.join(sorted(wanted_s3))}")
    for action in KMS_ACTIONS:
        matching = [c for acts, res, c in grants if action.lower() in acts and key_arn in res]
        if not matching:
            problems.append(f"{action} is not allowed on the key {key_arn}")
            continue
        want = permission_policy(bucket, prefix, key_arn, region)["Statement"][1]["Condition"]
        if not any(_same_condition(c, want) for c in matching):
            problems.append(
                f"{action} on the key lacks the procedure's conditions (kms:ViaService "
                f"s3.{region}.amazonaws.com and kms:EncryptionContext:aws:s3:arn "
                f"arn:aws:s3:::{bucket}/{prefix}*)"
            )
    for acts, res, _ in grants:
        if "*" in acts or "s3:*" in acts or "kms:*" in acts or "*" in res:
            problems.append(f"a statement grants more than the procedure ({sorted(acts)} on {sorted(res)})")
    return problems


def _same_condition(have: dict[str, Any], want: dict[str, Any]) -> bool:
    def norm(cond: dict[str, Any]) -> set[tuple[str, str, str]]:
        return {
            (op, k.lower(), str(v))
            for op, keys in cond.items()
            if isinstance(keys, dict)
            for k, vals in keys.items()
            for v in _list(vals)
        }

    return norm(have) == norm(want)
