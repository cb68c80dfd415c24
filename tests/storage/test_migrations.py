"""The Alembic migrations build exactly the schema the SQLAlchemy tables declare, on SQLite and on
PostgreSQL: a table, column, index or type added to one and not the other fails here (a data
directory upgraded by the migrations would otherwise differ from what the code expects)."""

from __future__ import annotations

import importlib
import pkgutil
import uuid
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

import mailcrate.storage
from mailcrate.datadir import DataDir
from mailcrate.storage.tables import metadata
from tests.support.postgres import PostgresServer


def _all_tables() -> Any:
    for module in pkgutil.iter_modules(mailcrate.storage.__path__):
        if module.name.startswith("tables"):
            importlib.import_module(f"mailcrate.storage.{module.name}")
    return metadata


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_migrations_produce_the_declared_schema(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    url = None
    if backend == "postgresql":
        postgres: PostgresServer = request.getfixturevalue("postgres")
        url = postgres.create_database("schema_" + uuid.uuid4().hex[:12])
    data_dir = DataDir.open(tmp_path / "data", create=True, database_url=url)
    try:
        with data_dir.db.engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            differences = compare_metadata(context, _all_tables())
        tables = set(_all_tables().tables)
        assert {
            "export_jobs",
            "workmail_organizations",
            "workmail_users",
            "access_keys",
        } <= tables  # it read them all
    finally:
        data_dir.close()
    assert differences == [], "\n".join(map(str, differences))
