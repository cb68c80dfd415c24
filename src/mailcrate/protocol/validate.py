"""Constraint checks driven by the botocore model: required, length, range, pattern, enum.

Protocol parsers first turn the wire document into Python values of the right types (rejecting
wrong types themselves); this module then checks the model's constraints and reports every broken
one the way AWS's front end does::

    1 validation error detected: Value 'x' at 'organizationId' failed to satisfy constraint:
    Member must have length greater than or equal to 34

String lengths count Unicode code points, as Smithy's ``@length`` does. Patterns are searched,
not implicitly anchored (Smithy's rule); models anchor them where they mean to.
"""

from __future__ import annotations

import re
from functools import cache
from typing import Any

from botocore.model import Shape

try:  # Java-style classes such as \p{L} appear in a few models; `regex` understands them.
    import regex as _regex_module
except ImportError:  # pragma: no cover - optional dependency
    _regex_module = None


@cache
def _compiled(pattern: str) -> Any:
    try:
        return re.compile(pattern)
    except re.error:
        if _regex_module is None:
            return None
        try:
            return _regex_module.compile(pattern)
        except Exception:
            return None


def _member_path(parent: str, name: str) -> str:
    name = name[:1].lower() + name[1:]
    return f"{parent}.{name}" if parent else name


def _shown(value: Any) -> str:
    if isinstance(value, (bytes, bytearray)):
        return "[binary]"
    return str(value)[:200]


def validate(shape: Shape | None, params: dict[str, Any], *, anchored: bool = False) -> list[str]:
    """Return AWS-style problem descriptions (empty when the input is valid).

    ``anchored``: patterns must match the whole value, as the query-protocol services (IAM,
    STS) apply their models' patterns."""
    problems: list[str] = []
    if shape is not None:
        _check_structure(shape, params, "", problems)
        if anchored and not problems:
            _check_anchored(shape, params, "", problems)
    return problems


def _check(shape: Shape, value: Any, path: str, problems: list[str]) -> None:
    kind = shape.type_name
    meta = shape.metadata
    # Sensitive members (passwords, names) never appear in messages that may be logged.
    shown = "***" if meta.get("sensitive") else _shown(value)
    if kind == "structure":
        _check_structure(shape, value, path, problems)
    elif kind == "list":
        _check_range(len(value), meta, path, shown, problems, "length")
        for index, item in enumerate(value):
            _check(shape.member, item, f"{path}.{index + 1}.member" if path else f"{index + 1}", problems)
    elif kind == "map":
        _check_range(len(value), meta, path, shown, problems, "length")
        for key, item in value.items():
            _check(shape.key, key, f"{path}.key", problems)
            _check(shape.value, item, f"{path}.{key}.value", problems)
    elif kind == "string":
        if shape.enum and value not in shape.enum:
            problems.append(
                f"Value '{shown}' at '{path}' failed to satisfy constraint: "
                f"Member must satisfy enum value set: [{', '.join(shape.enum)}]"
            )
            return
        _check_range(len(value), meta, path, shown, problems, "length")
        if "\x00" in value:
            # PostgreSQL text cannot hold NUL: refused here, the same on every backend, rather
            # than failing in the driver (a 500) on PostgreSQL and being stored on SQLite.
            escaped = shown.replace("\x00", "\\u0000")
            problems.append(
                f"Value '{escaped}' at '{path}' failed to satisfy constraint: "
                "Member must not contain null characters"
            )
        pattern = meta.get("pattern")
        if pattern:
            compiled = _compiled(pattern)
            if compiled is not None and compiled.search(value) is None:
                problems.append(
                    f"Value '{shown}' at '{path}' failed to satisfy constraint: "
                    f"Member must satisfy regular expression pattern: {pattern}"
                )
    elif kind == "blob":
        _check_range(len(value), meta, path, shown, problems, "length")
    elif kind in ("integer", "long", "float", "double"):
        _check_range(value, meta, path, shown, problems, "value")


def _check_structure(shape: Shape, value: dict[str, Any], path: str, problems: list[str]) -> None:
    for name in shape.required_members:
        if value.get(name) is None:
            problems.append(
                f"Value null at '{_member_path(path, name)}' failed to satisfy constraint: Member must not be null"
            )
    for name, member in shape.members.items():
        item = value.get(name)
        if item is not None:
            _check(member, item, _member_path(path, name), problems)


def _check_range(
    measure: Any, meta: dict[str, Any], path: str, shown: str, problems: list[str], what: str
) -> None:
    low, high = meta.get("min"), meta.get("max")
    if low is not None and measure < low:
        problems.append(
            f"Value '{shown}' at '{path}' failed to satisfy constraint: "
            f"Member must have {what} greater than or equal to {low}"
        )
    if high is not None and measure > high:
        problems.append(
            f"Value '{shown}' at '{path}' failed to satisfy constraint: "
            f"Member must have {what} less than or equal to {high}"
        )


@cache
def anchored_pattern(pattern: str) -> re.Pattern[str] | None:
    try:  # Java regexes: \w is ASCII-only there, as it is with re.ASCII
        return re.compile(pattern, re.ASCII)
    except re.error:
        return None


def _check_anchored(shape: Shape, value: Any, path: str, problems: list[str]) -> None:
    """Patterns the generic validator searched for must match the whole value."""
    kind = shape.type_name
    if kind == "structure":
        for name, member in shape.members.items():
            item = value.get(name)
            if item is not None:
                _check_anchored(member, item, _member_path(path, name), problems)
    elif kind == "list":
        for index, item in enumerate(value, 1):
            _check_anchored(shape.member, item, f"{path}.{index}.member", problems)
    elif kind == "map":
        for key, item in value.items():
            _check_anchored(shape.key, key, f"{path}.key", problems)
            _check_anchored(shape.value, item, f"{path}.{key}.value", problems)
    elif kind == "string" and not shape.enum:
        pattern = shape.metadata.get("pattern")
        compiled = anchored_pattern(pattern) if pattern else None
        if compiled is not None and compiled.fullmatch(value) is None:
            shown = "***" if shape.metadata.get("sensitive") else value[:200]
            problems.append(
                f"Value '{shown}' at '{path}' failed to satisfy constraint: "
                f"Member must satisfy regular expression pattern: {pattern}"
            )
