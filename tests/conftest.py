"""Shared fixtures: real servers on free loopback ports. ``mailcrate serve`` (one per module, or\none per test), and for the session one PostgreSQL cluster, one Dovecot and one Radicale: a\nmodule that needs mailboxes of its own adds users to the shared Dovecot (``add_users``)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.servers import DovecotServer, DovecotUnavailable, RadicaleServer, start_dovecot, start_radicale
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


def _dovecot(tmp: Path, **kwargs: object) -> DovecotServer:
    try:
        return start_dovecot(tmp, **kwargs)  # type: ignore[arg-type]
    except DovecotUnavailable as e:
        pytest.fail(f"{e} (scripts/install-test-deps.sh installs it)")


@pytest.fixture(scope="session")
def dovecot(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DovecotServer]:
    """A Dovecot shared by the session (users alice/alicepw, bob/bobpw; master admin/adminpw),
    with TLS: plain+STARTTLS on ``port``, implicit TLS on ``imaps_port``, CA in ``ca_file``."""
    server = _dovecot(tmp_path_factory.mktemp("dovecot"), tls=True)
    yield server
    server.stop()


@pytest.fixture
def fresh_dovecot(tmp_path: Path) -> Iterator[DovecotServer]:
    """A Dovecot of one's own, for tests that kill its processes."""
    server = _dovecot(tmp_path)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def radicale(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RadicaleServer]:
    """A Radicale shared by the session (users alice/alicepw, bob/bobpw)."""
    server = start_radicale(tmp_path_factory.mktemp("radicale"))
    yield server
    server.stop()
