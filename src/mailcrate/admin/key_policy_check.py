"""Does a KMS key's policy let the export role use it? The setup check of an existing key.

The export writes as the role's session through S3: ``kms:GenerateDataKey`` and ``kms:Decrypt``
with ``kms:ViaService = s3.<region>.amazonaws.com`` and the object's ``aws:s3:arn`` as
encryption context. The key policy is the first gate ("Key policies in AWS KMS"): it must allow
the role itself, or the account (so that the role's IAM policy decides), and deny it nothing.
The same pure evaluator the server uses answers (:mod:`mailcrate.policy.key_policy`).
"""

from __future__ import annotations

import json
from typing import Any

from mailcrate.policy import MalformedPolicyError, RequestContext, RequestPrincipal, parse_resource_policy
from mailcrate.policy.evaluate import statement_applies
from mailcrate.policy.key_policy import KeyPolicyAnswer, evaluate_key_policy

EXPORT_ACTIONS = ("kms:GenerateDataKey", "kms:Decrypt")
ROLE_SID = "Allow the mailbox export role through S3"


def _requests(key_arn: str, role_arn: str, region: str, bucket: str, prefix: str) -> list[RequestContext]:
    account = role_arn.split(":")[4]
    role_name = role_arn.rsplit("/", 1)[1]
    session = RequestPrincipal.assumed_role(
        f"arn:aws:sts::{account}:assumed-role/{role_name}/export", role_arn=role_arn
    )
    keys = {
        "kms:CallerAccount": account,
        "kms:ViaService": f"s3.{region}.amazonaws.com",
        "kms:EncryptionContext:aws:s3:arn": f"arn:aws:s3:::{bucket}/{prefix}example.zip",
        "kms:EncryptionContextKeys": ["aws:s3:arn"],
    }
    return [RequestContext.build(action, key_arn, session, keys) for action in EXPORT_ACTIONS]


def role_statement(role_arn: str, region: str) -> dict[str, Any]:
    """The key policy statement that lets the export role use the key through S3."""
    return {
        "Sid": ROLE_SID,
        "Effect": "Allow",
        "Principal": {"AWS": role_arn},
        "Action": list(EXPORT_ACTIONS),
        "Resource": "*",
        "Condition": {"StringEquals": {"kms:ViaService": f"s3.{region}.amazonaws.com"}},
    }


def check_key_policy(
    text: str, *, key_arn: str, role_arn: str, region: str, bucket: str, prefix: str
) -> tuple[list[str], dict[str, Any] | None]:
    """Problems with the key policy for the export role, and a policy that fixes them (None
    when there is none to give: an unreadable policy is replaced by the role's statement plus
    the account's)."""
    try:
        policy = parse_resource_policy(text)
    except MalformedPolicyError as exc:
        return [f"the key policy is not valid: {exc}"], None
    problems: list[str] = []
    blocking: set[int] = set()
    missing = False
    for ctx in _requests(key_arn, role_arn, region, bucket, prefix):
        answer = evaluate_key_policy(policy, ctx)
        if answer is KeyPolicyAnswer.DENY:
            problems.append(f"a Deny statement refuses {ctx.action} to {role_arn}")
            values = ctx.condition_values()
            for index, statement in enumerate(policy.statements):
                if statement.effect.value == "Deny" and statement_applies(
                    statement, ctx, key_arn, values, variables=policy.variables_enabled, check_principal=True
                ):
                    blocking.add(index)
        elif answer is KeyPolicyAnswer.NONE:
            problems.append(f"no statement allows {ctx.action} to {role_arn} or to its account")
            missing = True
    if not problems:
        return [], None
    document = json.loads(text)
    raw = document.get("Statement", [])
    statements = [raw] if isinstance(raw, dict) else list(raw)
    kept = [s for i, s in enumerate(statements) if i not in blocking]
    if missing:
        kept.append(role_statement(role_arn, region))
    return problems, {**document, "Statement": kept}
