"""IAM users and their access keys: state and rules, independent of the wire.

A user's name is unique in its account regardless of case; its ARN is
``arn:aws:iam::ACCOUNT:user<path><name>``. Its access keys live in the shared ``access_keys``
table (principal kind ``"user"``, principal id the user id), so SigV4 accepts them at once for
every service; a user has at most two.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from mailcrate.accounts import new_access_key_id, new_secret_access_key, store_access_key
from mailcrate.datadir import DataDir
from mailcrate.services.iam import common, documents, managed
from mailcrate.services.iam.errors import DeleteConflict, EntityAlreadyExists, LimitExceeded, NoSuchEntity
from mailcrate.storage.db import as_utc, utcnow
from mailcrate.storage.tables import access_keys
from mailcrate.storage.tables_iam import iam_user_policies, iam_users

ACCESS_KEYS_PER_USER = 2
POLICIES = common.InlinePolicies(iam_user_policies, "user_id", "user", documents.USER_POLICIES_QUOTA)


def user_arn(account_id: str, path: str, name: str) -> str:
    return f"arn:aws:iam::{account_id}:user{path}{name}"


@dataclass(frozen=True)
class User:
    user_id: str
    account_id: str
    name: str
    path: str
    tags: str | None
    created_at: datetime
    permissions_boundary: str | None = None  # a managed policy's id

    @property
    def arn(self) -> str:
        return user_arn(self.account_id, self.path, self.name)

    @classmethod
    def from_row(cls, row: Any) -> User:
        return cls(
            user_id=row.user_id,
            account_id=row.account_id,
            name=row.name,
            path=row.path,
            tags=row.tags,
            created_at=as_utc(row.created_at),  # type: ignore[arg-type]
            permissions_boundary=row.permissions_boundary,
        )

    def describe(self) -> dict[str, Any]:
        """The ``User`` shape of IAM's API."""
        return {
            "Path": self.path,
            "UserName": self.name,
            "UserId": self.user_id,
            "Arn": self.arn,
            "CreateDate": self.created_at,
            "Tags": common.tags_list(self.tags),
        }


def create(conn: Connection, account_id: str, params: dict[str, Any]) -> User:
    name = params["UserName"]
    values = {
        "user_id": common.new_id("AIDA"),
        "account_id": account_id,
        "name": name,
        "name_key": name.lower(),
        "path": params.get("Path", "/"),
        "tags": common.tags_json(params.get("Tags")),
        "created_at": utcnow(),
        "permissions_boundary": managed.boundary_id(conn, account_id, params.get("PermissionsBoundary")),
    }
    if _row(conn, account_id, name) is not None:
        raise EntityAlreadyExists(f"User with name {name} already exists.")
    try:  # the unique index settles a race between two creators
        conn.execute(insert(iam_users).values(values))
    except IntegrityError:
        raise EntityAlreadyExists(f"User with name {name} already exists.") from None
    return User(**{k: v for k, v in values.items() if k != "name_key"})


def _row(conn: Connection, account_id: str, name: str) -> Any:
    return conn.execute(
        select(iam_users).where(iam_users.c.account_id == account_id, iam_users.c.name_key == name.lower())
    ).first()


def find(conn: Connection, account_id: str, name: str) -> User:
    row = _row(conn, account_id, name)
    if row is None:
        raise NoSuchEntity(f"The user with name {name} cannot be found.")
    return User.from_row(row)


def find_by_id(conn: Connection, user_id: str) -> User | None:
    row = conn.execute(select(iam_users).where(iam_users.c.user_id == user_id)).first()
    return User.from_row(row) if row is not None else None


def path_of(conn: Connection, account_id: str, name: str) -> str | None:
    return conn.execute(
        select(iam_users.c.path).where(
            iam_users.c.account_id == account_id, iam_users.c.name_key == name.lower()
        )
    ).scalar()


def page(
    conn: Connection, account_id: str, path_prefix: str | None, max_items: int | None, marker: str | None
) -> tuple[list[User], str | None]:
    scope = f"iam-users:{account_id}:{path_prefix or '/'}"
    after = common.marker_key(scope, marker)
    limit = max_items or common.DEFAULT_MAX_ITEMS
    query = select(iam_users).where(iam_users.c.account_id == account_id)
    if path_prefix:
        query = query.where(iam_users.c.path.startswith(path_prefix, autoescape=True))
    if after is not None:
        query = query.where(iam_users.c.name_key > after)
    rows = conn.execute(query.order_by(iam_users.c.name_key).limit(limit + 1)).all()
    rows, token = common.page_result(rows, limit, scope, "name_key")
    return [User.from_row(row) for row in rows], token


def _keys_query(user: User) -> Any:
    return select(access_keys).where(
        access_keys.c.principal_kind == "user", access_keys.c.principal_id == user.user_id
    )


def remove(conn: Connection, user: User) -> None:
    if POLICIES.count(conn, user.user_id):
        raise DeleteConflict("Cannot delete entity, must delete policies first.")
    if managed.has_attachments(conn, "user", user.user_id):
        raise DeleteConflict("Cannot delete entity, must detach all policies first.")
    if conn.execute(_keys_query(user)).first() is not None:
        raise DeleteConflict("Cannot delete entity, must delete access keys first.")
    conn.execute(delete(iam_users).where(iam_users.c.user_id == user.user_id))


def create_access_key(conn: Connection, data_dir: DataDir, user: User) -> dict[str, Any]:
    count = conn.execute(select(func.count()).select_from(_keys_query(user).subquery())).scalar_one()
    if count >= ACCESS_KEYS_PER_USER:
        raise LimitExceeded(f"Cannot exceed quota for AccessKeysPerUser: {ACCESS_KEYS_PER_USER}")
    key_id, secret = new_access_key_id("AKIA"), new_secret_access_key()
    created = store_access_key(
        conn,
        data_dir,
        account_id=user.account_id,
        access_key_id=key_id,
        secret_access_key=secret,
        principal_kind="user",
        principal_arn=user.arn,
        principal_id=user.user_id,
    )
    return {
        "UserName": user.name,
        "AccessKeyId": key_id,
        "Status": "Active",
        "SecretAccessKey": secret,
        "CreateDate": created,
    }


def list_access_keys(conn: Connection, user: User) -> list[dict[str, Any]]:
    rows = conn.execute(_keys_query(user).order_by(access_keys.c.created_at)).all()
    return [
        {
            "UserName": user.name,
            "AccessKeyId": row.access_key_id,
            "Status": row.status,
            "CreateDate": as_utc(row.created_at),
        }
        for row in rows
    ]


def delete_access_key(conn: Connection, user: User, access_key_id: str) -> None:
    deleted = conn.execute(
        delete(access_keys).where(
            access_keys.c.access_key_id == access_key_id,
            access_keys.c.principal_kind == "user",
            access_keys.c.principal_id == user.user_id,
        )
    ).rowcount
    if not deleted:
        raise NoSuchEntity(f"The Access Key with id {access_key_id} cannot be found.")


def set_boundary(conn: Connection, user: User, policy_id: str | None) -> None:
    """Put (a policy id) or delete (None) the user's permissions boundary."""
    conn.execute(
        update(iam_users).where(iam_users.c.user_id == user.user_id).values(permissions_boundary=policy_id)
    )
