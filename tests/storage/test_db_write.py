"""``Database.write``: busy writers of one process take turns instead of meeting SQLite's lock.

Read-then-write transactions from several threads on a real SQLite file: through ``write()``
none is refused and no update is lost; through ``begin()`` the same transactions collide (a
deferred transaction that read cannot take the write lock another one holds: "database is
locked" without waiting, since waiting could deadlock), which is the contrast that shows the
test can fail."""

from __future__ import annotations

import threading
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from mailcrate.storage.db import Database

THREADS, ROUNDS = 6, 25


def _counter(tmp_path: Path) -> Database:
    db = Database(f"sqlite:///{tmp_path / 'counter.db'}")
    with db.begin() as conn:
        conn.execute(text("CREATE TABLE counter (n INTEGER NOT NULL)"))
        conn.execute(text("INSERT INTO counter VALUES (0)"))
    return db


def _hammer(db: Database, transaction: str) -> list[BaseException]:
    errors: list[BaseException] = []
    barrier = threading.Barrier(THREADS)

    def work() -> None:
        barrier.wait()
        for _ in range(ROUNDS):
            try:
                with getattr(db, transaction)() as conn:
                    n = conn.execute(text("SELECT n FROM counter")).scalar_one()
                    conn.execute(text("UPDATE counter SET n = :n"), {"n": n + 1})
            except OperationalError as exc:
                errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return errors


def test_writers_of_one_process_take_turns(tmp_path: Path) -> None:
    db = _counter(tmp_path)
    try:
        assert _hammer(db, "write") == []
        with db.read() as conn:
            assert conn.execute(text("SELECT n FROM counter")).scalar_one() == THREADS * ROUNDS
    finally:
        db.dispose()


def test_without_turns_the_same_transactions_collide(tmp_path: Path) -> None:
    db = _counter(tmp_path)
    try:
        errors = _hammer(db, "begin")
        with db.read() as conn:
            total = conn.execute(text("SELECT n FROM counter")).scalar_one()
        assert errors or total < THREADS * ROUNDS  # refused, or updates lost
    finally:
        db.dispose()
