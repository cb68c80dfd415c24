"""``mailcrate mailbox import|bind|show``: where a user's mail lives, on the data directory."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import click

from mailcrate.admin.errors import AdminError
from mailcrate.cli.errors import FriendlyGroup, debug_option
from mailcrate.cli.options import settings_options
from mailcrate.config import Settings
from mailcrate.mail.base import CalDavSpec, ImapSpec, SourceSpec
from mailcrate.network import is_loopback, url_host

__all__ = ["caldav_spec_from", "imap_spec_from", "mailbox", "read_secret", "source_options"]

output_option = click.option(
    "--output", type=click.Choice(["text", "json"]), default="text", show_default=True, help="Output format."
)
org_option = click.option(
    "--organization-id",
    required=True,
    envvar="MAILCRATE_ORGANIZATION_ID",
    show_envvar=True,
    help="The WorkMail organization.",
)
entity_option = click.option(
    "--entity-id", required=True, help="The user: its id, user name or email address."
)


def read_secret(path: Path | None, env: str, what: str) -> str:
    """A password from a file (first line), else an environment variable, else a prompt on a TTY."""
    if path is not None:
        text = path.read_text(encoding="utf-8").splitlines()
        if not text or not text[0]:
            raise AdminError(f"{path} is empty", f"put the {what} password on its first line")
        return text[0]
    if os.environ.get(env):
        return os.environ[env]
    if sys.stdin.isatty():
        return click.prompt(f"{what} password", hide_input=True)
    raise AdminError(f"no {what} password", f"pass --{what.lower()}-password-file FILE or set {env}")


def source_options(func: Any) -> Any:
    """IMAP and CalDAV connection options (``mailbox bind`` and ``export restore``)."""
    options = [
        click.option("--imap", "imap_url", metavar="URL", help="imaps://host[:port] or imap://host[:port]."),
        click.option("--imap-user", help="The mailbox's IMAP login (the user, also with a master user)."),
        click.option(
            "--imap-password-file",
            type=click.Path(path_type=Path, dir_okay=False, exists=True),
            help="File holding the IMAP password (else $MAILCRATE_IMAP_PASSWORD, else a prompt).",
        ),
        click.option(
            "--imap-master-user",
            help="Master user (Dovecot: logs in as USER*MASTER with the master's password).",
        ),
        click.option(
            "--imap-auth",
            type=click.Choice(["login", "plain"]),
            default="login",
            show_default=True,
            help="LOGIN, or SASL PLAIN (with a master user: authzid=user, authcid=master).",
        ),
        click.option("--imap-starttls", is_flag=True, help="Upgrade imap:// with STARTTLS."),
        click.option(
            "--imap-ca-file", type=click.Path(dir_okay=False, exists=True), help="Trust this CA file too."
        ),
        click.option(
            "--imap-insecure", is_flag=True, help="Do not check the TLS certificate (not recommended)."
        ),
        click.option(
            "--caldav", "caldav_url", metavar="URL", help="CalDAV URL for calendars (https://host/dav/)."
        ),
        click.option("--caldav-user", help="CalDAV login."),
        click.option(
            "--caldav-password-file",
            type=click.Path(path_type=Path, dir_okay=False, exists=True),
            help="File holding the CalDAV password (else $MAILCRATE_CALDAV_PASSWORD, else a prompt).",
        ),
        click.option(
            "--caldav-ca-file", type=click.Path(dir_okay=False, exists=True), help="Trust this CA file too."
        ),
        click.option(
            "--allow-plaintext",
            is_flag=True,
            help="Allow imap:// without --imap-starttls, or http:// CalDAV, to a host other than this "
            "machine (the password then crosses the network in clear).",
        ),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def _refuse_plaintext(url: str, what: str, fix: str, values: dict[str, Any]) -> None:
    """A password for a remote host goes over TLS unless the operator says otherwise."""
    host = url_host(url)
    if values.get("allow_plaintext") or not host or is_loopback(host):
        return
    raise click.UsageError(
        f"{url} would send the {what} password to {host} in clear; {fix}, or pass --allow-plaintext"
    )


def imap_spec_from(values: dict[str, Any]) -> ImapSpec | None:
    url = values.get("imap_url")
    if not url:
        return None
    if not values.get("imap_user"):
        raise click.UsageError("--imap needs --imap-user")
    if url.lower().startswith("imap://") and not values.get("imap_starttls"):
        _refuse_plaintext(url, "IMAP", "use imaps:// or --imap-starttls", values)
    return ImapSpec(
        url=url,
        user=values["imap_user"],
        password=read_secret(values.get("imap_password_file"), "MAILCRATE_IMAP_PASSWORD", "IMAP"),
        master_user=values.get("imap_master_user"),
        auth=values.get("imap_auth") or "login",
        starttls=bool(values.get("imap_starttls")),
        ca_file=values.get("imap_ca_file"),
        verify=not values.get("imap_insecure"),
    )


def caldav_spec_from(values: dict[str, Any]) -> CalDavSpec | None:
    url = values.get("caldav_url")
    if not url:
        return None
    if not values.get("caldav_user"):
        raise click.UsageError("--caldav needs --caldav-user")
    if url.lower().startswith("http://"):
        _refuse_plaintext(url, "CalDAV", "use https://", values)
    return CalDavSpec(
        url=url,
        user=values["caldav_user"],
        password=read_secret(values.get("caldav_password_file"), "MAILCRATE_CALDAV_PASSWORD", "CalDAV"),
        ca_file=values.get("caldav_ca_file"),
    )


def _data_dir(path: Path | None) -> Path:
    return Settings(data_dir=path).data_dir


@click.group(cls=FriendlyGroup)
def mailbox() -> None:
    """Mailboxes: import mail into the embedded store, bind users to IMAP/CalDAV/Maildir."""


@mailbox.command("import")
@settings_options("data_dir", "database_url")
@org_option
@entity_option
@click.option(
    "--folder",
    help="Target folder for mbox/.eml (default: Inbox, or the mbox's name), "
    "calendar for .ics, parent folder for a Maildir tree.",
)
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@output_option
@debug_option
def import_cmd(
    data_dir: Path | None,
    database_url: str | None,
    organization_id: str,
    entity_id: str,
    folder: str | None,
    paths: tuple[Path, ...],
    output: str,
) -> None:
    """Import mbox files, Maildir trees, .eml files and .ics calendars into a user's mailbox.

    Safe to re-run: a message already in its folder (same bytes, one copy per copy in the input)
    is not stored again. The report has a row per folder and calendar: items in the input,
    imported, already there, and for calendars superseded (older versions of one UID: the newest
    is kept) and not exportable (tasks, journals, free/busy: stored, never exported)."""
    from mailcrate.admin import mailbox as mb

    dd = mb.open_data_dir(_data_dir(data_dir), database_url)
    try:
        user, report = mb.import_mail(dd, organization_id, entity_id, list(paths), folder)
    finally:
        dd.close()
    if output == "json":
        click.echo(json.dumps({"userId": user.user_id, **report.to_dict()}, ensure_ascii=False, indent=2))
    else:
        for line in report.table("imported"):
            click.echo(line)
        if user.spec is not None:
            click.echo(
                "note: this user is bound to an external source; exports read that, not the embedded store",
                err=True,
            )
    for error in report.errors:
        click.echo(f"error: {error}", err=True)
    if report.errors:
        sys.exit(1)


@mailbox.command("bind")
@settings_options("data_dir", "database_url")
@org_option
@entity_option
@source_options
@click.option(
    "--maildir",
    type=click.Path(path_type=Path, file_okay=False, exists=True),
    help="A Maildir on disk (Dovecot/Postfix layout), read-only.",
)
@click.option("--embedded", is_flag=True, help="Back to the embedded store (removes any binding).")
@click.option(
    "--check/--no-check",
    default=True,
    show_default=True,
    help="Connect and list the folders before storing the binding.",
)
@output_option
@debug_option
def bind_cmd(
    data_dir: Path | None,
    database_url: str | None,
    organization_id: str,
    entity_id: str,
    maildir: Path | None,
    embedded: bool,
    check: bool,
    output: str,
    **values: Any,
) -> None:
    """Bind a user's mailbox to where its mail really lives: IMAP (+ CalDAV) or a Maildir.

    Passwords are sealed with the data directory's master key, never printed or logged."""
    from mailcrate.admin import mailbox as mb

    imap = imap_spec_from(values)
    caldav = caldav_spec_from(values)
    chosen = [x for x in (imap, maildir, embedded or None) if x]
    if len(chosen) > 1:
        raise click.UsageError("give one of --imap, --maildir, --embedded")
    if embedded and caldav is not None:
        raise click.UsageError(
            "the embedded store holds its own calendars; --caldav goes with --imap/--maildir"
        )
    if not chosen and caldav is None:
        raise click.UsageError("give --imap URL, --maildir PATH, --caldav URL or --embedded")
    spec = (
        None
        if embedded
        else SourceSpec(imap=imap, maildir=str(maildir.resolve()) if maildir else None, caldav=caldav)
    )
    folders = mb.check_source(spec) if (spec is not None and check) else None
    dd = mb.open_data_dir(_data_dir(data_dir), database_url)
    try:
        user = mb.bind(dd, organization_id, entity_id, spec)
    finally:
        dd.close()
    if output == "json":
        out = user.describe()
        if folders is not None:
            out["Folders"] = [{"folder": f, "count": n} for f, n in folders]
        click.echo(json.dumps(out, ensure_ascii=False, indent=2))
        return
    click.echo(
        f"{user.name} ({user.user_id}) now reads its mailbox from: {_describe_binding(user.describe())}"
    )
    for name, count in folders or []:
        click.echo(f"  {name}: {count}")


