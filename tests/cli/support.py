"""Running the real ``mailcrate`` command (a subprocess, as users run it) in the admin tests."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.support.mailcrate_server import MailcrateServer

MAILCRATE = [sys.executable, "-m", "mailcrate.cli.main"]


def no_aws_env(**extra: str) -> dict[str, str]:
    """The environment without any AWS credential source (no keys, no files, no IMDS)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "MAILCRATE_"))}
    env.update(
        {
            "AWS_CONFIG_FILE": "/dev/null",
            "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
            "AWS_EC2_METADATA_DISABLED": "true",
            "AWS_DEFAULT_REGION": "us-east-1",
            "COLUMNS": "200",
            "AWS_MAX_ATTEMPTS": "1",
        }
    )
    env.update(extra)
    return env


def server_env(server: MailcrateServer, **extra: str) -> dict[str, str]:
    """Credentials and endpoint of a test server, the way ``mailcrate init`` prints them."""
    values = {
        "AWS_ACCESS_KEY_ID": server.access_key_id,
        "AWS_SECRET_ACCESS_KEY": server.secret_access_key,
        "AWS_DEFAULT_REGION": server.region,
        "AWS_ENDPOINT_URL": server.endpoint,
    }
    return no_aws_env(**{**values, **extra})


def run(
    *args: str, env: dict[str, str], cwd: Path | None = None, timeout: float = 120, **kw: Any
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*MAILCRATE, *args], capture_output=True, text=True, env=env, cwd=cwd, timeout=timeout, **kw
    )


def one_line_error(result: subprocess.CompletedProcess[str]) -> tuple[str, str]:
    """Assert the error form: non-zero exit, ``error:`` + ``hint:`` lines, no traceback."""
    assert result.returncode != 0, result
    assert "Traceback" not in result.stderr, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error: ")]
    hints = [line for line in lines if line.startswith("hint: ")]
    assert len(errors) == 1 and len(hints) == 1, result.stderr
    return errors[0], hints[0]


def mailbox_args(server: MailcrateServer, mailbox: Any) -> tuple[str, ...]:
    """``--data-dir``, ``--organization-id``, ``--entity-id`` of a test mailbox (``new_mailbox``)."""
    return ("--data-dir", str(server.data_dir), "--organization-id", mailbox.organization_id,
            "--entity-id", mailbox.user_id)  # fmt: skip


def module_dovecot(users: dict[str, str]) -> Any:
    """A module's ``dovecot`` fixture: the session's shared Dovecot (tests/conftest.py) with
    this module's users added, each with an empty mailbox (``dovecot = module_dovecot(USERS)``
    in the test module; user names must be unique in the session)."""
    import pytest

    @pytest.fixture(scope="module")
    def dovecot(dovecot: Any) -> Any:  # the session's, by the same name
        dovecot.add_users(users)
        return dovecot

    return dovecot
