"""``mailcrate quickstart`` as the README runs it: a fresh virtual environment, ``pip install .``,
``mailcrate quickstart`` (default data directory, empty HOME) - a verified export, twice."""

from __future__ import annotations

import json
import re
import subprocess
import time
from pathlib import Path

import pytest

from tests.cli.support import MAILCRATE, no_aws_env, run
from tests.servers.net import port_open

ROOT = Path(__file__).resolve().parents[2]
README_COMMAND = "python3 -m venv .venv && .venv/bin/pip install -q . && .venv/bin/mailcrate quickstart"


def _stopped(output: str) -> None:
    # The quickstart serves HTTPS with the certificate it made (issue 19).
    match = re.search(r"mailcrate serve is running at https://127\.0\.0\.1:(\d+)", output)
    assert match, output
    assert not port_open("127.0.0.1", int(match[1])), "quickstart left its server running"


def _check_first_run(first: subprocess.CompletedProcess[str], env: dict[str, str]) -> None:
    out = first.stdout
    assert re.search(
        r"verified export of alice: 306 items, \d+ bytes, SHA-384 matches the export log", out
    ), out
    for step in ("TLS certificate", "sample mailbox: 300 messages", "KMS key: created", "S3 bucket: created", "IAM role: created",
                 "role permission policy: created", "export COMPLETED"):  # fmt: skip
        assert step in first.stderr, first.stderr
    assert "aws workmail start-mailbox-export-job" in out and "aws iam create-role" in out
    assert "Traceback" not in first.stderr and "\x1b[" not in first.stderr
    took = re.search(r"took:\s+(\d+):(\d\d):(\d\d)", out)
    assert took and int(took[2]) * 60 + int(took[3]) < 60, out
    _stopped(first.stderr)
    zip_path = Path(re.search(r"zip:\s+(\S+)", out)[1])
    assert (zip_path.parent / "mailbox-export-policy.json").is_file()
    assert (zip_path.parent / zip_path.stem / "Maildir" / "cur").is_dir()
    verified = subprocess.run(
        [*MAILCRATE, "export", "verify", str(zip_path)], env=env, capture_output=True, text=True
    )
    assert verified.returncode == 0 and verified.stdout.startswith("OK ")


def test_quickstart_twice(tmp_path: Path) -> None:
    env = no_aws_env(HOME=str(tmp_path))
    data = tmp_path / "data"
    started = time.monotonic()
    first = run("quickstart", "--data-dir", str(data), env=env, cwd=tmp_path)
    assert first.returncode == 0, first.stderr + first.stdout
    assert time.monotonic() - started < 60
    _check_first_run(first, env)
    # Again: the data directory, organization, key, bucket and role are reused; alice's mailbox
    # was exported less than 24 hours ago (WorkMail's limit, kept), so a fresh user is exported.
    second = run("quickstart", "--data-dir", str(data), "--output", "json", env=env, cwd=tmp_path)
    assert second.returncode == 0, second.stderr
    summary = json.loads(second.stdout)
    assert summary["ok"] and summary["state"] == "COMPLETED" and summary["userName"] == "alice-2"
    assert {c["status"] for c in summary["setup"]["checks"]} == {"ok"}
    assert summary["download"]["verified"] and summary["download"]["items"] == 306
    assert summary["seconds"] < 60
    _stopped(second.stderr)


@pytest.mark.slow
def test_readme_install_in_a_fresh_venv(tmp_path: Path) -> None:
    """The README's command, verbatim, in a copy of the source tree with an empty HOME (so the
    default data directory), as a new user runs it."""
    assert README_COMMAND in (ROOT / "README.md").read_text()
    home = tmp_path / "home"
    home.mkdir()
    env = no_aws_env(
        HOME=str(home), PIP_DISABLE_PIP_VERSION_CHECK="1", PIP_CACHE_DIR=str(Path.home() / ".cache/pip")
    )
    project = tmp_path / "mailcrate"
    project.mkdir()
    for name in ("src", "pyproject.toml", "README.md"):
        subprocess.run(["cp", "-r", str(ROOT / name), str(project / name)], check=True)
    first = subprocess.run(["bash", "-c", README_COMMAND], cwd=project, env=env, capture_output=True, text=True,
                           timeout=400)  # fmt: skip
    assert first.returncode == 0, first.stderr[-3000:] + first.stdout[-3000:]
    _check_first_run(first, env)
    assert (home / ".local/share/mailcrate/master.key").is_file()
