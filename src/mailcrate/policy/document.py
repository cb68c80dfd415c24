"""Parse and validate IAM policy documents into frozen dataclasses.

Validation happens on write, as IAM does it (CreatePolicy, PutUserPolicy, CreateRole,
PutBucketPolicy ...): a document that would later be impossible to evaluate is rejected with
:class:`MalformedPolicyError` carrying an IAM-like message, so a service can return it as
``MalformedPolicyDocument`` unchanged.  The original text is kept in :attr:`Policy.text`
because IAM returns a document exactly as it was written.

Two flavours differ only in the Principal and Resource rules:

* identity policies (attached to users, roles, groups): no ``Principal``/``NotPrincipal``,
  ``Resource`` or ``NotResource`` required;
* resource policies (role trust policies, bucket and key policies): ``Principal`` or
  ``NotPrincipal`` required; ``Resource`` optional, required (bucket policies) or forbidden
  (trust policies) depending on the caller.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Literal

from .conditions import Condition, invalid_value, parse_operator

VERSIONS = ("2012-10-17", "2008-10-17")
VARIABLES_VERSION = "2012-10-17"

_TOP_LEVEL = frozenset({"Version", "Id", "Statement"})
_STATEMENT = frozenset(
    {"Sid", "Effect", "Principal", "NotPrincipal", "Action", "NotAction", "Resource", "NotResource"}
    | {"Condition"}
)
_PRINCIPAL_TYPES = ("AWS", "Service", "Federated", "CanonicalUser")
_ACTION = re.compile(r"^[A-Za-z0-9-]+:[A-Za-z0-9*?_-]+$")
_ACCOUNT = re.compile(r"^\d{12}$")
_AWS_PRINCIPAL_ARN = re.compile(
    r"^arn:aws[a-z-]*:(iam::\d{12}:(root|user/.+|role/.+|federated-user/.+|group/.+)"
    r"|sts::\d{12}:(assumed-role/.+/.+|federated-user/.+))$"
)
_SERVICE = re.compile(r"^[a-z0-9][a-z0-9.-]*\.[a-z0-9.-]+$")
_SID_ALNUM = re.compile(r"^[A-Za-z0-9]*$")

SYNTAX_ERROR = "Syntax errors in policy."
VENDOR_PREFIX = "Actions/Conditions must be prefaced by a vendor, e.g., iam, sdb, ec2, etc."
ResourceRule = Literal["optional", "required", "forbidden"]


class MalformedPolicyError(ValueError):
    """The document is not a valid policy; ``message`` is what IAM would say."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class Effect(StrEnum):
    ALLOW = "Allow"
    DENY = "Deny"


class PolicyKind(StrEnum):
    IDENTITY = "identity"
    RESOURCE = "resource"


@dataclass(frozen=True)
class PrincipalSpec:
    """A ``Principal`` or ``NotPrincipal`` element.

    ``wildcard`` is the bare ``"*"`` (everyone, anonymous included); otherwise the values of
    each principal type, with single strings normalised to one-element tuples.
    """

    wildcard: bool = False
    aws: tuple[str, ...] = ()
    service: tuple[str, ...] = ()
    federated: tuple[str, ...] = ()
    canonical_user: tuple[str, ...] = ()


@dataclass(frozen=True)
class Statement:
    """One statement; exactly one of each Action/NotAction pair is set, as IAM requires."""

    effect: Effect
    sid: str | None = None
    action: tuple[str, ...] | None = None
    not_action: tuple[str, ...] | None = None
    resource: tuple[str, ...] | None = None
    not_resource: tuple[str, ...] | None = None
    principal: PrincipalSpec | None = None
    not_principal: PrincipalSpec | None = None
    conditions: tuple[Condition, ...] = ()


@dataclass(frozen=True)
class Policy:
    """A validated policy; ``text`` is the document exactly as submitted."""

    kind: PolicyKind
    version: str | None
    id: str | None
    statements: tuple[Statement, ...]
    text: str

    @property
    def variables_enabled(self) -> bool:
        """Policy variables are only substituted in version 2012-10-17 documents."""
        return self.version == VARIABLES_VERSION


def _reject_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise MalformedPolicyError(SYNTAX_ERROR)
        result[key] = value
    return result


def _reject_constant(_: str) -> Any:
    raise MalformedPolicyError(SYNTAX_ERROR)


