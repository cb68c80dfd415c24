"""Fixtures starting real servers (see tests/servers) for the mail tests and anyone else."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

try:
    from servers import DovecotServer, DovecotUnavailable, RadicaleServer, start_dovecot, start_radicale
except ImportError:  # tests/ is a package in this checkout
    from tests.servers import (  # type: ignore[no-redef]
        DovecotServer,
        DovecotUnavailable,
        RadicaleServer,
        start_dovecot,
        start_radicale,
    )


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
