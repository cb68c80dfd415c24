"""master.key problems are caught before anything is written or served.

A missing key on an initialised data directory used to be replaced by a new one (every sealed
secret lost, then an InvalidTag traceback); a wrong key let ``serve`` start and answer every
signed call with a 500."""

from __future__ import annotations

import hashlib
import os
import subprocess
from pathlib import Path

from tests.support.mailcrate_server import mailcrate_cmd


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(mailcrate_cmd(*args), capture_output=True, text=True, timeout=60)


def _snapshot(directory: Path) -> dict[str, str]:
    return {
        str(p.relative_to(directory)): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
        for p in sorted(directory.rglob("*"))
    }


def _one_error_line(result: subprocess.CompletedProcess[str]) -> str:
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    return lines[0]


def test_init_with_master_key_missing_refuses_and_writes_nothing(tmp_path: Path) -> None:
    data = tmp_path / "data"
    assert _run("init", "--data-dir", str(data)).returncode == 0
    (data / "master.key").unlink()
    before = _snapshot(data)
    result = _run("init", "--data-dir", str(data))
    assert result.returncode != 0
    line = _one_error_line(result)
    assert "master.key is missing" in line and "backup" in line
    assert _snapshot(data) == before  # no new key, no migration, nothing


def test_serve_with_a_wrong_master_key_stops_at_start(tmp_path: Path) -> None:
    data = tmp_path / "data"
    assert _run("init", "--data-dir", str(data)).returncode == 0
    (data / "master.key").write_bytes(os.urandom(32))
    result = _run("serve", "--data-dir", str(data), "--port", "0", "--export-workers", "0")
    assert result.returncode != 0
    assert "listening" not in result.stdout
    line = _one_error_line(result)
    assert "master.key does not open this data directory's secrets" in line


def test_the_right_key_still_opens(tmp_path: Path) -> None:
    data = tmp_path / "data"
    first = _run("init", "--data-dir", str(data), "--account-id", "123456789012")
    assert first.returncode == 0, first.stderr
    again = _run("init", "--data-dir", str(data))
    assert again.returncode == 0 and "123456789012" in again.stdout + again.stderr
