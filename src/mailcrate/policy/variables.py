"""Policy variables: ``${aws:username}``, ``${key, 'default'}``, ``${*}``, ``${?}``, ``${$}``.

Variables are substituted only in policies with ``"Version": "2012-10-17"`` (older policies
take ``${...}`` literally), only in ``Resource``/``NotResource`` and in the values of String
and ARN condition operators.  The result is a token sequence (see :mod:`.matching`): the
substituted value and the escapes ``${*}``/``${?}``/``${$}`` are literal, so a user called
``a*`` cannot widen a ``${aws:username}/*`` resource to other users' keys.

A variable whose key is absent from the request (or is multi-valued, which cannot be
substituted) and has no default makes the whole value unresolvable: :func:`substitute`
returns ``None`` and the caller treats that value as matching nothing.  Key names are
case-insensitive; default values are case-sensitive, and ``''`` inside a default stands for
one quote.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from .matching import Token

ContextValue = str | tuple[str, ...]
"""A normalised request-context value: one string, or a tuple for multi-valued keys."""

_VARIABLE = re.compile(r"\$\{\s*([^,}\s]+)\s*(?:,\s*'((?:[^']|'')*)'\s*)?\}")
_ESCAPES = {"*": "*", "?": "?", "$": "$"}


def has_variables(text: str) -> bool:
    """True when ``text`` contains at least one well-formed ``${...}`` reference."""
    return _VARIABLE.search(text) is not None


def substitute(text: str, context: Mapping[str, ContextValue]) -> tuple[Token, ...] | None:
    """Replace variables in ``text`` with values from ``context`` (keys already lower-case).

    Returns the token sequence, or ``None`` when a variable cannot be resolved.  Malformed
    references (``${foo``) stay as ordinary pattern text, like IAM leaves them.
    """
    tokens: list[Token] = []
    position = 0
    for match in _VARIABLE.finditer(text):
        if match.start() > position:
            tokens.append((text[position : match.start()], False))
        key, default = match.group(1), match.group(2)
        if key in _ESCAPES and default is None:
            tokens.append((_ESCAPES[key], True))
        else:
            value = context.get(key.lower())
            if isinstance(value, str):
                tokens.append((value, True))
            elif default is not None:
                tokens.append((default.replace("''", "'"), True))
            else:
                return None
        position = match.end()
    if position < len(text):
        tokens.append((text[position:], False))
    return tuple(tokens)
