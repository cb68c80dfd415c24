"""KMS key policies: the first gate of every use of a key (pure; no I/O).

AWS KMS decides access to a key differently from other resources (AWS KMS Developer Guide,
"Key policies in AWS KMS" and "Allowing users in other accounts to use a KMS key"; IAM User
Guide, "Policy evaluation logic"):

* No principal, not even the account's root user, may use a key unless its key policy allows
  it, directly or by letting IAM policies decide.
* A key policy statement whose principal is the *account* (``arn:aws:iam::ACCOUNT:root`` or the
  bare account id) does not allow the account's users and roles by itself: it enables IAM
  policies, so such a caller is allowed only where its IAM policies allow too. The root user
  itself is the account, so the statement names it directly. AWS's default key policy is
  exactly that one statement for the key's account (:func:`default_key_policy`).
* A statement naming the caller directly (its user or role ARN, ``"*"``) allows in the key's
  own account without any IAM policy.
* Another account's caller needs both halves: the key policy (naming its account or itself)
  and an IAM policy of its own account (its root counts as allowed by its own account).
* An explicit ``Deny`` in the key policy or in the IAM policies wins over everything.
"""

from __future__ import annotations

import json
from enum import Enum

from .document import Effect, Policy, PrincipalSpec
from .evaluate import Decision, RequestContext, RequestPrincipal, principal_matches, statement_applies

__all__ = [
    "KeyPolicyAnswer",
    "aws_managed_key_policy",
    "combine",
    "default_key_policy",
    "evaluate_key_policy",
]


class KeyPolicyAnswer(Enum):
    """What a key policy says to one request."""

    DENY = "deny"  # an applicable Deny statement
    ALLOW = "allow"  # an Allow statement names the caller itself (or everyone)
    ALLOW_WITH_IAM = "allow_with_iam"  # only the caller's account is named: IAM must allow too
    NONE = "none"  # no statement applies


def default_key_policy(account_id: str) -> str:
    """The key policy KMS gives a key created without one ("Default key policy": the statement
    "Enable IAM User Permissions" for the account)."""
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Id": "key-default-1",
            "Statement": [
                {
                    "Sid": "Enable IAM User Permissions",
                    "Effect": "Allow",
                    "Principal": {"AWS": f"arn:aws:iam::{account_id}:root"},
                    "Action": "kms:*",
                    "Resource": "*",
                }
            ],
        },
        indent=2,
    )


def aws_managed_key_policy(account_id: str, via_service: str) -> str:
    """The policy of an AWS managed key (``alias/aws/s3``): every principal of the account, only
    through the service, and read-only access to the key's metadata for the account
    ("AWS managed keys" in "AWS KMS keys"; the policy AWS shows for aws/s3)."""
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Id": "auto-" + via_service.split(".", 1)[0],
            "Statement": [
                {
                    "Sid": "Allow access through the service for all principals in the account "
                    "that are authorized to use it",
                    "Effect": "Allow",
                    "Principal": {"AWS": "*"},
                    "Action": [
                        "kms:Encrypt",
                        "kms:Decrypt",
                        "kms:ReEncrypt*",
                        "kms:GenerateDataKey*",
                        "kms:DescribeKey",
                    ],
                    "Resource": "*",
                    "Condition": {
                        "StringEquals": {"kms:CallerAccount": account_id, "kms:ViaService": via_service}
                    },
                },
                {
                    "Sid": "Allow direct access to key metadata to the account",
                    "Effect": "Allow",
                    "Principal": {"AWS": f"arn:aws:iam::{account_id}:root"},
                    "Action": ["kms:Describe*", "kms:Get*", "kms:List*"],
                    "Resource": "*",
                },
            ],
        },
        indent=2,
    )


def _names_account_only(spec: PrincipalSpec, principal: RequestPrincipal) -> bool:
    """True when ``spec`` matches the caller only through an entry naming its account (which
    enables IAM policies) and not through one naming the caller itself."""
    if spec.wildcard or principal.type != "AWS" or principal.account is None:
        return False
    account_root = f"arn:aws:iam::{principal.account}:root"
    if principal.arn == account_root:
        return False  # the root user *is* the account: named directly
    direct = [e for e in spec.aws if not (e == principal.account or e == account_root)]
    return not principal_matches(PrincipalSpec(aws=tuple(direct)), principal)


def evaluate_key_policy(policy: Policy, ctx: RequestContext) -> KeyPolicyAnswer:
    """The key policy's answer for one request (its resource is the key's ARN)."""
    values = ctx.condition_values()
    answer = KeyPolicyAnswer.NONE
    for resource in ctx.resources:
        for statement in policy.statements:
            if not statement_applies(
                statement, ctx, resource, values, variables=policy.variables_enabled, check_principal=True
            ):
                continue
            if statement.effect is Effect.DENY:
                return KeyPolicyAnswer.DENY
            if statement.principal is not None and _names_account_only(statement.principal, ctx.principal):
                if answer is KeyPolicyAnswer.NONE:
                    answer = KeyPolicyAnswer.ALLOW_WITH_IAM
            else:
                answer = KeyPolicyAnswer.ALLOW
    return answer


def combine(key_policy: KeyPolicyAnswer, identity: Decision, *, same_account: bool) -> Decision:
    """The final decision from the key policy's answer and the caller's IAM decision (for the
    account's root user pass ``Decision.ALLOW``: its own account allows it everything)."""
    if key_policy is KeyPolicyAnswer.DENY or identity is Decision.EXPLICIT_DENY:
        return Decision.EXPLICIT_DENY
    if key_policy is KeyPolicyAnswer.NONE:
        return Decision.IMPLICIT_DENY
    if key_policy is KeyPolicyAnswer.ALLOW and same_account:
        return Decision.ALLOW
    return Decision.ALLOW if identity is Decision.ALLOW else Decision.IMPLICIT_DENY
