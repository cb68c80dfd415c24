"""The migration's state file: one SQLite database (SQLAlchemy Core) holding each user's phase,
export job and figures, and the identities of what the last round restored (for ``--delta``).

Every change is one transaction, so a ``kill -9`` leaves the file as it was after the last
completed step; a rerun reads it and goes on (users done in this round are not exported
again; a half-restored user is restored again, which content identity makes safe). The file is
private (0600): it names users and jobs, never a password.

The schema is created when missing and carries a version in ``meta``; a file written by a
newer mailcrate is refused rather than misread.
"""

from __future__ import annotations

import json
import os
import uuid
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import (
    Column,
    Engine,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    create_engine,
    delete,
    event,
    insert,
    select,
    update,
)

from mailcrate.admin.errors import AdminError

__all__ = ["PHASES", "Figures", "MigrationState", "UserRecord"]

SCHEMA_VERSION = "1"

#: A user's phases in a round. ``waiting``: a delta that WorkMail's one-export-per-24-hours rule
#: does not allow yet; ``skipped``: not migrated (disabled, unregistered: the reason says).
PHASES = ("pending", "exporting", "downloading", "restoring", "done", "failed", "waiting", "skipped")

_meta = MetaData()
meta = Table("meta", _meta, Column("key", String, primary_key=True), Column("value", Text, nullable=False))
users = Table(
    "users",
    _meta,
    Column("entity_id", String, primary_key=True),
    Column("name", String, nullable=False),
    Column("email", String, nullable=False, default=""),
    Column("login", String, nullable=False, default=""),
    Column("phase", String, nullable=False),
    Column("round", Integer, nullable=False, default=0),
    Column("job_id", String),
    Column("job_start", String),  # ISO 8601 of the job's StartTime
    Column("base_start", String),  # the StartTime of the job the last completed round restored
    Column("reason", Text, nullable=False, default=""),
    Column("figures", Text, nullable=False, default="{}"),
    Column("updated", String, nullable=False),
)
#: What the last completed round's export held, per user: (kind, folder, sha256) -> count. A
#: delta restores only items beyond these counts (mail moved or deleted in the target after the
#: switch is not brought back).
identities = Table(
    "identities",
    _meta,
    Column("entity_id", String, primary_key=True),
    Column("kind", String, primary_key=True),
    Column("folder", Text, primary_key=True),
    Column("sha256", String, primary_key=True),
    Column("n", Integer, nullable=False),
)

Identity = tuple[str, tuple[str, ...], str]


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


@dataclass
class Figures:
    """One user's figures in a round: items and bytes per outcome, refusals with reasons."""

    exported_items: int = 0
    exported_bytes: int = 0
    verified_items: int = 0
    verified_bytes: int = 0
    restored_items: int = 0
    restored_bytes: int = 0
    already_items: int = 0
    already_bytes: int = 0
    unchanged_items: int = 0  # a delta: in the previous round's export already, not sent again
    unchanged_bytes: int = 0
    refused: list[dict[str, str]] = field(default_factory=list)
    not_restored: dict[str, int] = field(default_factory=dict)
    folders: list[dict[str, Any]] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)  # per phase: export, download, restore

    @property
    def complete(self) -> bool:
        return not self.refused and not self.not_restored

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Figures:
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**known)


@dataclass
class UserRecord:
    entity_id: str
    name: str
    email: str
    login: str
    phase: str
    round: int
    job_id: str | None
    job_start: str | None
    base_start: str | None
    reason: str
    figures: Figures
    updated: str

    @property
    def arrived(self) -> bool:
        """Everything of this user is in the target (or the user is rightly not migrated)."""
        return self.phase == "skipped" or (self.phase == "done" and self.figures.complete)


