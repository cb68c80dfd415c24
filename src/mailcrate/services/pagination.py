"""Opaque, tamper-evident NextToken values for keyset pagination.

A token names the last item a page ended with (its sort key), so pages stay correct while items
are added or removed. A checksum in the token lets a client that edits or truncates it get a clean
InvalidParameter error instead of odd results.
"""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any


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
