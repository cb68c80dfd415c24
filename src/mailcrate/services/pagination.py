"""Opaque, tamper-evident NextToken values for keyset pagination.

A token names the last item a page ended with (its sort key), so pages stay correct while items
are added or removed. A checksum in the token lets a client that edits or truncates it get a clean
InvalidParameter error instead of odd results.
"""

from __future__ import annotations

import base64
import hashlib
import json
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Connection, Select, and_, or_


def encode_token(scope: str, key: list[Any]) -> str:
    payload = json.dumps([scope, key], separators=(",", ":"), default=str).encode()
    digest = hashlib.sha256(payload).digest()[:8]
    return base64.urlsafe_b64encode(digest + payload).decode("ascii")


def decode_token(scope: str, token: str) -> list[Any] | None:
    """The key a token carries, or None when it is not a token this scope issued."""
    try:
        raw = base64.urlsafe_b64decode(token.encode("ascii"))
        digest, payload = raw[:8], raw[8:]
        if hashlib.sha256(payload).digest()[:8] != digest:
            return None
        token_scope, key = json.loads(payload)
    except (ValueError, UnicodeError, TypeError):
        return None
    if token_scope != scope or not isinstance(key, list):
        return None
    return key


def decode_cursor(scope: str, token: str, max_bytes: int) -> str | None:
    """The one name (an object key, a key id, an alias) a single-item token of this scope
    carries, or None when no page could have ended there. The checksum only catches edits
    (anyone can build a token with a valid one), so the name is checked as a query would need
    it: a string without NUL or lone surrogates (they fail in the database driver, not as a
    client error), at most ``max_bytes`` of UTF-8."""
    key = decode_token(scope, token)
    if key is None or len(key) != 1 or not isinstance(key[0], str) or "\x00" in key[0]:
        return None
    try:
        return key[0] if len(key[0].encode("utf-8")) <= max_bytes else None
    except UnicodeEncodeError:
        return None


class InvalidToken(ValueError):
    """A NextToken this scope did not issue; services turn it into their InvalidParameter error."""


def keyset_page(
    conn: Connection,
    query: Select[Any],
    *,
    created: ColumnElement[Any],
    ident: ColumnElement[Any],
    scope: str,
    next_token: str | None,
    max_results: int,
    newest_first: bool = False,
) -> tuple[list[Any], str | None]:
    """One page of ``query`` ordered by (created, ident) and the next page's token.

    An index on (scope columns, created, ident) serves both directions without a sort.
    """
    if next_token is not None:
        # The checksum only catches accidental edits: anyone can build a token with a valid one,
        # so the key's types are checked before they reach a query.
        key = decode_token(scope, next_token)
        if key is None or len(key) != 2 or not isinstance(key[0], str) or not isinstance(key[1], str):
            raise InvalidToken(next_token)
        try:
            after_time, after_id = datetime.fromisoformat(key[0]), key[1]
        except ValueError:
            raise InvalidToken(next_token) from None
        if newest_first:
            query = query.where(or_(created < after_time, and_(created == after_time, ident < after_id)))
        else:
            query = query.where(or_(created > after_time, and_(created == after_time, ident > after_id)))
    order = (created.desc(), ident.desc()) if newest_first else (created, ident)
    rows = conn.execute(query.order_by(*order).limit(max_results + 1)).all()
    token = None
    if len(rows) > max_results:
        last = rows[max_results - 1]
        token = encode_token(scope, [getattr(last, created.key).isoformat(), getattr(last, ident.key)])
    return rows[:max_results], token
