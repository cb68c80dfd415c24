"""Many rows in one ``INSERT ... VALUES (...), (...)`` statement: for append-only tables written
in batches from a background thread (the audit trail).

SQLAlchemy's ``conn.execute(insert(table), rows)`` is an ``executemany``, and the SQLite driver
runs one ``sqlite3_step`` per row, letting go of the GIL around each. Under load that made the
audit trail's writer trade the GIL with the API threads twice per event (an event row and a
resource row): in a KMS Encrypt load with audit on, the API threads' CPU per request rose
by ~50 us, a third of it in the kernel's context switches, beside the writer's own ~70 us
(BENCHMARKS.md, ninth session). One statement per chunk of rows steps once per chunk, and skips
SQLAlchemy's per-row parameter processing: the rows are tuples, converted only where the
dialect's type needs it (SQLite's DATETIME text, booleans).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import lru_cache
from typing import Any

from sqlalchemy import Connection, Table, insert
from sqlalchemy.engine import Dialect

#: Placeholders per statement: SQLite before 3.32 allowed 999 (later 32,766, PostgreSQL 65,535).
MAX_PARAMETERS = 999
#: The placeholder of each positional paramstyle this path supports; another dialect's driver
#: (a named or numeric paramstyle) gets SQLAlchemy's executemany instead.
_MARKS = {"qmark": "?", "format": "%s", "pyformat": "%s"}


class MultiRowInsert:
    """Inserts rows (tuples in ``columns``' order) into ``table`` a chunk per statement."""

    def __init__(self, table: Table, columns: Sequence[str]) -> None:
        missing = [name for name in columns if name not in table.c]
        if missing:
            raise ValueError(f"{table.name} has no column {', '.join(missing)}")
        self.table = table
        self.columns = tuple(columns)
        self.chunk = max(1, MAX_PARAMETERS // len(self.columns))
        self._processors: dict[str, list[tuple[int, Callable[[Any], Any]]]] = {}

    def __call__(self, conn: Connection, rows: Sequence[tuple[Any, ...]]) -> None:
        """Insert ``rows`` in the caller's transaction."""
        if not rows:
            return
        dialect = conn.dialect
        mark = _MARKS.get(dialect.paramstyle)
        if mark is None:
            conn.execute(insert(self.table), [dict(zip(self.columns, row, strict=True)) for row in rows])
            return
        processors = self._processors_for(dialect)
        # The driver's own cursor on the transaction's connection: SQLAlchemy's exec_driver_sql
        # would add its execution context (~30 us a statement) to a statement it need not parse.
        cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        try:
            for start in range(0, len(rows), self.chunk):
                chunk = rows[start : start + self.chunk]
                if processors:
                    chunk = _converted(chunk, processors)
                params = [value for row in chunk for value in row]
                cursor.execute(_statement(self.table.name, self.columns, len(chunk), mark), params)
        finally:
            cursor.close()

    def _processors_for(self, dialect: Dialect) -> list[tuple[int, Callable[[Any], Any]]]:
        """The columns whose values the dialect converts before the driver sees them, and how
        (what SQLAlchemy's own INSERT would do: e.g. SQLite stores a DATETIME as its own text)."""
        found = self._processors.get(dialect.name)
        if found is None:
            found = []
            for index, name in enumerate(self.columns):
                column_type = self.table.c[name].type
                process = column_type.dialect_impl(dialect).bind_processor(dialect)
                if process is not None:
                    found.append((index, process))
            self._processors[dialect.name] = found
        return found


def _converted(
    rows: Sequence[tuple[Any, ...]], processors: list[tuple[int, Callable[[Any], Any]]]
) -> list[list[Any]]:
    """Copies of ``rows`` with the dialect's conversions applied (the caller's rows stay as they
    are). A value that is the same object as the one above it in its column is converted once:
    an event's rows of its resources share its time, and SQLite's conversion of a DATETIME to
    its text costs ~1.5 us."""
    out = []
    last: dict[int, tuple[Any, Any]] = {}
    for row in rows:
        values = list(row)
        for index, process in processors:
            value = values[index]
            if value is None:
                continue
            seen = last.get(index)
            if seen is not None and seen[0] is value:
                values[index] = seen[1]
            else:
                values[index] = converted = process(value)
                last[index] = (value, converted)
        out.append(values)
    return out


@lru_cache(maxsize=256)
def _statement(table: str, columns: tuple[str, ...], rows: int, mark: str) -> str:
    one = "(" + ", ".join([mark] * len(columns)) + ")"
    return f"INSERT INTO {table} ({', '.join(columns)}) VALUES " + ", ".join([one] * rows)
