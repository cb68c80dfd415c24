"""Before anything is created: is the database URL usable, and is its driver installed?

The PostgreSQL driver is the optional ``postgres`` extra. Without it, SQLAlchemy fails inside
``create_engine`` with a 40-line traceback, after the data directory and its master key were
made; :func:`check_database_url` says so in one line, naming the pip command, before that.
"""

from __future__ import annotations

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError

__all__ = ["DatabaseUrlError", "check_database_url", "normalise_database_url"]

#: What to install for a driver module that is missing.
_PIP = {
    "psycopg": "pip install 'mailcrate[postgres]'",
    "psycopg2": "pip install 'mailcrate[postgres]' and use postgresql+psycopg:// (psycopg 3)",
}


class DatabaseUrlError(Exception):
    """The URL cannot be used here (malformed, unknown dialect, driver not installed)."""


def normalise_database_url(url: str) -> str:
    """``postgresql://`` means psycopg 3 here (the ``postgres`` extra), not SQLAlchemy's
    default psycopg2, which mailcrate neither installs nor tests."""
    if url.startswith(("postgresql://", "postgres://")):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


def _shown(url: URL) -> str:
    return url.render_as_string(hide_password=True)


def check_database_url(url: str) -> None:
    """Raise :class:`DatabaseUrlError` unless the URL parses and its driver imports."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise DatabaseUrlError(
            "--database-url is not a database URL (e.g. postgresql+psycopg://user@host/mailcrate)"
        ) from None
    try:
        dialect = parsed.get_dialect()
    except NoSuchModuleError:
        raise DatabaseUrlError(f"unknown database in --database-url {_shown(parsed)}") from None
    try:
        dialect.import_dbapi()
    except ImportError as exc:
        module = (exc.name or parsed.get_driver_name()).split(".")[0]
        pip = _PIP.get(module, f"pip install {module}")
        raise DatabaseUrlError(
            f"the database driver {module!r} for {parsed.get_backend_name()} is not installed: {pip}"
        ) from None
