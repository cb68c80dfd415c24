"""Alembic environment: runs migrations on the connection mailcrate hands over.

mailcrate never shells out to ``alembic``; :func:`mailcrate.storage.db.migrate` runs these
migrations in-process on start-up, passing its own connection through ``config.attributes``.
"""

from __future__ import annotations

import importlib
import pkgutil

from alembic import context

import mailcrate.storage
from mailcrate.storage.tables import metadata

# Each room keeps its tables in a module of its own (tables.py, tables_iam.py, ...), all on one
# MetaData; import them all so autogenerate sees every table.
for module in pkgutil.iter_modules(mailcrate.storage.__path__):
    if module.name.startswith("tables"):
        importlib.import_module(f"mailcrate.storage.{module.name}")

connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - only for `alembic revision --autogenerate` by developers
    from sqlalchemy import create_engine

    url = context.config.get_main_option("sqlalchemy.url") or "sqlite://"
    connection = create_engine(url).connect()

context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
