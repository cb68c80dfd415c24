"""The global condition keys AWS fills from the request and its resource, for one call.

Each key is present exactly when AWS would send it, so ``...IfExists`` and ``Null`` behave as on
AWS (https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_condition-keys.html):

* ``aws:RequestedRegion``: the region the request was signed for; IAM, a global service,
  answers in us-east-1 whatever the client signed for, as AWS does.
* ``aws:ViaAWSService``: always, ``true`` only when a service makes the call with the caller's
  credentials (``Call.on_behalf_of_service``); then ``aws:CalledVia`` (a list),
  ``aws:CalledViaFirst`` and ``aws:CalledViaLast`` name that service.
* ``aws:RequestTag/<key>`` and ``aws:TagKeys``: on calls that carry tags (create and tag
  calls), in either of AWS's tag shapes (``Key``/``Value``, KMS's ``TagKey``/``TagValue``);
  ``aws:TagKeys`` alone on untagging calls.
* ``aws:ResourceAccount``: the account in the resource's ARN (S3 ARNs have none: the bucket
  owner, when the service passed ``s3:ResourceAccount``).
* ``aws:ResourceTag/<key>``: the tags of an IAM role or user the call acts on.
* ``iam:PolicyARN`` (attach/detach) and ``iam:PermissionsBoundary`` (calls that set one).

Principal keys (``aws:PrincipalArn`` ...) are derived by the policy engine; ``aws:SourceIp`` and
``aws:SecureTransport`` come from the connection (see :mod:`mailcrate.server.serve` for proxies).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mailcrate.services.iam import common, roles, users
from mailcrate.services.iam.errors import NoSuchEntity

if TYPE_CHECKING:
    from mailcrate.services.base import Call


def request_tags(params: dict[str, Any]) -> dict[str, Any]:
    """``aws:RequestTag/*`` and ``aws:TagKeys`` of a call's ``Tags`` / ``TagKeys`` parameters."""
    keys: dict[str, Any] = {}
    tags = params.get("Tags")
    if isinstance(tags, list) and tags and all(isinstance(tag, dict) for tag in tags):
        names: list[str] = []
        for tag in tags:
            name = tag.get("Key", tag.get("TagKey"))
            if isinstance(name, str):
                names.append(name)
                keys[f"aws:RequestTag/{name}"] = str(tag.get("Value", tag.get("TagValue", "")))
        keys["aws:TagKeys"] = names
    elif isinstance(params.get("TagKeys"), list):
        keys["aws:TagKeys"] = [str(name) for name in params["TagKeys"]]
    return keys


def resource_account(resource: str, given: str | None = None) -> str | None:
    parts = resource.split(":", 5)
    if len(parts) == 6 and parts[0] == "arn" and parts[4].isdigit():
        return parts[4]
    return given


def iam_resource_tags(call: Call, resource: str) -> dict[str, str]:
    """The tags of the IAM role or user ``resource`` names (none for anything else)."""
    parts = resource.split(":", 5)
    if len(parts) != 6 or parts[:3] != ["arn", "aws", "iam"]:
        return {}
    kind = parts[5].split("/", 1)[0]
    if kind not in ("role", "user"):
        return {}
    with call.context.db.read() as conn:
        if kind == "role":
            entity: Any = roles.find_by_arn(conn, resource)
        else:
            name = parts[5].rsplit("/", 1)[-1]
            try:
                entity = users.find(conn, parts[4], name)
            except NoSuchEntity:  # the handler reports it; no tags to match
                entity = None
            if entity is not None and entity.arn != resource:
                entity = None
    if entity is None:
        return {}
    return {f"aws:ResourceTag/{t['Key']}": t["Value"] for t in common.tags_list(entity.tags) or ()}


def for_call(call: Call, resource: str, given: dict[str, Any] | None = None) -> dict[str, Any]:
    """The request's and resource's global keys for ``call`` acting on ``resource``."""
    keys: dict[str, Any] = {"aws:RequestedRegion": call.region}
    via = call.on_behalf_of_service
    keys["aws:ViaAWSService"] = via is not None
    if via is not None:
        keys |= {"aws:CalledVia": [via], "aws:CalledViaFirst": via, "aws:CalledViaLast": via}
    keys |= request_tags(call.params)
    account = resource_account(resource, (given or {}).get("s3:ResourceAccount"))
    if account is not None:
        keys["aws:ResourceAccount"] = account
    if call.service == "iam":
        keys |= iam_resource_tags(call, resource)
        keys |= _iam_policy_keys(call)
    return keys


_POLICY_ARN_OPERATIONS = frozenset(
    {"AttachRolePolicy", "DetachRolePolicy", "AttachUserPolicy", "DetachUserPolicy"}
)


def _iam_policy_keys(call: Call) -> dict[str, str]:
    """``iam:PolicyARN`` on attach/detach calls, ``iam:PermissionsBoundary`` where one is set
    (https://docs.aws.amazon.com/service-authorization/latest/reference/list_awsidentityandaccessmanagementiam.html):
    what lets an administrator delegate role creation within a boundary."""
    keys: dict[str, str] = {}
    if call.operation in _POLICY_ARN_OPERATIONS and "PolicyArn" in call.params:
        keys["iam:PolicyARN"] = call.params["PolicyArn"]
    if call.params.get("PermissionsBoundary"):
        keys["iam:PermissionsBoundary"] = call.params["PermissionsBoundary"]
    return keys
