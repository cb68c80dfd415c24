"""Wildcard and ARN matching, the way IAM compares policy text with request values.

IAM has two wildcard characters, ``*`` (any run of characters, possibly empty) and ``?``
(exactly one character).  After policy variables are substituted, some characters of a
pattern are *literal* (they came from ``${*}``, ``${?}`` or from a variable's value, which
must never act as a wildcard) and the rest are pattern text.  A pattern is therefore a
sequence of :data:`Token` pairs ``(text, literal)``; a plain string is one non-literal token.

Case rules (as AWS applies them):

* actions (``s3:PutObject``) are case-insensitive;
* resources and ARNs are case-sensitive;
* ARNs are compared component by component: the first five colon-separated components
  (``arn``, partition, service, region, account) each on their own, then the resource part
  (everything after the fifth colon, colons included), so ``*`` in the region never spills
  into the account.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import lru_cache

Token = tuple[str, bool]
"""A piece of a pattern: ``(text, literal)``; literal text never acts as a wildcard."""

Pattern = str | Sequence[Token]
"""A pattern as written (a plain string, wildcards active) or as tokens."""

ARN_COMPONENTS = 6
"""``arn:partition:service:region:account:resource`` -- the resource part may hold colons."""


def as_tokens(pattern: Pattern) -> tuple[Token, ...]:
    """Normalise a pattern to a tuple of tokens (hashable, so compiled regexes can be cached)."""
    if isinstance(pattern, str):
        return ((pattern, False),)
    return tuple(pattern)


def token_text(pattern: Pattern) -> str:
    """The pattern's characters with wildcards taken literally (for equality operators)."""
    return "".join(text for text, _ in as_tokens(pattern))


def has_wildcard(pattern: Pattern) -> bool:
    """True when a non-literal part of the pattern contains ``*`` or ``?``."""
    return any(not literal and ("*" in text or "?" in text) for text, literal in as_tokens(pattern))


@lru_cache(maxsize=4096)
def _compile(tokens: tuple[Token, ...], ignore_case: bool) -> re.Pattern[str]:
    """Translate tokens to a regex for ``fullmatch``; cached because policies are re-evaluated often.

    Not the plain translation (``*`` -> ``.*``): that backtracks through every way of placing
    each star, so ``*a*a*a*a*a*a*a*a*b`` against 60 characters took 38 s, and a policy like it
    could hang a request thread for good. The runs between two stars have fixed lengths, so
    taking each middle run at its leftmost occurrence is always right (what follows may start
    anywhere after it): an atomic group commits to that choice, only the last run is anchored
    at the end, and matching takes about (value length x pattern length) steps.
    """
    runs: list[list[str]] = [[]]  # regex pieces of the fixed-length runs between stars
    for text, literal in tokens:
        if literal:
            runs[-1].append(re.escape(text))
            continue
        for char in text:
            if char == "*":
                runs.append([])
            elif char == "?":
                runs[-1].append(".")
            else:
                runs[-1].append(re.escape(char))
    pieces = ["".join(run) for run in runs]
    if len(pieces) == 1:
        regex = pieces[0]
    else:
        first, *middle, last = pieces
        regex = first + "".join(f"(?>.*?{run})" for run in middle if run) + ".*" + last
    flags = re.DOTALL | (re.IGNORECASE if ignore_case else 0)
    return re.compile(regex, flags)


def like(pattern: Pattern, value: str, *, ignore_case: bool = False) -> bool:
    """Whole-string wildcard match (``StringLike`` semantics)."""
    return _compile(as_tokens(pattern), ignore_case).fullmatch(value) is not None


def action_matches(pattern: str, action: str) -> bool:
    """Match an ``Action``/``NotAction`` entry against a request action, case-insensitively.

    ``*`` matches every action and ``service:*`` every action of that service; wildcards may
    also sit inside the action name (``s3:Get*``, ``kms:Re?ncrypt*``).
    """
    return pattern == "*" or like(pattern, action, ignore_case=True)


def _split_tokens(tokens: Sequence[Token], sep: str, maxsplit: int) -> list[list[Token]]:
    """Split a token sequence on ``sep`` like ``str.split(sep, maxsplit)``, keeping literalness."""
    groups: list[list[Token]] = [[]]
    for text, literal in tokens:
        pieces = text.split(sep)
        for index, piece in enumerate(pieces):
            if index > 0:
                if len(groups) <= maxsplit:
                    groups.append([])
                else:
                    groups[-1].append((sep, literal))
            if piece:
                groups[-1].append((piece, literal))
    return groups


def arn_like(pattern: Pattern, value: str) -> bool:
    """``ArnLike``/``ArnEquals``: compare the six ARN components separately.

    Both sides must be ARNs (six components); anything else never matches, as in AWS where
    an ARN operator against a non-ARN value evaluates to false.
    """
    tokens = as_tokens(pattern)
    pattern_parts = _split_tokens(tokens, ":", ARN_COMPONENTS - 1)
    value_parts = value.split(":", ARN_COMPONENTS - 1)
    if len(pattern_parts) != ARN_COMPONENTS or len(value_parts) != ARN_COMPONENTS:
        return False
    return all(
        _compile(tuple(part), False).fullmatch(text) is not None
        for part, text in zip(pattern_parts, value_parts, strict=True)
    )


def resource_matches(pattern: Pattern, resource: str) -> bool:
    """Match a ``Resource``/``NotResource`` entry against the request's resource ARN.

    ``*`` matches everything.  When both sides are full ARNs they are compared component-wise
    (case-sensitive); a shorter pattern such as ``arn:aws:s3:*`` is matched as one wildcard
    string so that it still covers the whole service, as IAM accepts it.
    """
    tokens = as_tokens(pattern)
    if tokens == (("*", False),):
        return True
    if len(_split_tokens(tokens, ":", ARN_COMPONENTS - 1)) == ARN_COMPONENTS and (
        len(resource.split(":", ARN_COMPONENTS - 1)) == ARN_COMPONENTS
    ):
        return arn_like(tokens, resource)
    return like(tokens, resource)
