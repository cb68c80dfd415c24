"""Policy documents as IAM handles them: validated on write, size quotas, URL-encoded on read.

IAM counts a policy's size without white space; the default quotas are 2,048 characters for a
role's trust policy and a user's inline policies together, 10,240 for a role's inline policies
together. Documents are stored exactly as written and returned URL-encoded (botocore decodes
them back into objects for its callers).
"""

from __future__ import annotations

import re
from functools import lru_cache
from urllib.parse import quote

from mailcrate.policy import MalformedPolicyError, Policy, parse_identity_policy, parse_trust_policy
from mailcrate.services.iam.errors import MalformedPolicyDocument

TRUST_POLICY_QUOTA = 2048
ROLE_POLICIES_QUOTA = 10240
USER_POLICIES_QUOTA = 2048
_WHITESPACE = re.compile(r"\s+")
_TRUST_ACTIONS = re.compile(r"^sts:[a-z*?]*$", re.IGNORECASE)


def size(text: str) -> int:
    """A document's size as IAM's quotas count it: characters other than white space."""
    return len(_WHITESPACE.sub("", text))


def identity_policy(text: str) -> Policy:
    """Validate an inline (identity) policy, raising IAM's MalformedPolicyDocument."""
    try:
        return parse_identity_policy(text)
    except MalformedPolicyError as exc:
        raise MalformedPolicyDocument(exc.message) from None


def trust_policy(text: str) -> Policy:
    """Validate a role trust policy: a resource policy without Resource, STS actions only."""
    try:
        policy = parse_trust_policy(text)
    except MalformedPolicyError as exc:
        raise MalformedPolicyDocument(exc.message) from None
    for statement in policy.statements:
        for action in (*(statement.action or ()), *(statement.not_action or ())):
            if action != "*" and not _TRUST_ACTIONS.match(action):
                raise MalformedPolicyDocument("AssumeRole policy may only specify STS AssumeRole actions.")
    return policy


def encoded(text: str) -> str:
    """The document as IAM's API returns it: URL-encoded (``%7B%22Version%22...``)."""
    return quote(text, safe="")


@lru_cache(maxsize=2048)
def parsed_identity(text: str) -> Policy:
    """A stored identity policy, parsed once per process (documents were validated on write)."""
    return parse_identity_policy(text)


@lru_cache(maxsize=1024)
def parsed_trust(text: str) -> Policy:
    return parse_trust_policy(text)
