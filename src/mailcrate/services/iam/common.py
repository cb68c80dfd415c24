"""Pieces roles and users share: ids, paging, tags and inline policies."""

from __future__ import annotations

import json
import secrets
import string
from typing import Any

from sqlalchemy import Connection, Table, delete, func, insert, select, update

from mailcrate.services.iam import documents
from mailcrate.services.iam.errors import InvalidInput, LimitExceeded, NoSuchEntity
from mailcrate.services.pagination import decode_token, encode_token
from mailcrate.storage.db import utcnow

DEFAULT_MAX_ITEMS = 100
_ID_ALPHABET = string.ascii_uppercase + string.digits


def new_id(prefix: str) -> str:
    """IAM unique ids: a type prefix (AROA role, AIDA user) and 17 upper-case characters."""
    return prefix + "".join(secrets.choice(_ID_ALPHABET) for _ in range(17))


def marker_key(scope: str, marker: str | None) -> str | None:
    """The sort key a Marker continues after (None for the first page)."""
    if marker is None:
        return None
    key = decode_token(scope, marker)
    if key is None or len(key) != 1 or not isinstance(key[0], str):
        raise InvalidInput("Invalid Marker.")
    return key[0]


def page_result(rows: list[Any], max_items: int, scope: str, key: str) -> tuple[list[Any], str | None]:
    """Trim a page fetched with one extra row; the Marker when more follow."""
    if len(rows) <= max_items:
        return rows, None
    rows = rows[:max_items]
    return rows, encode_token(scope, [getattr(rows[-1], key)])


def tags_json(tags: list[dict[str, str]] | None) -> str | None:
    if not tags:
        return None
    keys = [tag["Key"].lower() for tag in tags]  # "Cost" and "cost" are one key to IAM
    if len(set(keys)) != len(keys):
        raise InvalidInput("Duplicate tag keys found. Please note that Tag keys are case insensitive.")
    return json.dumps([{"Key": t["Key"], "Value": t.get("Value", "")} for t in tags])


def tags_list(stored: str | None) -> list[dict[str, str]] | None:
    return json.loads(stored) if stored else None


class InlinePolicies:
    """Inline policies of one kind of entity (a role's or a user's), in their own table."""

    def __init__(self, table: Table, owner_column: str, entity: str, quota: int) -> None:
        self.table = table
        self.owner = table.c[owner_column]
        self.entity = entity  # "role" or "user", as IAM's messages say it
        self.quota = quota

    def _where(self, owner_id: str, name: str | None = None) -> list[Any]:
        clauses = [self.owner == owner_id]
        if name is not None:
            clauses.append(self.table.c.policy_name == name)
        return clauses

    def put(self, conn: Connection, owner_id: str, owner_name: str, name: str, text: str) -> None:
        documents.identity_policy(text)
        others = conn.execute(
            select(self.table.c.document).where(self.owner == owner_id, self.table.c.policy_name != name)
        ).scalars()
        total = documents.size(text) + sum(documents.size(doc) for doc in others)
        if total > self.quota:
            raise LimitExceeded(
                f"Maximum policy size of {self.quota} bytes exceeded for {self.entity} {owner_name}"
            )
        now = utcnow()
        changed = conn.execute(
            update(self.table).where(*self._where(owner_id, name)).values(document=text, updated_at=now)
        ).rowcount
        if not changed:
            conn.execute(
                insert(self.table).values(
                    {self.owner.name: owner_id, "policy_name": name, "document": text, "updated_at": now}
                )
            )

    def get(self, conn: Connection, owner_id: str, name: str) -> str:
        text = conn.execute(select(self.table.c.document).where(*self._where(owner_id, name))).scalar()
        if text is None:
            raise NoSuchEntity(f"The {self.entity} policy with name {name} cannot be found.")
        return text

    def delete(self, conn: Connection, owner_id: str, name: str) -> None:
        if not conn.execute(delete(self.table).where(*self._where(owner_id, name))).rowcount:
            raise NoSuchEntity(f"The {self.entity} policy with name {name} cannot be found.")

    def names(
        self, conn: Connection, owner_id: str, max_items: int | None, marker: str | None
    ) -> tuple[list[str], str | None]:
        scope = f"iam-{self.entity}-policies:{owner_id}"
        after = marker_key(scope, marker)
        limit = max_items or DEFAULT_MAX_ITEMS
        query = select(self.table.c.policy_name).where(self.owner == owner_id)
        if after is not None:
            query = query.where(self.table.c.policy_name > after)
        rows = conn.execute(query.order_by(self.table.c.policy_name).limit(limit + 1)).all()
        rows, token = page_result(rows, limit, scope, "policy_name")
        return [row.policy_name for row in rows], token

    def documents(self, conn: Connection, owner_id: str) -> list[str]:
        return list(conn.execute(select(self.table.c.document).where(self.owner == owner_id)).scalars())

    def count(self, conn: Connection, owner_id: str) -> int:
        return conn.execute(
            select(func.count()).select_from(self.table).where(self.owner == owner_id)
        ).scalar_one()
