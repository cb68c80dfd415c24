"""Alembic environment: runs migrations on the connection mailcrate hands over.

mailcrate never shells out to ``alembic``; :func:`mailcrate.storage.db.migrate` runs these
migrations in-process on start-up, passing its own connection through ``config.attributes``.
"""

from __future__ import annotations

from alembic import context

from mailcrate.storage.tables import metadata

connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - only for `alembic revision --autogenerate` by developers
    from sqlalchemy import create_engine

    url = context.config.get_main_option("sqlalchemy.url") or "sqlite://"
    connection = create_engine(url).connect()

context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
