"""The identity side of a decision when several policy types limit it (pure).

AWS's evaluation logic for one principal, without resource-based policies
(https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_evaluation-logic.html):

* an explicit ``Deny`` in any of the identity policies, the permissions boundary or the
  session policies denies;
* otherwise the request is allowed only if the identity policies allow it, *and* the
  permissions boundary allows it when the principal has one
  (https://docs.aws.amazon.com/IAM/latest/UserGuide/access_policies_boundaries.html), *and*
  the session policies allow it when the session was given any
  (https://docs.aws.amazon.com/IAM/latest/UserGuide/access_policies.html#policies_session);
* otherwise it is implicitly denied.

``None`` means "this policy type is absent" (it does not limit); an empty sequence means "present
and granting nothing" (a session passed only policy ARNs that no longer exist).
"""

from __future__ import annotations

from collections.abc import Sequence

from .document import Policy
from .evaluate import Decision, RequestContext, evaluate_identity_policies


def effective_identity_decision(
    identity: Sequence[Policy],
    ctx: RequestContext,
    *,
    boundary: Sequence[Policy] | None = None,
    session: Sequence[Policy] | None = None,
) -> Decision:
    """The identity decision narrowed by a boundary and session policies (either may be absent)."""
    decisions = [evaluate_identity_policies(identity, ctx)]
    for limit in (boundary, session):
        if limit is not None:
            decisions.append(evaluate_identity_policies(limit, ctx))
    if Decision.EXPLICIT_DENY in decisions:
        return Decision.EXPLICIT_DENY
    if all(decision is Decision.ALLOW for decision in decisions):
        return Decision.ALLOW
    return Decision.IMPLICIT_DENY
