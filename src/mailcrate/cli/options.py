"""Click options generated from the settings table, so each knob is declared once."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from mailcrate.config import Settings, setting_fields
from mailcrate.config_file import ConfigFileError, load_config_file

_TYPES: dict[str, Any] = {
    "int": int,
    "str": str,
    "bool": click.BOOL,
    "Path": click.Path(path_type=Path, file_okay=False),
}


def _use_config_file(ctx: click.Context, _param: click.Parameter, value: Path | None) -> None:
    """``--config``: the file's values become the command's defaults, so a flag or an environment
    variable still wins (click: command line > envvar > ``default_map`` > default) and each value
    is converted and checked by its option exactly as if it had been typed."""
    if value is None:
        return
    try:
        values = load_config_file(value)
    except ConfigFileError as exc:
        raise click.BadParameter(str(exc), ctx=ctx, param=_param) from None
    ctx.default_map = {**(ctx.default_map or {}), **values}


config_option = click.option(
    "--config",
    type=click.Path(path_type=Path, dir_okay=False),
    envvar="MAILCRATE_CONFIG",
    show_envvar=True,
    is_eager=True,  # read before the other options take their values
    expose_value=False,
    callback=_use_config_file,
    help="TOML file of settings (keys as the flags without dashes: port = 4566); flags and "
    "environment variables override it.",
)


def settings_options(*names: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorate a command with the options for the named settings (all when none are named),
    and ``--config`` to take them from a file."""
    chosen = [f for f in setting_fields() if not names or f.name in names]

    def decorate(func: Callable[..., Any]) -> Callable[..., Any]:
        func = config_option(func)
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
