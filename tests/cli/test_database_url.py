"""``--database-url`` problems are one line, and a failed ``init`` leaves no data directory behind:
the PostgreSQL driver missing (the optional ``postgres`` extra), a server that is not there, a URL
that is not one. ``postgresql://`` means psycopg 3, the driver the extra installs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.cli.support import no_aws_env, run
from tests.support.postgres import start_postgres

# Python's import system treats a None entry in sys.modules as "not installed": the same
# ImportError a machine without the postgres extra raises, without uninstalling it here.
WITHOUT_PSYCOPG = "import sys; sys.modules['psycopg'] = None; from mailcrate.cli.main import main; main()"


def _one_line(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    return lines[0]


def test_missing_driver_is_one_line_and_makes_nothing(tmp_path: Path) -> None:
    data = tmp_path / "data"
    url = "postgresql://mailcrate:Secret-pw-1@127.0.0.1:1/mailcrate"
    result = subprocess.run(
        [sys.executable, "-c", WITHOUT_PSYCOPG, "init", "--data-dir", str(data), "--database-url", url],
        capture_output=True, text=True, env=no_aws_env(), timeout=60,
    )  # fmt: skip
    line = _one_line(result)
    assert (
        "database driver 'psycopg' for postgresql is not installed: pip install 'mailcrate[postgres]'" in line
    )
    assert not data.exists()


def test_unreachable_or_malformed_database_makes_nothing(tmp_path: Path) -> None:
    data = tmp_path / "data"
    line = _one_line(run("init", "--data-dir", str(data), "--database-url",
                         "postgresql://mailcrate:Secret-pw-1@127.0.0.1:1/mailcrate", env=no_aws_env()))  # fmt: skip
    assert "cannot use the database" in line and "Connection refused" in line and "Secret-pw-1" not in line
    assert not data.exists()
    data.mkdir(mode=0o700)  # made beforehand (systemd's StateDirectory=): left empty, not removed
    line = _one_line(run("init", "--data-dir", str(data), "--database-url",
                         "postgresql://mailcrate@127.0.0.1:1/mailcrate", env=no_aws_env()))  # fmt: skip
    assert "cannot use the database" in line and data.is_dir() and list(data.iterdir()) == []
    data.rmdir()
    for url, message in (("nosuchdb://x", "unknown database"), ("not a url", "is not a database URL")):
        assert message in _one_line(
            run("init", "--data-dir", str(data), "--database-url", url, env=no_aws_env())
        )
        assert not data.exists()


def test_postgresql_url_uses_psycopg3(tmp_path: Path) -> None:
    postgres = start_postgres()
    try:
        url = postgres.create_database("plain_url").replace("postgresql+psycopg://", "postgresql://")
        data = ("--data-dir", str(tmp_path / "data"), "--database-url", url)
        first = run("init", *data, env=no_aws_env())
        assert first.returncode == 0, first.stderr
        again = run("init", *data, env=no_aws_env())
        assert again.returncode == 0 and "is already initialised" in again.stderr, again.stderr
        assert not (tmp_path / "data" / "mailcrate.db").exists()  # the accounts went to PostgreSQL
    finally:
        postgres.stop()
