"""The data directory: where one mailcrate installation keeps its state.

Layout (all 0700/0600, readable only by the service's user):

    master.key      32-byte key that seals every secret at rest
    mailcrate.db    SQLite database (unless a shared database URL is configured)
    mailboxes/      the embedded mail store, one directory per mailbox
    s3/             the embedded S3 object store (encrypted objects only)
"""

from __future__ import annotations

import os
import shutil
import uuid
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from cryptography.exceptions import InvalidTag
from sqlalchemy import select
from sqlalchemy.exc import OperationalError

from mailcrate.storage.crypto import ACCESS_KEY_PURPOSE, SecretBox
from mailcrate.storage.db import Database
from mailcrate.storage.drivers import DatabaseUrlError, check_database_url, normalise_database_url
from mailcrate.storage.tables import access_keys, accounts


class DataDirError(Exception):
    """The data directory is missing, unreadable or was never initialised, or its database
    cannot be used."""


def _missing_key(path: Path) -> str:
    return (
        f"{path / 'master.key'} is missing, but the database already holds accounts whose secrets it "
        "sealed: restore master.key from your backup (a new key cannot open them)"
    )


def _holds_accounts(db: Database) -> bool:
    with db.begin() as conn:
        return conn.execute(select(accounts.c.account_id).limit(1)).first() is not None


def _first_line(exc: BaseException) -> str:
    """A driver's error without its SQL and bound values (which may carry secrets)."""
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


@dataclass
class DataDir:
    path: Path
    db: Database
    secrets: SecretBox

    @property
    def mailboxes(self) -> Path:
        return self.path / "mailboxes"

    @property
    def s3_root(self) -> Path:
        return self.path / "s3"

    @cached_property
    def node_id(self) -> str:
        """Which data directory this is, among the nodes sharing one database: a random id kept
        in ``node.id`` (made on first use). Nodes that share one directory (a shared
        filesystem) share the id, and so the embedded mailboxes in it. Read once per open."""
        marker = self.path / "node.id"
        if not marker.exists():
            # Written whole under another name, then linked: a reader never sees it half-made,
            # and of two processes making it at once the first link wins.
            draft = self.path / f".node.id.{uuid.uuid4().hex}"
            draft.write_text(uuid.uuid4().hex + "\n")
            try:
                os.link(draft, marker)
            except FileExistsError:
                pass
            finally:
                draft.unlink()
        return marker.read_text().strip()

    def mailbox_root(self, organization_id: str, user_id: str) -> Path:
        return self.mailboxes / organization_id / user_id

    @classmethod
    def open(cls, path: Path, *, create: bool = False, database_url: str | None = None) -> DataDir:
        """Open (or with ``create`` make) the directory and migrate its database.

        A directory this call creates (or found empty) is emptied again if the database cannot
        be used (driver missing, server unreachable), so a failed ``init`` leaves nothing
        half-made behind."""
        path = Path(path)
        if database_url is not None:
            database_url = normalise_database_url(database_url)
            try:
                check_database_url(database_url)
            except DatabaseUrlError as exc:
                raise DataDirError(str(exc)) from None
        # What a failure must undo: the directory if this call makes it, its contents if it was
        # empty (a directory made beforehand, e.g. by systemd's StateDirectory=).
        made = create and not path.exists()
        was_empty = create and not made and path.is_dir() and not any(path.iterdir())
        if create:
            path.mkdir(mode=0o700, parents=True, exist_ok=True)
            os.chmod(path, 0o700)
        elif not (path / "master.key").exists():
            if (path / "mailcrate.db").exists():
                raise DataDirError(_missing_key(path))
            raise DataDirError(
                f"{path} is not an initialised mailcrate data directory (run `mailcrate init`)"
            )
        try:
            for sub in ("mailboxes", "s3"):
                (path / sub).mkdir(mode=0o700, exist_ok=True)
            db = Database.for_data_dir(path, database_url)
            try:
                db.migrate()
                if not (path / "master.key").exists() and _holds_accounts(db):
                    raise DataDirError(_missing_key(path))
            except OperationalError as exc:
                db.dispose()
                raise DataDirError(f"cannot use the database: {_first_line(exc.orig or exc)}") from None
            except DataDirError:
                db.dispose()
                raise
            secrets = SecretBox.load_or_create(path / "master.key")
            try:
                _check_key(db, secrets, path / "master.key")
            except DataDirError:
                db.dispose()
                raise
        except BaseException:
            if made:
                shutil.rmtree(path, ignore_errors=True)
            elif was_empty:
                for child in path.iterdir():
                    if child.is_dir():
                        shutil.rmtree(child)
                    else:
                        child.unlink()
            raise
        if db.is_sqlite:
            os.chmod(path / "mailcrate.db", 0o600)
        return cls(path=path, db=db, secrets=secrets)

    def close(self) -> None:
        self.db.dispose()


def _check_key(db: Database, secrets: SecretBox, key_file: Path) -> None:
    """Open one sealed secret: a master.key from another data directory fails here, at start,
    instead of on every signed request."""
    with db.read() as conn:
        sealed = conn.execute(select(access_keys.c.secret_sealed).limit(1)).scalar()
    if sealed is None:
        return
    try:
        secrets.open(sealed, ACCESS_KEY_PURPOSE)
    except (InvalidTag, ValueError):
        raise DataDirError(
            f"{key_file} does not open this data directory's secrets (another installation's key?): "
            "restore the master.key that belongs to this database"
        ) from None
