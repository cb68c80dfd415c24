"""The ``mailcrate`` command: sub-commands only, no business logic here."""

from __future__ import annotations

import shlex
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from mailcrate.accounts import AccountConflict, InitResult, add_account, init_account
from mailcrate.cli.options import build_settings, settings_options
from mailcrate.datadir import DataDir, DataDirError


def _account_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """The options that pin an account's id, region and root key (all random by default)."""
    for option in reversed(
        [
            click.option("--account-id", help="12-digit account id (random by default)."),
            click.option("--region", help="Default region (default us-east-1)."),
            click.option("--access-key-id", help="Root access key id to create (random by default)."),
            click.option("--secret-access-key", help="Root secret access key (random by default)."),
        ]
    ):
        func = option(func)
    return func


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="mailcrate")
def cli() -> None:
    """mailcrate: self-hosted Amazon WorkMail mailbox export jobs."""


@cli.command()
@settings_options("data_dir", "database_url")
@_account_options
@click.option(
    "--tls",
    is_flag=True,
    help="Also make a local CA and a server certificate (DATA_DIR/tls) and print how to use them.",
)
@click.option(
    "--tls-name",
    "tls_names",
    multiple=True,
    metavar="NAME",
    help="A host name or address clients use to reach the server (repeatable; default: localhost, "
    "127.0.0.1, ::1 and this host's name). Only used when the certificate is made.",
)
def init(tls: bool, tls_names: tuple[str, ...], **values: Any) -> None:
    """Create the data directory, its account and root access key (idempotent)."""
    result = _make_account(init_account, values, create=True)
    state = "initialised" if result.created else "is already initialised"
    click.echo(
        f"# {values['data_dir'] or 'data directory'} {state} for account {result.account_id}", err=True
    )
    _print_exports(result)
    if tls:
        _print_tls(build_settings(values).data_dir, list(tls_names))


def _print_tls(data_dir: Path, names: list[str]) -> None:
    """Make (or keep) the certificates and print the variables that use and trust them."""
    from mailcrate.admin.certificates import default_names, ensure_tls_files

    files = ensure_tls_files(data_dir, names or None)
    state = "made" if files.created else "kept (already there)"
    click.echo(f"# TLS: local CA and server certificate {state} in {files.directory}", err=True)
    if files.created:
        click.echo(f"#   valid for: {', '.join(names or default_names())}", err=True)
    click.echo(
        f"#   clients trust the CA with AWS_CA_BUNDLE (set below) or: aws --ca-bundle {files.ca_cert}",
        err=True,
    )
    click.echo(
        "#   `mailcrate serve` finds the certificate through MAILCRATE_TLS_CERT/KEY (set below)", err=True
    )
    q = shlex.quote
    click.echo(f"export AWS_CA_BUNDLE={q(str(files.ca_cert))}")
    click.echo(f"export MAILCRATE_TLS_CERT={q(str(files.server_cert))}")
    click.echo(f"export MAILCRATE_TLS_KEY={q(str(files.server_key))}")


@cli.group()
def account() -> None:
    """Accounts: each is a tenant of its own, with its own root key."""


@account.command("create")
@settings_options("data_dir", "database_url")
@_account_options
def account_create(**values: Any) -> None:
    """Add another account to an initialised data directory and print its root key."""
    result = _make_account(add_account, values, create=False)
    click.echo(f"# created account {result.account_id}", err=True)
    _print_exports(result)


def _make_account(make: Callable[..., InitResult], values: dict[str, Any], *, create: bool) -> InitResult:
    account_id, access_key_id, secret = (
        values["account_id"],
        values["access_key_id"],
        values["secret_access_key"],
    )
    if account_id is not None and not (account_id.isdigit() and len(account_id) == 12):
        raise click.UsageError("--account-id must be 12 digits")
    if access_key_id is not None and not (16 <= len(access_key_id) <= 128 and access_key_id.isalnum()):
        raise click.UsageError("--access-key-id must be 16-128 letters and digits")
    if secret is not None and len(secret) < 16:
        raise click.UsageError("--secret-access-key must be at least 16 characters")
    settings = build_settings(values)
    try:
        directory = DataDir.open(settings.data_dir, create=create, database_url=settings.database_url)
    except DataDirError as exc:
        raise click.ClickException(str(exc)) from None
    try:
        return make(
            directory,
            account_id=account_id,
            region=values["region"],
            access_key_id=access_key_id,
            secret_access_key=secret,
        )
    except AccountConflict as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        directory.close()


def _print_exports(result: InitResult) -> None:
    click.echo(f"export AWS_ACCESS_KEY_ID={result.access_key_id}")
    click.echo(f"export AWS_SECRET_ACCESS_KEY={result.secret_access_key}")
    click.echo(f"export AWS_DEFAULT_REGION={result.region}")


@cli.command()
@settings_options()
def serve(**values: Any) -> None:
    """Serve WorkMail (and the other embedded AWS services) on one SigV4 port."""
    from mailcrate.server.serve import serve as run
    from mailcrate.server.tls import TlsError

    settings = build_settings(values)
    try:
        run(settings)
    except (DataDirError, TlsError) as exc:
        raise click.ClickException(str(exc)) from None
    except OSError as exc:
        raise click.ClickException(
            f"cannot listen on {settings.host}:{settings.port}: {exc.strerror or exc}"
        ) from None


@cli.command()
@settings_options()
@click.option(
    "--server-url",
    help="A mailcrate server on another machine (sharing the database): exports go to its embedded "
    "S3 over HTTP. Without it they go into this data directory's embedded S3 in-process.",
)
@click.option("--wakeups-on-stdin", is_flag=True, hidden=True, help="Started by serve: stop at end of stdin.")
def worker(server_url: str | None, wakeups_on_stdin: bool, **values: Any) -> None:
    """Run export workers only (serve starts one; more may run against a shared database)."""
    from mailcrate.runner.worker import run_worker

    run_worker(build_settings(values), server_url, wakeups_on_stdin=wakeups_on_stdin)


from mailcrate.cli import audit_cmd, export_cmd, mailbox_cmd, migrate_cmd, quickstart  # noqa: E402 - admin commands (issue 7)

cli.add_command(audit_cmd.audit)
cli.add_command(export_cmd.export)
cli.add_command(mailbox_cmd.mailbox)
cli.add_command(migrate_cmd.migrate)
cli.add_command(quickstart.quickstart)


def main() -> None:
    sys.exit(cli())


if __name__ == "__main__":
    main()
