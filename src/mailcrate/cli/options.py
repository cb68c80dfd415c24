"""Click options generated from the settings table, so each knob is declared once."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from mailcrate.config import Settings, setting_fields

_TYPES: dict[str, Any] = {"int": int, "str": str, "Path": click.Path(path_type=Path, file_okay=False)}


def settings_options(*names: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorate a command with the options for the named settings (all when none are named)."""
    chosen = [f for f in setting_fields() if not names or f.name in names]

    def decorate(func: Callable[..., Any]) -> Callable[..., Any]:
        for f in reversed(chosen):
            type_name = str(f.type).replace(" | None", "")
            default = f.default
            func = click.option(
                f.metadata["flag"],
                f.name,
                type=_TYPES.get(type_name, str),
                envvar=f.metadata["env"],
                default=default,
                show_default=default is not None,
                show_envvar=True,
                help=f.metadata["help"],
            )(func)
        return func

    return decorate


def build_settings(values: dict[str, Any]) -> Settings:
    known = {f.name for f in setting_fields()}
    try:
        return Settings(**{k: v for k, v in values.items() if k in known})
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
