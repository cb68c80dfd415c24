"""Shared fixtures: a real ``mailcrate serve`` on a free loopback port with a fresh data directory."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.mailcrate_server import MailcrateServer
from tests.support.postgres import PostgresServer, start_postgres


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[MailcrateServer]:
    """One server per test module (start-up is ~1 s); tests make their own organizations.

    A module that needs ``serve`` options names them in a module-level ``SERVE_ARGS`` tuple
    (e.g. ``("--export-workers", "0")`` for the API only), so this one fixture serves it too
    instead of a copy of it with other arguments."""
    extra_args = getattr(request.module, "SERVE_ARGS", ())
    with MailcrateServer.running(tmp_path_factory.mktemp("mailcrate") / "data", *extra_args) as srv:
        yield srv


@pytest.fixture
def fresh_server(tmp_path: Path) -> Iterator[MailcrateServer]:
    """A server of the test's own, for tests that restart or kill it."""
    with MailcrateServer.running(tmp_path / "data") as srv:
        yield srv


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """One PostgreSQL cluster for the whole session; tests take databases of their own from it
    (:meth:`PostgresServer.migrated_database` for a ready schema)."""
    server = start_postgres()
    yield server
    server.stop()