class MigrationState:
    """The state file of one migration (one organization)."""

    def __init__(self, path: Path, organization_id: str | None = None, *, create: bool = True) -> None:
        self.path = Path(path)
        if not self.path.exists():
            if not create:
                raise AdminError(f"no migration state at {self.path}", "run `mailcrate migrate run` first")
            self.path.parent.mkdir(parents=True, exist_ok=True)
            os.close(os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        self.engine: Engine = create_engine(f"sqlite:///{self.path}")
        event.listen(self.engine, "connect", _pragmas)
        _meta.create_all(self.engine)
        with self.engine.begin() as conn:
            stored = dict(conn.execute(select(meta.c.key, meta.c.value)).tuples().all())
            if not stored:
                values = {"schema": SCHEMA_VERSION, "created": _now(), "migration_id": uuid.uuid4().hex}
                if organization_id:
                    values["organization_id"] = organization_id
                conn.execute(insert(meta), [{"key": k, "value": v} for k, v in values.items()])
                stored = values
        if stored.get("schema") != SCHEMA_VERSION:
            raise AdminError(
                f"{self.path} was written by another mailcrate (state schema {stored.get('schema')})",
                "use the mailcrate version that started this migration",
            )
        self.organization_id = stored.get("organization_id")
        self.migration_id = stored["migration_id"]
        if organization_id and self.organization_id and organization_id != self.organization_id:
            raise AdminError(
                f"{self.path} is the migration of organization {self.organization_id}, not {organization_id}",
                "give each organization its own --state file",
            )

    def close(self) -> None:
        self.engine.dispose()

    # ---------------------------------------------------------------------------- users

    def users(self) -> list[UserRecord]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(users).order_by(users.c.email, users.c.name)).all()
        return [_record(row) for row in rows]

    def user(self, entity_id: str) -> UserRecord | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(users).where(users.c.entity_id == entity_id)).first()
        return _record(row) if row is not None else None

    def upsert(self, entity_id: str, **values: Any) -> None:
        """Create or change one user's row (one transaction)."""
        if "figures" in values and isinstance(values["figures"], Figures):
            values["figures"] = json.dumps(values["figures"].to_dict(), ensure_ascii=False)
        values["updated"] = _now()
        with self.engine.begin() as conn:
            done = conn.execute(update(users).where(users.c.entity_id == entity_id).values(**values))
            if done.rowcount == 0:
                defaults = {"name": "", "email": "", "login": "", "phase": "pending", "round": 0}
                conn.execute(insert(users).values(entity_id=entity_id, **{**defaults, **values}))

    def finish(self, entity_id: str, figures: Figures, seen: Iterable[Identity]) -> None:
        """The user's round is done: figures, and what its export held (for the next delta),
        in one transaction."""
        counts: Counter[Identity] = Counter(seen)
        with self.engine.begin() as conn:
            conn.execute(delete(identities).where(identities.c.entity_id == entity_id))
            if counts:
                conn.execute(
                    insert(identities),
                    [
                        {
                            "entity_id": entity_id,
                            "kind": k,
                            "folder": json.dumps(list(f)),
                            "sha256": s,
                            "n": n,
                        }
                        for (k, f, s), n in counts.items()
                    ],
                )
            conn.execute(
                update(users)
                .where(users.c.entity_id == entity_id)
                .values(
                    phase="done",
                    base_start=users.c.job_start,
                    reason="",
                    figures=json.dumps(figures.to_dict(), ensure_ascii=False),
                    updated=_now(),
                )
            )

    def identities(self, entity_id: str) -> Counter[Identity]:
        """What the user's last completed round exported (empty before the first)."""
        out: Counter[Identity] = Counter()
        with self.engine.connect() as conn:
            for row in conn.execute(select(identities).where(identities.c.entity_id == entity_id)):
                out[(row.kind, tuple(json.loads(row.folder)), row.sha256)] = row.n
        return out


def _record(row: Any) -> UserRecord:
    return UserRecord(
        entity_id=row.entity_id,
        name=row.name,
        email=row.email,
        login=row.login,
        phase=row.phase,
        round=row.round,
        job_id=row.job_id,
        job_start=row.job_start,
        base_start=row.base_start,
        reason=row.reason,
        figures=Figures.from_dict(json.loads(row.figures or "{}")),
        updated=row.updated,
    )


def _pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")  # `migrate status` reads while a run writes
    # a commit survives a kill -9 without an fsync of its own in WAL mode (only a power loss
    # may take the last ones back: the rerun then redoes that user's step, which is safe);
    # the fsyncs took 5 % of the run's samples on a busy disk
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()
