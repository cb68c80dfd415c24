"""The pure key-policy rules (policy/key_policy.py): what a key policy says to one request, and
how that combines with the caller's IAM decision. AWS KMS Developer Guide, "Key policies in AWS
KMS" and "Allowing users in other accounts to use a KMS key"; IAM User Guide, "Policy
evaluation logic"."""

from __future__ import annotations

import json

import pytest

from mailcrate.policy import Decision, RequestContext, RequestPrincipal, parse_resource_policy
from mailcrate.policy.key_policy import KeyPolicyAnswer, combine, default_key_policy, evaluate_key_policy

A, B = "111122223333", "444455556666"
KEY = f"arn:aws:kms:us-east-1:{A}:key/1234abcd-12ab-34cd-56ef-1234567890ab"
ALICE = RequestPrincipal.user(f"arn:aws:iam::{A}:user/alice", "AIDAALICE")
BOB = RequestPrincipal.user(f"arn:aws:iam::{B}:user/bob", "AIDABOB")


def _answer(
    statements: list[dict], principal: RequestPrincipal, action: str = "kms:Decrypt"
) -> KeyPolicyAnswer:
    policy = parse_resource_policy(json.dumps({"Version": "2012-10-17", "Statement": statements}))
    return evaluate_key_policy(policy, RequestContext.build(action, KEY, principal))


def _allow(principal: str) -> dict:
    return {"Effect": "Allow", "Principal": {"AWS": principal}, "Action": "kms:*", "Resource": "*"}


@pytest.mark.parametrize(
    ("statements", "principal", "expected"),
    [
        # The default key policy names the account: IAM must allow its users; its root is named.
        (json.loads(default_key_policy(A))["Statement"], ALICE, KeyPolicyAnswer.ALLOW_WITH_IAM),
        (json.loads(default_key_policy(A))["Statement"], RequestPrincipal.root(A), KeyPolicyAnswer.ALLOW),
        ([_allow(A)], ALICE, KeyPolicyAnswer.ALLOW_WITH_IAM),  # the bare account id too
        ([_allow(ALICE.arn or "")], ALICE, KeyPolicyAnswer.ALLOW),
        ([_allow("*")], ALICE, KeyPolicyAnswer.ALLOW),
        ([_allow(f"arn:aws:iam::{A}:user/keyadmin")], ALICE, KeyPolicyAnswer.NONE),
        ([_allow(f"arn:aws:iam::{A}:root"), _allow(ALICE.arn or "")], ALICE, KeyPolicyAnswer.ALLOW),
        ([_allow(A), {**_allow(ALICE.arn or ""), "Effect": "Deny"}], ALICE, KeyPolicyAnswer.DENY),
        ([_allow(B)], BOB, KeyPolicyAnswer.ALLOW_WITH_IAM),
        ([_allow(A)], BOB, KeyPolicyAnswer.NONE),
    ],
)
def test_key_policy_answer(
    statements: list[dict], principal: RequestPrincipal, expected: KeyPolicyAnswer
) -> None:
    assert _answer(statements, principal) is expected


@pytest.mark.parametrize(
    ("answer", "identity", "same_account", "expected"),
    [
        (KeyPolicyAnswer.ALLOW, Decision.IMPLICIT_DENY, True, Decision.ALLOW),  # key policy alone
        (KeyPolicyAnswer.ALLOW, Decision.IMPLICIT_DENY, False, Decision.IMPLICIT_DENY),  # other account
        (KeyPolicyAnswer.ALLOW, Decision.ALLOW, False, Decision.ALLOW),
        (KeyPolicyAnswer.ALLOW_WITH_IAM, Decision.ALLOW, True, Decision.ALLOW),
        (KeyPolicyAnswer.ALLOW_WITH_IAM, Decision.IMPLICIT_DENY, True, Decision.IMPLICIT_DENY),
        (KeyPolicyAnswer.NONE, Decision.ALLOW, True, Decision.IMPLICIT_DENY),  # IAM alone
        (KeyPolicyAnswer.DENY, Decision.ALLOW, True, Decision.EXPLICIT_DENY),
        (KeyPolicyAnswer.ALLOW, Decision.EXPLICIT_DENY, True, Decision.EXPLICIT_DENY),
    ],
)
def test_combine(answer: KeyPolicyAnswer, identity: Decision, same_account: bool, expected: Decision) -> None:
    assert combine(answer, identity, same_account=same_account) is expected