def _load(document: str | bytes | Mapping[str, Any]) -> tuple[dict[str, Any], str]:
    """Return the decoded top-level object and the text to store."""
    if isinstance(document, Mapping):
        text = json.dumps(document)
    elif isinstance(document, bytes | bytearray):
        try:
            text = bytes(document).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise MalformedPolicyError(SYNTAX_ERROR) from exc
    elif isinstance(document, str):
        text = document
    else:
        raise MalformedPolicyError(SYNTAX_ERROR)
    try:
        data = json.loads(text, object_pairs_hook=_reject_duplicates, parse_constant=_reject_constant)
    except (ValueError, RecursionError) as exc:
        if isinstance(exc, MalformedPolicyError):
            raise
        raise MalformedPolicyError(SYNTAX_ERROR) from exc
    if not isinstance(data, dict):
        raise MalformedPolicyError(SYNTAX_ERROR)
    return data, text


def _string_list(value: Any, element: str, *, allow_empty: bool = False) -> tuple[str, ...]:
    """A string or list of strings (IAM accepts both everywhere a list is allowed)."""
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not all(isinstance(item, str) for item in items):
        raise MalformedPolicyError(SYNTAX_ERROR)
    if not items and not allow_empty:
        raise MalformedPolicyError(f"Policy statement must contain {element.lower()}s.")
    return tuple(items)


def _actions(value: Any) -> tuple[str, ...]:
    actions = _string_list(value, "Action")
    for action in actions:
        if action == "*":
            continue
        if ":" not in action:
            raise MalformedPolicyError(VENDOR_PREFIX)
        if not _ACTION.match(action):
            raise MalformedPolicyError("Policy has invalid action")
    return actions


def _resources(value: Any) -> tuple[str, ...]:
    resources = _string_list(value, "Resource")
    for resource in resources:
        if resource != "*" and (not resource.startswith("arn:") or resource.count(":") < 5):
            raise MalformedPolicyError(f'Resource {resource} must be in ARN format or "*".')
    return resources


def _invalid_principal(kind: str, value: Any) -> MalformedPolicyError:
    return MalformedPolicyError(f"Invalid principal in policy: {json.dumps({kind: value})}")


def _principal(value: Any) -> PrincipalSpec:
    """Validate a Principal/NotPrincipal value; partial wildcards are not allowed by IAM."""
    if value == "*":
        return PrincipalSpec(wildcard=True)
    if not isinstance(value, dict) or not value:
        raise MalformedPolicyError("Invalid principal in policy")
    found: dict[str, tuple[str, ...]] = {}
    for kind, raw in value.items():
        if kind not in _PRINCIPAL_TYPES:
            raise _invalid_principal(kind, raw)
        items = [raw] if isinstance(raw, str) else raw
        if not isinstance(items, list) or not items or not all(isinstance(i, str) for i in items):
            raise _invalid_principal(kind, raw)
        for item in items:
            ok = {
                "AWS": item == "*" or bool(_ACCOUNT.match(item) or _AWS_PRINCIPAL_ARN.match(item)),
                "Service": bool(_SERVICE.match(item)),
                "Federated": "*" not in item and bool(item) and not item.isspace(),
                "CanonicalUser": bool(re.fullmatch(r"[0-9a-f]{64}", item)),
            }[kind]
            if not ok or (kind == "AWS" and item != "*" and ("*" in item or "?" in item)):
                raise _invalid_principal(kind, item)
        found[kind] = tuple(items)
    return PrincipalSpec(
        aws=found.get("AWS", ()),
        service=found.get("Service", ()),
        federated=found.get("Federated", ()),
        canonical_user=found.get("CanonicalUser", ()),
    )


def _conditions(value: Any) -> tuple[Condition, ...]:
    if not isinstance(value, dict):
        raise MalformedPolicyError(SYNTAX_ERROR)
    result: list[Condition] = []
    for operator, block in value.items():
        spec = parse_operator(operator)
        if spec is None:
            raise MalformedPolicyError(f"Invalid Condition type : {operator}")
        if not isinstance(block, dict) or not block:
            raise MalformedPolicyError(SYNTAX_ERROR)
        for key, raw in block.items():
            if ":" not in key:
                raise MalformedPolicyError(VENDOR_PREFIX)
            items = raw if isinstance(raw, list) else [raw]
            values: list[str] = []
            for item in items:
                if isinstance(item, bool):
                    values.append("true" if item else "false")
                elif isinstance(item, str | int | float):
                    values.append(str(item))
                else:
                    raise MalformedPolicyError(SYNTAX_ERROR)
            for item in values:
                if invalid_value(spec, item):
                    raise MalformedPolicyError(f"Invalid value {item!r} for condition {operator}:{key}")
            result.append(Condition(operator, key, tuple(values)))
    return tuple(result)


def _exactly_one(raw: dict[str, Any], name: str, *, required: bool) -> None:
    if name in raw and f"Not{name}" in raw:
        raise MalformedPolicyError(SYNTAX_ERROR)
    if required and name not in raw and f"Not{name}" not in raw:
        raise MalformedPolicyError(f"Missing required field {name}")


