"""``mailcrate quickstart``: a verified export in one command, twice; and the README's install
(a fresh virtual environment, ``pip install .``, ``mailcrate quickstart``)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.cli.support import no_aws_env, run
from tests.servers.net import port_open

ROOT = Path(__file__).resolve().parents[2]


def _stopped(output: str) -> None:
    match = re.search(r"mailcrate serve is running at http://127\.0\.0\.1:(\d+)", output)
    assert match, output
    assert not port_open("127.0.0.1", int(match[1])), "quickstart left its server running"


def test_quickstart_twice(tmp_path: Path) -> None:
    env = no_aws_env(HOME=str(tmp_path))
    data = tmp_path / "data"
    started = time.monotonic()
    first = run("quickstart", "--data-dir", str(data), env=env, cwd=tmp_path)
    took = time.monotonic() - started
    assert first.returncode == 0, first.stderr + first.stdout
    assert took < 60, took
    out = first.stdout
    assert re.search(
        r"verified export of alice: 306 items, \d+ bytes, SHA-384 matches the export log", out
    ), out
    for step in ("sample mailbox: 300 messages", "KMS key: created", "S3 bucket: created", "IAM role: created",
                 "role permission policy: created", "export COMPLETED"):  # fmt: skip
        assert step in first.stderr, first.stderr
    assert "aws workmail start-mailbox-export-job" in out and "aws iam create-role" in out
    assert "Traceback" not in first.stderr and "\x1b[" not in first.stderr
    _stopped(first.stderr)
    zip_path = Path(re.search(r"zip:\s+(\S+)", out)[1])
    assert zip_path.is_file() and (zip_path.parent / "mailbox-export-policy.json").is_file()
    assert (zip_path.parent / zip_path.stem / "Maildir" / "cur").is_dir()
    verified = run("export", "verify", str(zip_path), env=env)
    assert verified.returncode == 0 and verified.stdout.startswith("OK ")

    # Again, on the same data directory: everything reused, a fresh user because alice's
    # mailbox was exported less than 24 hours ago (WorkMail's limit, kept).
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
    """The README's first command, verbatim, in an empty directory with an empty HOME."""
    readme = (ROOT / "README.md").read_text()
    command = "python3 -m venv .venv && .venv/bin/pip install -q . && .venv/bin/mailcrate quickstart"
    assert command in readme
    home = tmp_path / "home"
    home.mkdir()
    env = no_aws_env(HOME=str(home), PIP_DISABLE_PIP_VERSION_CHECK="1")
    env["PIP_CACHE_DIR"] = os.environ.get("PIP_CACHE_DIR", str(Path.home() / ".cache" / "pip"))
    venv = tmp_path / ".venv"
    python = "python3" if sys.version_info >= (3, 11) else sys.executable
    subprocess.run([python, "-m", "venv", str(venv)], check=True, env=env)
    pip = subprocess.run([str(venv / "bin/pip"), "install", "-q", str(ROOT)], env=env, capture_output=True, text=True,
                         timeout=300)  # fmt: skip
    if pip.returncode != 0 and (
        "Could not find a version" in pip.stderr or "NewConnectionError" in pip.stderr
    ):
        pytest.skip(f"no package index reachable: {pip.stderr[-300:]}")
    assert pip.returncode == 0, pip.stderr
    result = subprocess.run([str(venv / "bin/mailcrate"), "quickstart"], env=env, cwd=tmp_path, capture_output=True,
                            text=True, timeout=120)  # fmt: skip
    assert result.returncode == 0, result.stderr + result.stdout
    assert "verified export of alice" in result.stdout
    assert (home / ".local/share/mailcrate/master.key").is_file()
