"""The SQL engine: one place that opens the database and brings its schema up to date.

SQLite (in the data directory) serves one machine; a ``postgresql+psycopg://`` URL lets many
``serve`` processes share one database. Migrations run in-process with Alembic on start-up so
an upgraded mailcrate opens an older data directory without a manual step.
"""

from __future__ import annotations

import ast
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any

from sqlalchemy import ColumnElement, Connection, Engine, create_engine, event, func, text
from sqlalchemy.exc import DBAPIError

_MIGRATIONS = Path(__file__).with_name("migrations")
_REVISION_LINE = re.compile(r"^(revision|down_revision)\s*=\s*(.+)$", re.MULTILINE)


def utcnow() -> datetime:
    return datetime.now(UTC)


def as_utc(value: datetime | None) -> datetime | None:
    """SQLite hands timestamps back without a zone; they were stored as UTC, so say so."""
    if value is None:
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


@cache
def script_heads() -> frozenset[str]:
    """The head revisions of the migration scripts, read from their ``revision`` and
    ``down_revision`` lines (what Alembic's script directory computes, without importing it)."""
    revisions: set[str] = set()
    parents: set[str] = set()
    for script in (_MIGRATIONS / "versions").glob("*.py"):
        for name, value in _REVISION_LINE.findall(script.read_text(encoding="utf-8")):
            literal = ast.literal_eval(value.strip())
            if name == "revision":
                revisions.add(literal)
            elif isinstance(literal, str):
                parents.add(literal)
            elif literal is not None:  # a merge revision has a tuple of parents
                parents.update(literal)
    return frozenset(revisions - parents)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # WAL lets API readers proceed while export workers write progress.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


class Database:
    """Owns the engine; hands out transactions. One instance per process and data directory."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        # A failed statement's exception text (logged with the traceback of a 500) would carry
        # its bound values otherwise: sealed key material, password hashes, session tokens.
        kwargs: dict[str, Any] = {"future": True, "hide_parameters": True}
        if self.is_sqlite:
            kwargs["connect_args"] = {"check_same_thread": False, "timeout": 30}
            kwargs["pool_size"] = 20
            kwargs["max_overflow"] = 20
        else:
            kwargs["pool_size"] = 10
            kwargs["max_overflow"] = 20
            kwargs["pool_pre_ping"] = True
        self.engine: Engine = create_engine(url, **kwargs)
        self._writer = threading.Lock()  # see write()
        if self.is_sqlite:
            event.listen(self.engine, "connect", _sqlite_pragmas)

    def clock(self, plus: timedelta = timedelta(0)) -> ColumnElement[Any]:
        """The database's own time (plus ``plus``) as an SQL expression: leases and heartbeats
        are written and compared on it, so workers on machines whose clocks disagree still agree
        on whose lease has expired (a worker whose clock ran ahead reclaimed live jobs)."""
        seconds = plus.total_seconds()
        if self.is_sqlite:
            # The text form SQLAlchemy stores DateTime in ("YYYY-MM-DD HH:MM:SS.ffffff", UTC),
            # so stored values and this compare as they should.
            return func.strftime("%Y-%m-%d %H:%M:%f", "now", f"{seconds:+.3f} seconds").concat("000")
        return func.now() + func.make_interval(0, 0, 0, 0, 0, 0, seconds)

    @classmethod
    def for_data_dir(cls, data_dir: Path, url: str | None = None) -> Database:
        return cls(url or f"sqlite:///{data_dir / 'mailcrate.db'}")

    def migrate(self) -> None:
        """Bring the schema to the newest revision of every branch (idempotent).

        Services add their tables as independent migration branches off the base revision, so
        the target is ``heads``, not ``head``.
        """
        if self.current_revisions() == script_heads():
            return  # what Alembic would do, minus ~14 MiB of Alembic/Mako held by `serve` for good
        # Imported here: export worker processes never migrate, and Alembic costs them ~11 MiB.
        from alembic import command
        from alembic.config import Config

        cfg = Config()
        cfg.set_main_option("script_location", str(_MIGRATIONS))
        with self.engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "heads")

    def current_revisions(self) -> frozenset[str]:
        """The revisions recorded in ``alembic_version`` (empty before the first migration)."""
        try:
            with self.engine.connect() as conn:
                return frozenset(conn.execute(text("SELECT version_num FROM alembic_version")).scalars())
        except DBAPIError:  # no such table yet
            return frozenset()

    @contextmanager
    def begin(self) -> Iterator[Connection]:
        """One transaction: each state change the service makes is one of these."""
        with self.engine.begin() as conn:
            yield conn

    @contextmanager
    def write(self) -> Iterator[Connection]:
        """A transaction that writes from its first statement, for the busy write paths (Start,
        the audit trail's batches). On SQLite these take turns on a lock of this process first:
        SQLite's own wait for its write lock (the busy handler) sleeps 1, 2, 5 ... up to 100 ms
        between tries, so a writer queued behind another went on sleeping long after the lock was
        free. With 5 clients starting jobs among 50, Start's p99 went from 0.5-1.2 s to 0.2-0.4 s
        on a loaded machine (BENCHMARKS.md, Start under load). Writers in other processes still
        meet the busy handler; on PostgreSQL this is :meth:`begin`."""
        if not self.is_sqlite:
            with self.begin() as conn:
                yield conn
            return
        with self._writer, self.engine.begin() as conn:
            yield conn

    def writing(self) -> bool:
        """Whether a transaction of :meth:`write` is under way in this process (SQLite): the
        API's event loop then keeps its turns short (:mod:`mailcrate.server.turns`)."""
        return self._writer.locked()

    @contextmanager
    def read(self) -> Iterator[Connection]:
        with self.engine.connect() as conn:
            yield conn

    def dispose(self) -> None:
        self.engine.dispose()
