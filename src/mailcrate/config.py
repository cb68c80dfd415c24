"""One validated settings table: every knob with its flag, environment variable, default and help.

The CLI builds its options from this table (:func:`mailcrate.cli.options.settings_options`), so
a setting is declared once and documented once. Values are validated when the
:class:`Settings` object is built, not where they are used.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any


def default_data_dir() -> Path:
    """Per-user default, following the XDG base-directory convention."""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "mailcrate"


def _setting(flag: str, env: str, default: Any, help: str, **extra: Any) -> Any:
    return field(default=default, metadata={"flag": flag, "env": env, "help": help, **extra})


@dataclass(frozen=True)
class Settings:
    data_dir: Path = _setting(
        "--data-dir", "MAILCRATE_DATA_DIR", None, "Data directory (default: ~/.local/share/mailcrate)."
    )
    host: str = _setting(
        "--host", "MAILCRATE_HOST", "127.0.0.1", "Address to listen on (loopback by default)."
    )
    port: int = _setting("--port", "MAILCRATE_PORT", 4566, "TCP port for every AWS-compatible service.")
    database_url: str | None = _setting(
        "--database-url",
        "MAILCRATE_DATABASE_URL",
        None,
        "SQLAlchemy URL of a shared database (default: SQLite in the data directory).",
    )
    max_request_bytes: int = _setting(
        "--max-request-bytes",
        "MAILCRATE_MAX_REQUEST_BYTES",
        10 * 1024 * 1024,
        "Largest JSON/Query request body accepted (S3 object bodies are streamed, not bounded by this).",
    )
    clock_skew_seconds: int = _setting(
        "--clock-skew-seconds",
        "MAILCRATE_CLOCK_SKEW_SECONDS",
        900,
        "How far a request's X-Amz-Date may be from the server clock (AWS: 15 minutes).",
    )
    log_level: str = _setting(
        "--log-level", "MAILCRATE_LOG_LEVEL", "info", "critical|error|warning|info|debug"
    )

    def __post_init__(self) -> None:
        if self.data_dir is None:
            object.__setattr__(self, "data_dir", default_data_dir())
        object.__setattr__(self, "data_dir", Path(self.data_dir).expanduser().absolute())
        if not 0 <= int(self.port) < 65536:
            raise ValueError(f"port must be 0-65535 (0: any free port), got {self.port}")
        if self.max_request_bytes < 1024:
            raise ValueError("max-request-bytes must be at least 1024")
        if self.clock_skew_seconds < 0:
            raise ValueError("clock-skew-seconds must not be negative")
        if self.log_level not in {"critical", "error", "warning", "info", "debug"}:
            raise ValueError(f"unknown log level {self.log_level!r}")

    def with_values(self, **values: Any) -> Settings:
        return replace(self, **{k: v for k, v in values.items() if v is not None})


def setting_fields() -> list[Any]:
    """The table itself, for the CLI and the documentation."""
    return list(fields(Settings))