def _statement(raw: Any, kind: PolicyKind, resource_rule: ResourceRule) -> Statement:
    if not isinstance(raw, dict):
        raise MalformedPolicyError(SYNTAX_ERROR)
    unknown = set(raw) - _STATEMENT
    if unknown:
        raise MalformedPolicyError(f"Policy statement has unknown element: {sorted(unknown)[0]}")
    effect = raw.get("Effect")
    if effect not in ("Allow", "Deny"):
        if effect is None:
            raise MalformedPolicyError("Missing required field Effect")
        raise MalformedPolicyError(f"Invalid effect: {effect}")
    sid = raw.get("Sid")
    if sid is not None and not isinstance(sid, str):
        raise MalformedPolicyError(SYNTAX_ERROR)
    if sid and kind is PolicyKind.IDENTITY and not _SID_ALNUM.match(sid):
        raise MalformedPolicyError("Statement IDs (SID) must be alpha-numeric.")
    _exactly_one(raw, "Action", required=True)
    _exactly_one(raw, "Principal", required=kind is PolicyKind.RESOURCE)
    _exactly_one(raw, "Resource", required=resource_rule == "required")
    if kind is PolicyKind.IDENTITY and ("Principal" in raw or "NotPrincipal" in raw):
        raise MalformedPolicyError("Policy document should not specify a principal.")
    if resource_rule == "forbidden":
        for name in ("Resource", "NotResource"):
            if name in raw:
                raise MalformedPolicyError(f"Has prohibited field {name}")
    return Statement(
        effect=Effect(effect),
        sid=sid,
        action=_actions(raw["Action"]) if "Action" in raw else None,
        not_action=_actions(raw["NotAction"]) if "NotAction" in raw else None,
        resource=_resources(raw["Resource"]) if "Resource" in raw else None,
        not_resource=_resources(raw["NotResource"]) if "NotResource" in raw else None,
        principal=_principal(raw["Principal"]) if "Principal" in raw else None,
        not_principal=_principal(raw["NotPrincipal"]) if "NotPrincipal" in raw else None,
        conditions=_conditions(raw["Condition"]) if "Condition" in raw else (),
    )


def parse_policy(
    document: str | bytes | Mapping[str, Any],
    kind: PolicyKind,
    *,
    resource_rule: ResourceRule | None = None,
) -> Policy:
    """Parse and validate; ``resource_rule`` defaults to required (identity) / optional."""
    if resource_rule is None:
        resource_rule = "required" if kind is PolicyKind.IDENTITY else "optional"
    data, text = _load(document)
    unknown = set(data) - _TOP_LEVEL
    if unknown:
        raise MalformedPolicyError(f"Policy document has unknown element: {sorted(unknown)[0]}")
    version = data.get("Version")
    if version is not None and version not in VERSIONS:
        raise MalformedPolicyError("The policy failed legacy parsing")
    policy_id = data.get("Id")
    if policy_id is not None and not isinstance(policy_id, str):
        raise MalformedPolicyError(SYNTAX_ERROR)
    if "Statement" not in data:
        raise MalformedPolicyError("Missing required field Statement")
    raw_statements = data["Statement"]
    if isinstance(raw_statements, dict):
        raw_statements = [raw_statements]
    if not isinstance(raw_statements, list) or not raw_statements:
        raise MalformedPolicyError(SYNTAX_ERROR)
    statements = tuple(_statement(raw, kind, resource_rule) for raw in raw_statements)
    sids = [s.sid for s in statements if s.sid]
    if len(sids) != len(set(sids)):
        raise MalformedPolicyError("Statement IDs (SID) in a single policy must be unique.")
    return Policy(kind=kind, version=version, id=policy_id, statements=statements, text=text)


def parse_identity_policy(document: str | bytes | Mapping[str, Any]) -> Policy:
    """An identity-based policy (user/role/group inline or managed policy)."""
    return parse_policy(document, PolicyKind.IDENTITY)


def parse_resource_policy(
    document: str | bytes | Mapping[str, Any], *, resource_rule: ResourceRule = "optional"
) -> Policy:
    """A resource-based policy: trust, bucket or key policy (Principal required).

    Pass ``resource_rule="required"`` for S3 bucket policies, ``"forbidden"`` for role trust
    policies (or use :func:`parse_trust_policy`).
    """
    return parse_policy(document, PolicyKind.RESOURCE, resource_rule=resource_rule)


def parse_trust_policy(document: str | bytes | Mapping[str, Any]) -> Policy:
    """A role trust policy: a resource policy that may not name a Resource."""
    return parse_policy(document, PolicyKind.RESOURCE, resource_rule="forbidden")