def _describe_binding(d: dict[str, Any]) -> str:
    b = d["Binding"]
    parts = []
    if "embedded" in b:
        parts.append(f"embedded store {b['embedded']}")
    if "imap" in b:
        i = b["imap"]
        who = f"{i['user']}*{i['master_user']}" if i.get("master_user") else i["user"]
        parts.append(f"IMAP {i['url']} as {who}")
    if "maildir" in b:
        parts.append(f"Maildir {b['maildir']}")
    if "caldav" in b:
        parts.append(f"CalDAV {b['caldav']['url']} as {b['caldav']['user']}")
    return ", ".join(parts)


@mailbox.command("show")
@settings_options("data_dir", "database_url")
@org_option
@entity_option
@output_option
@debug_option
def show_cmd(
    data_dir: Path | None, database_url: str | None, organization_id: str, entity_id: str, output: str
) -> None:
    """Show where a user's mailbox is read from (without secrets)."""
    from mailcrate.admin import mailbox as mb

    dd = mb.open_data_dir(_data_dir(data_dir), database_url)
    try:
        user = mb.find_user(dd, organization_id, entity_id)
    finally:
        dd.close()
    described = user.describe()
    if output == "json":
        click.echo(json.dumps(described, ensure_ascii=False, indent=2))
        return
    click.echo(f"user:    {user.name} ({user.user_id}) <{user.email or '-'}> {user.state}")
    click.echo(f"source:  {_describe_binding(described)}")
