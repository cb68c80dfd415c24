"""Start a real ``mailcrate serve`` process for tests, on a free loopback port, and talk to it.

Tests drive the server exactly as users do: the ``aws`` CLI and boto3 with ``--endpoint-url``.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import psutil
from botocore.config import Config

ACCOUNT_ID = "111122223333"
ACCESS_KEY_ID = "AKIAIOSFODNN7EXAMPLE"
SECRET_ACCESS_KEY = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
REGION = "us-east-1"
_LISTEN_RE = re.compile(r"mailcrate listening on (?P<scheme>https?)://(?P<host>[^\s:]+):(?P<port>\d+)")
BIN = Path(sys.executable).parent


def mailcrate_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "mailcrate.cli.main", *args]


@dataclass
class MailcrateServer:
    data_dir: Path
    access_key_id: str = ACCESS_KEY_ID
    secret_access_key: str = SECRET_ACCESS_KEY
    account_id: str = ACCOUNT_ID
    region: str = REGION
    extra_args: tuple[str, ...] = ()
    process: subprocess.Popen[str] | None = None
    port: int = 0
    log_path: Path | None = None
    env: dict[str, str] = field(default_factory=dict)
    scheme: str = "http"  # https when started with --tls-cert (as the server announces)

    @property
    def endpoint(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}"

    def init(self) -> None:
        subprocess.run(
            mailcrate_cmd(
                "init",
                "--data-dir",
                str(self.data_dir),
                "--account-id",
                self.account_id,
                "--access-key-id",
                self.access_key_id,
                "--secret-access-key",
                self.secret_access_key,
            ),
            check=True,
            capture_output=True,
            text=True,
        )

    def add_account(
        self, account_id: str, access_key_id: str, secret_access_key: str
    ) -> subprocess.CompletedProcess[str]:
        """Another tenant in this data directory (``mailcrate account create``), usable at once."""
        return subprocess.run(
            mailcrate_cmd(
                "account",
                "create",
                "--data-dir",
                str(self.data_dir),
                "--account-id",
                account_id,
                "--access-key-id",
                access_key_id,
                "--secret-access-key",
                secret_access_key,
            ),
            capture_output=True,
            text=True,
            check=True,
        )

    def start(self, timeout: float = 30.0) -> MailcrateServer:
        self.log_path = self.data_dir.parent / f"{self.data_dir.name}-serve.log"
        log = open(self.log_path, "a")  # noqa: SIM115 - lives as long as the process
        args = mailcrate_cmd(
            "serve",
            "--data-dir",
            str(self.data_dir),
            "--port",
            str(self.port),
            "--log-level",
            "warning",
            *self.extra_args,
        )
        self.process = subprocess.Popen(
            args, stdout=subprocess.PIPE, stderr=log, text=True, env={**os.environ, **self.env}
        )
        deadline = time.monotonic() + timeout
        assert self.process.stdout is not None
        while time.monotonic() < deadline:
            line = self.process.stdout.readline()
            if not line:
                raise RuntimeError(f"mailcrate serve exited early; log:\n{self.log_path.read_text()}")
            match = _LISTEN_RE.search(line)
            if match:
                self.port = int(match["port"])
                self.scheme = match["scheme"]
                return self
        raise RuntimeError("mailcrate serve did not announce its port in time")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15.0) -> int | None:
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        code = self.process.returncode
        if self.process.stdout:
            self.process.stdout.close()
        self.process = None
        return code

    @classmethod
    def launch(cls, data_dir: Path, *extra_args: str, env: dict[str, str] | None = None) -> MailcrateServer:
        """Initialise a fresh data directory with the test account and start serving it."""
        server = cls(data_dir=data_dir, extra_args=extra_args, env=env or {})
        server.init()
        return server.start()

    @classmethod
    @contextmanager
    def running(
        cls, data_dir: Path, *extra_args: str, env: dict[str, str] | None = None
    ) -> Iterator[MailcrateServer]:
        """``launch`` for the length of a ``with`` block (fixtures: ``with ... as srv: yield srv``)."""
        server = cls.launch(data_dir, *extra_args, env=env)
        try:
            yield server
        finally:
            server.stop()

    def worker_processes(self) -> list[psutil.Process]:
        """The running export worker processes of this ``serve`` (``mailcrate.runner`` children;
        not one that ended and is not yet reaped)."""
        assert self.process is not None
        found = []
        for child in psutil.Process(self.process.pid).children():
            with suppress(psutil.Error):  # a zombie, or gone meanwhile
                if child.status() != psutil.STATUS_ZOMBIE and "mailcrate.runner" in " ".join(child.cmdline()):
                    found.append(child)
        return found

    def restart(self) -> MailcrateServer:
        port = self.port
        self.stop()
        self.port = port
        return self.start()

    def create_account(self) -> dict[str, str]:
        """Another account in this data directory (``mailcrate account create``): its root key as
        ``client()`` takes it."""
        out = subprocess.run(
            mailcrate_cmd("account", "create", "--data-dir", str(self.data_dir)),
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        env = dict(line.removeprefix("export ").split("=", 1) for line in out.splitlines() if "=" in line)
        return {"access_key_id": env["AWS_ACCESS_KEY_ID"], "secret_access_key": env["AWS_SECRET_ACCESS_KEY"]}

    # --- clients -------------------------------------------------------------------------
    def client(
        self,
        service: str,
        *,
        access_key_id: str | None = None,
        secret_access_key: str | None = None,
        session_token: str | None = None,
        region: str | None = None,
        verify: str | None = None,
        endpoint_url: str | None = None,
        **config: Any,
    ) -> Any:
        """``endpoint_url``: somewhere else than this server (a proxy in front of it)."""
        return boto3.session.Session().client(
            service,
            endpoint_url=endpoint_url or self.endpoint,
            verify=verify,
            region_name=region or self.region,
            aws_access_key_id=access_key_id or self.access_key_id,
            aws_secret_access_key=secret_access_key or self.secret_access_key,
            aws_session_token=session_token,
            config=Config(retries={"max_attempts": 1}, **config),
        )

    def aws_env(self, **overrides: str) -> dict[str, str]:
        env = {
            **os.environ,
            "AWS_ACCESS_KEY_ID": self.access_key_id,
            "AWS_SECRET_ACCESS_KEY": self.secret_access_key,
            "AWS_DEFAULT_REGION": self.region,
            "AWS_CONFIG_FILE": "/dev/null",
            "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
            "AWS_MAX_ATTEMPTS": "1",
        }
        env.pop("AWS_SESSION_TOKEN", None)
        env.update(overrides)
        return env

    def aws(
        self, *args: str, check: bool = True, env: dict[str, str] | None = None, cwd: Path | None = None
    ) -> Any:
        """Run the real ``aws`` CLI against this server; parsed JSON output (or the CompletedProcess)."""
        result = subprocess.run(
            [str(BIN / "aws"), *args, "--endpoint-url", self.endpoint, "--output", "json"],
            capture_output=True,
            text=True,
            env=env or self.aws_env(),
            cwd=cwd,
            timeout=120,
        )
        if not check:
            return result
        assert result.returncode == 0, f"aws {' '.join(args)} failed: {result.stderr}"
        return json.loads(result.stdout) if result.stdout.strip() else {}
