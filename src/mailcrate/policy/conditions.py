"""The ``Condition`` element: every IAM condition operator and its evaluation rules.

A condition block is ``{operator: {key: value-or-values}}``.  AWS's rules, all implemented
here:

* all operators in a block, and all keys under one operator, are ANDed;
* several values for one key are ORed -- for negated operators (``StringNotEquals`` ...)
  that means "matches none of the values" (the negation of the positive operator);
* condition key names are case-insensitive, values follow the operator's case rule;
* a key missing from the request: positive operators are false, negated operators true,
  ``...IfExists`` true, ``ForAllValues:`` true, ``ForAnyValue:`` false, and ``Null`` tests
  exactly that presence;
* ``ForAnyValue:`` -- at least one request value satisfies the operator; ``ForAllValues:``
  -- every request value does (an empty set satisfies it);
* policy variables are substituted in values of String and ARN operators only.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from functools import lru_cache

from .matching import Token, arn_like, as_tokens, like, token_text
from .variables import ContextValue, substitute

ANY_VALUE = "ForAnyValue"
ALL_VALUES = "ForAllValues"
IF_EXISTS = "IfExists"

Matcher = Callable[[tuple[Token, ...], str], bool]
"""``(policy value as tokens, one request value) -> bool`` for a positive operator."""


@dataclass(frozen=True)
class Condition:
    """One ``operator / key / values`` triple of a Condition block, as written in the policy."""

    operator: str
    key: str
    values: tuple[str, ...]


@dataclass(frozen=True)
class OperatorSpec:
    """A parsed operator name such as ``ForAllValues:StringNotLikeIfExists``."""

    name: str
    base: str
    """The positive operator that does the comparing (``StringLike`` for ``StringNotLike``)."""
    kind: str
    """``string``, ``numeric``, ``date``, ``bool``, ``binary``, ``ip``, ``arn`` or ``null``."""
    negated: bool
    if_exists: bool
    qualifier: str | None
    """``ForAnyValue``, ``ForAllValues`` or ``None``."""

    @property
    def uses_variables(self) -> bool:
        """IAM substitutes policy variables only in String and ARN operator values."""
        return self.kind in ("string", "arn")


# -- value parsing -------------------------------------------------------------------------


def parse_number(text: str) -> Decimal | None:
    """A finite decimal number, or ``None``; Decimal keeps large integers exact."""
    try:
        number = Decimal(text.strip())
    except (InvalidOperation, ValueError):
        return None
    return number if number.is_finite() else None


def parse_date(text: str) -> float | None:
    """ISO 8601 (``2024-01-01``, ``2024-01-01T00:00:00Z``, offsets) or epoch seconds -> epoch."""
    text = text.strip()
    if not text:
        return None
    number = parse_number(text)
    if number is not None and "-" not in text[1:]:
        return float(number)
    try:
        moment = datetime.fromisoformat(text.replace("z", "Z"))
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def _parse_network(text: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network | None:
    try:
        return ipaddress.ip_network(text.strip(), strict=False)
    except ValueError:
        return None


def _parse_binary(text: str) -> bytes | None:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return None


# -- positive matchers ---------------------------------------------------------------------


def _numeric(compare: Callable[[Decimal, Decimal], bool]) -> Matcher:
    def match(policy: tuple[Token, ...], actual: str) -> bool:
        expected, got = parse_number(token_text(policy)), parse_number(actual)
        return expected is not None and got is not None and compare(got, expected)

    return match


def _date(compare: Callable[[float, float], bool]) -> Matcher:
    def match(policy: tuple[Token, ...], actual: str) -> bool:
        expected, got = parse_date(token_text(policy)), parse_date(actual)
        return expected is not None and got is not None and compare(got, expected)

    return match


def _ip(policy: tuple[Token, ...], actual: str) -> bool:
    network = _parse_network(token_text(policy))
    try:
        address = ipaddress.ip_address(actual.strip())
    except ValueError:
        return False
    return network is not None and address.version == network.version and address in network


def _binary(policy: tuple[Token, ...], actual: str) -> bool:
    expected = _parse_binary(token_text(policy))
    got = _parse_binary(actual)
    if got is None:
        got = actual.encode()
    return expected is not None and expected == got


_POSITIVE: dict[str, tuple[str, Matcher]] = {
    "StringEquals": ("string", lambda p, a: token_text(p) == a),
    "StringEqualsIgnoreCase": ("string", lambda p, a: token_text(p).casefold() == a.casefold()),
    "StringLike": ("string", like),
    "NumericEquals": ("numeric", _numeric(lambda a, b: a == b)),
    "NumericLessThan": ("numeric", _numeric(lambda a, b: a < b)),
    "NumericLessThanEquals": ("numeric", _numeric(lambda a, b: a <= b)),
    "NumericGreaterThan": ("numeric", _numeric(lambda a, b: a > b)),
    "NumericGreaterThanEquals": ("numeric", _numeric(lambda a, b: a >= b)),
    "DateEquals": ("date", _date(lambda a, b: a == b)),
    "DateLessThan": ("date", _date(lambda a, b: a < b)),
    "DateLessThanEquals": ("date", _date(lambda a, b: a <= b)),
    "DateGreaterThan": ("date", _date(lambda a, b: a > b)),
    "DateGreaterThanEquals": ("date", _date(lambda a, b: a >= b)),
    "Bool": ("bool", lambda p, a: token_text(p).lower() == a.lower()),
    "BinaryEquals": ("binary", _binary),
    "IpAddress": ("ip", _ip),
    "ArnEquals": ("arn", arn_like),
    "ArnLike": ("arn", arn_like),
}

_NEGATED: dict[str, str] = {
    "StringNotEquals": "StringEquals",
    "StringNotEqualsIgnoreCase": "StringEqualsIgnoreCase",
    "StringNotLike": "StringLike",
    "NumericNotEquals": "NumericEquals",
    "DateNotEquals": "DateEquals",
    "NotIpAddress": "IpAddress",
    "ArnNotEquals": "ArnEquals",
    "ArnNotLike": "ArnLike",
}

OPERATORS: frozenset[str] = frozenset([*_POSITIVE, *_NEGATED, "Null"])
"""Base operator names (without qualifier or ``IfExists``)."""


@lru_cache(maxsize=512)
def parse_operator(name: str) -> OperatorSpec | None:
    """Parse an operator as written; ``None`` when IAM would reject it as unknown."""
    rest, qualifier = name, None
    for prefix in (ANY_VALUE, ALL_VALUES):
        if rest.startswith(prefix + ":"):
            rest, qualifier = rest[len(prefix) + 1 :], prefix
            break
    if_exists = rest.endswith(IF_EXISTS) and rest != IF_EXISTS
    if if_exists:
        rest = rest[: -len(IF_EXISTS)]
    if rest == "Null":
        if if_exists or qualifier:
            return None
        return OperatorSpec(name, "Null", "null", False, False, None)
    negated = rest in _NEGATED
    base = _NEGATED.get(rest, rest)
    if base not in _POSITIVE:
        return None
    return OperatorSpec(name, base, _POSITIVE[base][0], negated, if_exists, qualifier)


def invalid_value(spec: OperatorSpec, value: str) -> bool:
    """True when IAM would reject ``value`` for this operator at write time."""
    checks: dict[str, Callable[[str], object]] = {
        "numeric": parse_number,
        "date": parse_date,
        "ip": _parse_network,
        "binary": _parse_binary,
        "bool": lambda v: v.lower() in ("true", "false") or None,
        "null": lambda v: v.lower() in ("true", "false") or None,
    }
    check = checks.get(spec.kind)
    return check is not None and check(value) is None


# -- evaluation ----------------------------------------------------------------------------


def _request_values(value: ContextValue | None) -> tuple[str, ...]:
    if value is None:
        return ()
    return (value,) if isinstance(value, str) else value


def _policy_patterns(
    spec: OperatorSpec,
    values: Iterable[str],
    context: Mapping[str, ContextValue],
    variables: bool,
) -> list[tuple[Token, ...]]:
    """Policy values as tokens; unresolvable variables drop the value (it matches nothing)."""
    patterns: list[tuple[Token, ...]] = []
    for value in values:
        if variables and spec.uses_variables:
            tokens = substitute(value, context)
            if tokens is not None:
                patterns.append(tokens)
        else:
            patterns.append(as_tokens(value))
    return patterns


def evaluate_condition(
    condition: Condition, context: Mapping[str, ContextValue], *, variables: bool = True
) -> bool:
    """Evaluate one operator/key pair against the request context (keys lower-cased).

    ``variables`` is False for policies older than version 2012-10-17.
    """
    spec = parse_operator(condition.operator)
    if spec is None:  # validated away at parse time; never grant on an unknown operator
        return False
    actual = _request_values(context.get(condition.key.lower()))
    if spec.kind == "null":
        absent = not actual
        return any((value.lower() == "true") == absent for value in condition.values)
    if not actual:
        if spec.if_exists or spec.qualifier == ALL_VALUES:
            return True
        if spec.qualifier == ANY_VALUE:
            return False
        return spec.negated
    matcher = _POSITIVE[spec.base][1]
    patterns = _policy_patterns(spec, condition.values, context, variables)

    def satisfied(one: str) -> bool:
        hit = any(matcher(pattern, one) for pattern in patterns)
        return not hit if spec.negated else hit

    if spec.qualifier == ALL_VALUES:
        return all(satisfied(one) for one in actual)
    if spec.qualifier == ANY_VALUE:
        return any(satisfied(one) for one in actual)
    hit_any = any(any(matcher(pattern, one) for pattern in patterns) for one in actual)
    return not hit_any if spec.negated else hit_any


def evaluate_conditions(
    conditions: Iterable[Condition], context: Mapping[str, ContextValue], *, variables: bool = True
) -> bool:
    """A whole Condition block: every operator/key pair must hold (AND)."""
    return all(evaluate_condition(c, context, variables=variables) for c in conditions)
