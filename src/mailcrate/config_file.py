"""The configuration file (``--config FILE`` or ``MAILCRATE_CONFIG``): the settings table in TOML.

Each key is a setting's flag without its dashes, so the file, the flags and the environment
variables name one knob alike::

    # /etc/mailcrate/mailcrate.toml
    data-dir = "/var/lib/mailcrate"
    host = "0.0.0.0"
    port = 4566
    tls-cert = "/etc/mailcrate/tls/server.pem"
    tls-key = "/etc/mailcrate/tls/server.key"
    export-workers = 8

Precedence is flag > environment variable > file > default. The file only supplies values: the
CLI converts and validates them exactly as it does a flag's (:mod:`mailcrate.cli.options`), so a
bad value gets the same message wherever it came from. Relative paths (data-dir, tls-cert,
tls-key) are relative to the file's own directory, so a file means the same from any working
directory (a service manager's, a shell's).
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from mailcrate.config import setting_fields

__all__ = ["ConfigFileError", "load_config_file"]


class ConfigFileError(Exception):
    """The file cannot be read, is not TOML, or names something that is not a setting."""


def _key(flag: str) -> str:
    return flag.removeprefix("--")


def load_config_file(path: Path) -> dict[str, Any]:
    """The file's values by setting name (``export_workers``), as the CLI's defaults."""
    try:
        with open(path, "rb") as f:
            document = tomllib.load(f)
    except FileNotFoundError:
        raise ConfigFileError(f"{path}: no such configuration file") from None
    except OSError as exc:
        raise ConfigFileError(f"{path}: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigFileError(f"{path} is not valid TOML: {exc}") from None
    by_key = {_key(f.metadata["flag"]): f for f in setting_fields()}
    values: dict[str, Any] = {}
    for key, value in document.items():
        f = by_key.get(key)
        if isinstance(value, dict):
            raise ConfigFileError(f"{path}: [{key}]: the file has no sections; put its settings at the top")
        if f is None:
            near = by_key.get(key.replace("_", "-"))
            hint = f" (did you mean {_key(near.metadata['flag'])}?)" if near else ""
            raise ConfigFileError(f"{path}: unknown setting {key!r}{hint}")
        if isinstance(value, list) or (isinstance(value, bool) and "bool" not in str(f.type)):
            raise ConfigFileError(f"{path}: {key} must be a single value, got {value!r}")
        if str(f.type).startswith("int") and not (isinstance(value, int) and not isinstance(value, bool)):
            # click's own words for a flag's bad integer, naming the file instead of the flag
            raise ConfigFileError(f"{path}: {key}: {value!r} is not a valid integer.")
        if f.metadata.get("path") and isinstance(value, str):
            value = str((path.parent / Path(value).expanduser()).absolute())
        values[f.name] = value
    return values
