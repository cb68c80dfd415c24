"""A throw-away Radicale CalDAV server on 127.0.0.1 (filesystem storage, plain htpasswd auth).

Radicale >= 3.5 denies all logins unless auth is configured, so the config sets htpasswd/plain,
``delay = 0`` (instant negative tests) and ``owner_only`` rights.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from .net import free_port, wait_port

DEFAULT_USERS = {"alice": "alicepw", "bob": "bobpw"}


@dataclass
class RadicaleServer:
    """A running Radicale; ``url`` is its root (``http://127.0.0.1:PORT/``)."""

    host: str
    port: int
    users: dict[str, str]
    collections_dir: Path
    base_dir: Path
    process: subprocess.Popen[bytes] = field(repr=False)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)


def start_radicale(
    tmp_dir: str | os.PathLike[str], *, users: dict[str, str] | None = None, python: str | None = None
) -> RadicaleServer:
    """Start Radicale (from this interpreter's environment) with everything under ``tmp_dir``."""
    users = dict(users or DEFAULT_USERS)
    d = Path(tmp_dir).resolve() / f"radicale-{os.urandom(3).hex()}"
    (d / "collections").mkdir(parents=True)
    (d / "users").write_text("".join(f"{u}:{pw}\n" for u, pw in users.items()))
    port = free_port()
    (d / "config").write_text(
        f"""[server]
hosts = 127.0.0.1:{port}
[auth]
type = htpasswd
htpasswd_filename = {d}/users
htpasswd_encryption = plain
delay = 0
[storage]
filesystem_folder = {d}/collections
[rights]
type = owner_only
[logging]
level = warning
mask_passwords = True
"""
    )
    log = open(d / "radicale.log", "ab")  # noqa: SIM115 - handed to the child
    proc = subprocess.Popen(
        [python or sys.executable, "-m", "radicale", "--config", str(d / "config")],
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=log,
    )
    log.close()
    server = RadicaleServer("127.0.0.1", port, users, d / "collections", d, proc)
    try:
        wait_port("127.0.0.1", port, timeout=20)
    except TimeoutError:
        server.stop()
        raise RuntimeError(f"radicale did not start; see {d}/radicale.log") from None
    return server
