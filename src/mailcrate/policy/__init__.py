"""IAM policy language: parse, match and evaluate policies (pure, no I/O).

Typical use by a service::

    policy = parse_identity_policy(text)          # on write; raises MalformedPolicyError
    ctx = RequestContext.build("s3:PutObject", "arn:aws:s3:::b/k", RequestPrincipal.user(arn))
    evaluate_identity_policies([policy], ctx)      # Decision.ALLOW / EXPLICIT_DENY / IMPLICIT_DENY
"""

from .conditions import Condition, OperatorSpec, evaluate_condition, evaluate_conditions, parse_operator
from .document import (
    Effect,
    MalformedPolicyError,
    Policy,
    PolicyKind,
    PrincipalSpec,
    Statement,
    parse_identity_policy,
    parse_policy,
    parse_resource_policy,
    parse_trust_policy,
)
from .effective import effective_identity_decision
from .evaluate import (
    Decision,
    RequestContext,
    RequestPrincipal,
    authorize,
    evaluate_identity_policies,
    evaluate_resource_policy,
    principal_matches,
)
from .matching import action_matches, arn_like, like, resource_matches
from .public import is_public_policy, is_public_statement

__all__ = [
    "Condition",
    "Decision",
    "Effect",
    "MalformedPolicyError",
    "OperatorSpec",
    "Policy",
    "PolicyKind",
    "PrincipalSpec",
    "RequestContext",
    "RequestPrincipal",
    "Statement",
    "action_matches",
    "arn_like",
    "authorize",
    "effective_identity_decision",
    "evaluate_condition",
    "evaluate_conditions",
    "evaluate_identity_policies",
    "evaluate_resource_policy",
    "is_public_policy",
    "is_public_statement",
    "like",
    "parse_identity_policy",
    "parse_operator",
    "parse_policy",
    "parse_resource_policy",
    "parse_trust_policy",
    "principal_matches",
    "resource_matches",
]
