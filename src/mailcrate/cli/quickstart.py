"""``mailcrate quickstart``: a verified mailbox export on this machine in one command."""

from __future__ import annotations

import contextlib
import json
import signal
from pathlib import Path
from typing import TYPE_CHECKING

import click

from mailcrate.cli.errors import FriendlyCommand, debug_option
from mailcrate.cli.options import settings_options
from mailcrate.config import Settings

if TYPE_CHECKING:
    from mailcrate.admin.quickstart import ChildServer, QuickstartResult

__all__ = ["quickstart"]


@click.command(cls=FriendlyCommand)
@settings_options("data_dir")
@click.option(
    "--to",
    type=click.Path(path_type=Path, file_okay=False),
    help="Where the export is downloaded and unpacked (default: DATA_DIR/quickstart-exports).",
)
@click.option("--keep-serving", is_flag=True, help="Leave the server running afterwards (Ctrl-C stops it).")
@click.option(
    "--output",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="json: one summary object on stdout (steps still go to stderr).",
)
@debug_option
def quickstart(data_dir: Path | None, to: Path | None, keep_serving: bool, output: str) -> None:
    """Run a whole WorkMail mailbox export here: data directory, server, organization, user with a
    sample mailbox, KMS key, bucket, role, export with progress, download and verify.

    Safe to re-run (what exists is reused; a fresh user is exported when the last one was
    exported less than 24 hours ago). Prints the aws commands that repeat each step."""
    from mailcrate.admin.progress import stderr_console
    from mailcrate.admin.quickstart import run_quickstart

    console = stderr_console()

    def say(text: str) -> None:
        console.print(
            f"[green]\u2713[/green] {text}", highlight=False, markup=True, soft_wrap=True
        ) if console.is_terminal else console.print(f"- {text}", markup=False)

    def hold(server: ChildServer, result: QuickstartResult) -> None:
        _summary(result, output)
        console.print(f"serving at {server.endpoint}; press Ctrl-C to stop", markup=False)
        with contextlib.suppress(KeyboardInterrupt):
            signal.pause()

    result = run_quickstart(
        Settings(data_dir=data_dir).data_dir,
        to=to,
        console=console,
        say=say,
        keep_serving=hold if keep_serving else None,
    )
    if not keep_serving:
        _summary(result, output)
    if not result.ok:
        raise SystemExit(1)


def _summary(result: QuickstartResult, output: str) -> None:
    from mailcrate.admin.progress import format_elapsed
    from mailcrate.admin.quickstart import repeat_commands

    if output == "json":
        click.echo(json.dumps(result.to_dict(), ensure_ascii=False, indent=2))
        return
    d = result.downloaded
    assert d is not None
    report = d.report
    click.echo("")
    if report.ok:
        click.secho(
            f"verified export of {result.user_name}: {report.items_checked} items, {report.total_bytes} bytes, "
            f"SHA-384 matches the export log",
            fg="green",
        )
    else:
        click.secho(f"export FAILED verification ({len(report.problems)} problems):", fg="red")
        for p in report.problems[:10]:
            click.echo(f"  {p}")
    click.echo(f"  zip:       {d.zip_path}")
    click.echo(f"  log:       {d.log_path}")
    if d.unpacked is not None:
        click.echo(f"  unpacked:  {d.unpacked.destination}/Maildir and {d.unpacked.destination}/calendars")
    click.echo(f"  data dir:  {result.data_dir}")
    click.echo(f"  took:      {format_elapsed(result.seconds)} (export {result.job_seconds:.1f} s)")
    click.echo("\nTo repeat each step by hand:")
    for line in repeat_commands(result):
        click.echo(f"  {line}")
