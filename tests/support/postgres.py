"""A throw-away PostgreSQL cluster on a free loopback port, for the scale-out tests.

One cluster serves the whole test session (the ``postgres`` fixture of tests/conftest.py); each
test takes databases of its own from it, migrated ones cloned from a template.

Debian's ``postgresql`` package provides the binaries (installed by scripts/install-test-deps.sh);
the cluster lives in a temp dir owned by the ``postgres`` user (the server refuses to run as root)
with fsync off, since it is discarded after the run.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _pg_bin() -> Path:
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(Path(p).parent.name))
    if not candidates:
        raise RuntimeError("PostgreSQL is not installed: run scripts/install-test-deps.sh")
    return Path(candidates[-1])


def _as_postgres(*args: str) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *args] if os.geteuid() == 0 else list(args)


TEMPLATE = "mailcrate_template"


@dataclass
class PostgresServer:
    base: Path
    port: int
    bin: Path
    _template_ready: bool = False

    def url(self, database: str = "mailcrate") -> str:
        return f"postgresql+psycopg://postgres:postgres@127.0.0.1:{self.port}/{database}"

    def migrated_database(self, name: str) -> str:
        """A new database with mailcrate's schema already at the newest revision: a copy of a
        template migrated once per cluster (CREATE DATABASE ... TEMPLATE), instead of running
        every migration again for each test."""
        if not self._template_ready:
            from mailcrate.storage.db import Database

            db = Database(self.create_database(TEMPLATE))
            try:
                db.migrate()
            finally:
                db.dispose()
            self._template_ready = True
        return self.create_database(name, template=TEMPLATE)

    def create_database(self, name: str, *, template: str | None = None) -> str:
        subprocess.run(
            _as_postgres(
                str(self.bin / "psql"),
                "-h",
                str(self.base),
                "-p",
                str(self.port),
                "-U",
                "postgres",
                "-qAt",
                "-v",
                "ON_ERROR_STOP=1",
                "-c",
                f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else ""),
            ),
            check=True,
            capture_output=True,
        )
        return self.url(name)

    def stop(self) -> None:
        subprocess.run(
            _as_postgres(
                str(self.bin / "pg_ctl"), "-D", str(self.base / "data"), "-m", "immediate", "-w", "stop"
            ),
            capture_output=True,
        )
        shutil.rmtree(self.base, ignore_errors=True)


def start_postgres() -> PostgresServer:
    pg_bin = _pg_bin()
    base = Path(tempfile.mkdtemp(prefix="mailcrate-pg-"))
    os.chmod(base, 0o755)
    if os.geteuid() == 0:
        shutil.chown(base, "postgres", "postgres")
    password_file = base / "pw"
    password_file.write_text("postgres\n")
    if os.geteuid() == 0:
        shutil.chown(password_file, "postgres")
    subprocess.run(
        _as_postgres(
            str(pg_bin / "initdb"),
            "-D",
            str(base / "data"),
            "-U",
            "postgres",
            "--auth-local=trust",
            "--auth-host=scram-sha-256",
            f"--pwfile={password_file}",
            "-E",
            "UTF8",
            "--locale=C.UTF-8",
        ),
        check=True,
        capture_output=True,
    )
    port = _free_port()
    options = f"-c listen_addresses=127.0.0.1 -p {port} -k {base} -c fsync=off -c synchronous_commit=off"
    subprocess.run(
        _as_postgres(
            str(pg_bin / "pg_ctl"),
            "-D",
            str(base / "data"),
            "-l",
            str(base / "postgres.log"),
            "-w",
            "-t",
            "30",
            "-o",
            options,
            "start",
        ),
        check=True,
        capture_output=True,
    )
    server = PostgresServer(base=base, port=port, bin=pg_bin)
    server.create_database("mailcrate")
    return server
