"""Which failures of the storage underneath are the environment's, not a bug's: a full disk, or
a database that cannot be reached. The server answers those 503 (try again later) instead of a
500 with a traceback, and an export says what to fix instead of an internal error."""

from __future__ import annotations

import errno
import sqlite3
from enum import Enum

from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

__all__ = ["StorageFault", "storage_fault"]

_DISK_FULL_ERRNOS = {errno.ENOSPC, errno.EDQUOT}
# SQLite words a full disk or a failed write of its files this way (no errno reaches Python).
_SQLITE_DISK_FULL = ("database or disk is full", "disk i/o error")


class StorageFault(Enum):
    DISK_FULL = "no space left on device"
    DATABASE_UNAVAILABLE = "the database cannot be reached"


def _chain(exc: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in seen and len(seen) < 10:
        seen.append(current)
        current = current.__cause__ or current.__context__
    return seen


def _unreachable(error: DBAPIError) -> bool:
    """PostgreSQL's driver raises OperationalError for connections (refused, closed, reset);
    SQLite raises it for SQL mistakes too, so only its words for a busy or missing file count."""
    if not isinstance(error, OperationalError):
        return False
    if isinstance(error.orig, sqlite3.Error):
        text = str(error.orig).lower()
        return "database is locked" in text or "unable to open database" in text
    return True


def storage_fault(exc: BaseException) -> StorageFault | None:
    """The fault behind ``exc`` (or anything that caused it), or None for any other failure."""
    for error in _chain(exc):
        if isinstance(error, OSError) and error.errno in _DISK_FULL_ERRNOS:
            return StorageFault.DISK_FULL
        if isinstance(error, DBAPIError):
            text = str(error.orig).lower()
            if any(words in text for words in _SQLITE_DISK_FULL) or "no space left" in text:
                return StorageFault.DISK_FULL
            if error.connection_invalidated or _unreachable(error):
                return StorageFault.DATABASE_UNAVAILABLE
        if isinstance(error, PoolTimeout):
            return StorageFault.DATABASE_UNAVAILABLE
    return None
