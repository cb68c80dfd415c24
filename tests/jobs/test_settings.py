"""The export settings of ``serve`` (validated in the settings table) and how workers get them;
how ``serve`` opens its data directory."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import inspect, text

from mailcrate.config import Settings
from mailcrate.datadir import DataDir
from mailcrate.export.settings import export_settings_from
from mailcrate.storage.db import script_heads


def test_defaults_and_mapping() -> None:
    settings = Settings()
    assert (settings.export_workers, settings.export_max_running_per_org) == (4, 10)
    assert settings.export_mailbox_interval_seconds == 86400
    own = export_settings_from(settings, "http://127.0.0.1:4566")
    assert own.endpoint_url == "http://127.0.0.1:4566" and not own.external
    assert own.part_size == 8 * 1024 * 1024 and own.parts_in_flight == 3
    external = export_settings_from(settings.with_values(aws_endpoint_url="aws"), "http://127.0.0.1:1")
    assert external.external and external.endpoint_url == "aws"


@pytest.mark.parametrize(
    "values",
    [
        {"export_workers": -1},
        {"export_processes": -1},
        {"export_process_idle_seconds": 0},
        {"export_lease_seconds": 1},
        {"export_part_size_mib": 4},
        {"export_parts_in_flight": 0},
        {"export_max_running_per_org": 0},
        {"export_mailbox_interval_seconds": -5},
        {"export_max_attempts": 0},
    ],
)
def test_invalid_values_are_refused(values: dict[str, int]) -> None:
    with pytest.raises(ValueError):
        Settings(**values)  # type: ignore[arg-type]


_OPEN = "import sys; from pathlib import Path; from mailcrate.datadir import DataDir; DataDir.open(Path(sys.argv[1])).close(); print('alembic' in sys.modules)"


def _open_in_new_process(path: Path) -> bool:
    """Open a data directory as ``serve`` does; whether that needed Alembic."""
    out = subprocess.run([sys.executable, "-c", _OPEN, str(path)], check=True, capture_output=True, text=True)
    return out.stdout.strip() == "True"


def test_serve_opens_a_current_schema_without_alembic_and_migrates_an_older_one(tmp_path: Path) -> None:
    # Alembic stays out of the long-running server when there is nothing to migrate (its
    # modules are ~12 MiB of the idle RSS summed in the export memory target).
    path = tmp_path / "data"
    DataDir.open(path, create=True).close()
    assert not _open_in_new_process(path)

    # A data directory from before the jobs branch's later revisions (0005, 0009, 0010, 0011, 0012)
    # is still brought up to date.
    dd = DataDir.open(path)
    with dd.db.begin() as conn:
        conn.execute(
            text(
                "UPDATE alembic_version SET version_num = '0004_jobs' "
                "WHERE version_num = '0012_jobs_org_state_index'"
            )
        )
        conn.execute(text("DROP TABLE export_checkpoints"))
        conn.execute(text("DROP INDEX ix_export_jobs_org_state"))
        for column in ("fence", "commit_upload", "commit_parts", "commit_log"):
            conn.execute(text(f"ALTER TABLE export_jobs DROP COLUMN {column}"))
        conn.execute(text("ALTER TABLE export_jobs DROP COLUMN abort_retry_at"))
        conn.execute(text("ALTER TABLE export_jobs DROP COLUMN abort_attempts"))
        conn.execute(text("DROP INDEX ix_export_jobs_org_start_id"))
        conn.execute(
            text("CREATE INDEX ix_export_jobs_org_start ON export_jobs (organization_id, start_time)")
        )
    dd.close()
    assert _open_in_new_process(path)
    dd = DataDir.open(path)
    try:
        assert dd.db.current_revisions() == script_heads()
        indexes = {ix["name"] for ix in inspect(dd.db.engine).get_indexes("export_jobs")}
        assert "ix_export_jobs_org_start_id" in indexes and "ix_export_jobs_org_start" not in indexes
        assert "ix_export_jobs_org_state" in indexes
        columns = {column["name"] for column in inspect(dd.db.engine).get_columns("export_jobs")}
        assert {"abort_attempts", "abort_retry_at"} <= columns
        assert "export_checkpoints" in inspect(dd.db.engine).get_table_names()
    finally:
        dd.close()
