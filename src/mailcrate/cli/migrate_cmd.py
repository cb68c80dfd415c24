"""``mailcrate migrate plan|run|status|report``: a whole WorkMail organization to an IMAP (+
CalDAV) server, verified and resumable (logic in :mod:`mailcrate.migrate`).

Passwords come from files or the environment only, never from the command line, and are
never printed or logged.
"""

from __future__ import annotations

import csv
import json
import os
import sys
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

import click

from mailcrate.admin.aws import AwsTarget, jsonable
from mailcrate.admin.errors import AdminError
from mailcrate.cli.errors import FriendlyGroup
from mailcrate.cli.export_cmd import aws_options
from mailcrate.cli.mailbox_cmd import org_option, read_secret

__all__ = ["migrate"]

_state_option = click.option(
    "--state",
    "state_path",
    type=click.Path(path_type=Path, dir_okay=False),
    default="mailcrate-migrate.sqlite",
    show_default=True,
    help="The migration's state file (one per organization; a rerun resumes from it).",
)


def _mapping_options(func: Any) -> Any:
    for option in reversed(
        [
            click.option(
                "--users-file",
                type=click.Path(path_type=Path, dir_okay=False, exists=True),
                help="Migrate only these users (one address, user name or id per line).",
            ),
            click.option(
                "--login-template",
                help="The target login of each address: {local}, {domain}, {address}, {name} "
                "(e.g. '{local}@new.example').",
            ),
            click.option(
                "--login-map",
                type=click.Path(path_type=Path, dir_okay=False, exists=True),
                help="CSV of address,login (takes precedence over --login-template).",
            ),
        ]
    ):
        func = option(func)
    return func


def _members(target: AwsTarget, organization_id: str, users_file: Path | None) -> list[Any]:
    from mailcrate.migrate.directory import list_members, read_users_file

    only = read_users_file(users_file) if users_file else None
    return list_members(target, organization_id, only)


def _print_json(value: Any) -> None:
    click.echo(json.dumps(jsonable(value), ensure_ascii=False, indent=2))


def _mailbox_mb(target: AwsTarget, organization_id: str, entity_id: str) -> float | None:
    from botocore.exceptions import ClientError

    try:
        out = target.client("workmail").get_mailbox_details(OrganizationId=organization_id, UserId=entity_id)
    except ClientError:
        return None
    return float(out.get("MailboxSize") or 0)


@click.group(cls=FriendlyGroup)
def migrate() -> None:
    """Move a whole WorkMail organization to an IMAP (+ CalDAV) server, verified and resumable."""


# ------------------------------------------------------------------------------ plan


@migrate.command("plan")
@org_option
@_mapping_options
@_state_option
@aws_options
def plan_cmd(
    target: AwsTarget,
    output: str,
    organization_id: str,
    users_file: Path | None,
    login_template: str | None,
    login_map: Path | None,
    state_path: Path,
) -> None:
    """A dry run: every user, its target login, its mailbox size and what `run` would do.

    Starts nothing and changes nothing (the state file is only read, when it exists)."""
    from mailcrate.admin.jobs import list_jobs
    from mailcrate.migrate.directory import LoginMap
    from mailcrate.migrate.exports import find_recent
    from mailcrate.migrate.state import MigrationState

    logins = LoginMap(login_template, login_map)
    members = _members(target, organization_id, users_file)
    state = MigrationState(state_path, organization_id, create=False) if state_path.exists() else None
    known = list(list_jobs(target, organization_id))
    rows = []
    for m in members:
        record = state.user(m.entity_id) if state else None
        login = logins.login_for(m) if not m.skip else None
        size = _mailbox_mb(target, organization_id, m.entity_id) if not m.skip else None
        if m.skip:
            action = f"skip: {m.skip}"
        elif login is None:
            action = "no target login in the login map: would fail"
        elif record is not None and record.phase == "done":
            action = f"done (round {record.round}); `run --delta` for what is new"
        else:
            recent = find_recent(target, organization_id, m.entity_id, known=known)
            action = (
                f"reuse export {recent['JobId'][:8]} ({recent['State']}, started {recent['StartTime']:%H:%M} UTC)"
                if recent
                else "export"
            ) + (f" (resume: {record.phase})" if record is not None else "")
        rows.append(
            {
                "user": m.label,
                "entityId": m.entity_id,
                "state": m.state,
                "login": login,
                "mailboxMB": size,
                "action": action,
            }
        )
    if output == "json":
        _print_json({"organizationId": organization_id, "users": rows})
        return
    total = sum(r["mailboxMB"] or 0 for r in rows)
    width = max([len(r["user"]) for r in rows] + [4])
    lwidth = max([len(r["login"] or "-") for r in rows] + [5])
    click.echo(f"{'user':<{width}}  {'login':<{lwidth}}  {'size MB':>9}  action")
    for r in rows:
        size = f"{r['mailboxMB']:.1f}" if r["mailboxMB"] is not None else "-"
        click.echo(f"{r['user']:<{width}}  {r['login'] or '-':<{lwidth}}  {size:>9}  {r['action']}")
    migrated = sum(1 for r in rows if not r["action"].startswith("skip"))
    click.echo(
        f"{len(rows)} users: {migrated} to migrate, {len(rows) - migrated} skipped; {total:.1f} MB in all"
    )


# ------------------------------------------------------------------------------ run


def _passwords_csv(path: Path | None) -> dict[str, str]:
    if path is None:
        return {}
    out = {}
    with path.open(newline="", encoding="utf-8") as fh:
        for row in csv.reader(fh):
            if len(row) >= 2 and row[0].strip() and not row[0].startswith("#"):
                out[row[0].strip()] = row[1]
    if not out:
        raise AdminError(f"{path} holds no login,password line", "one login,password per line")
    return out


def _target_options(func: Any) -> Any:
    file = click.Path(path_type=Path, dir_okay=False, exists=True)
    for option in reversed(
        [
            click.option(
                "--imap",
                "imap_url",
                metavar="URL",
                help="Target imaps://host[:port] or imap://.",
            ),
            click.option(
                "--imap-master-user", help="Master user (Dovecot: USER*MASTER with the master's password)."
            ),
            click.option(
                "--imap-password-file",
                type=file,
                help="The master's (or every login's) password, first line (else $MAILCRATE_IMAP_PASSWORD).",
            ),
            click.option(
                "--imap-passwords-csv", type=file, help="Without a master user: login,password per line."
            ),
            click.option(
                "--imap-auth", type=click.Choice(["login", "plain"]), default="login", show_default=True
            ),
            click.option("--imap-starttls", is_flag=True, help="Upgrade imap:// with STARTTLS."),
            click.option(
                "--imap-ca-file", type=click.Path(dir_okay=False, exists=True), help="Trust this CA too."
            ),
            click.option("--imap-insecure", is_flag=True, help="Do not check the TLS certificate."),
            click.option(
                "--imap-connections",
                type=click.IntRange(1, 8),
                default=1,
                show_default=True,
                help="IMAP connections per user.",
            ),
            click.option("--caldav", "caldav_url", metavar="URL", help="Target CalDAV server for calendars."),
            click.option(
                "--caldav-password-file",
                type=file,
                help="One CalDAV password for every login (else $MAILCRATE_CALDAV_PASSWORD).",
            ),
            click.option("--caldav-passwords-csv", type=file, help="CalDAV login,password per line."),
            click.option(
                "--caldav-ca-file", type=click.Path(dir_okay=False, exists=True), help="Trust this CA too."
            ),
            click.option(
                "--target-data-dir",
                type=click.Path(path_type=Path, file_okay=False, exists=True),
                help="Instead of --imap: a mailcrate data directory's embedded store.",
            ),
            click.option(
                "--target-database-url", help="With --target-data-dir: its database URL, if not SQLite."
            ),
            click.option(
                "--target-organization-id",
                help="With --target-data-dir: the organization whose users the logins name (id, name or address).",
            ),
            click.option(
                "--allow-plaintext", is_flag=True, help="Allow passwords in clear to a non-loopback host."
            ),
        ]
    ):
        func = option(func)
    return func


def _target_server(values: dict[str, Any]) -> Any:
    from mailcrate.migrate.transfer import TargetServer
    from mailcrate.network import is_loopback, url_host

    imap_url: str | None = values["imap_url"]
    if values["target_data_dir"] is not None:
        if imap_url or values["caldav_url"]:
            raise click.UsageError("give --imap (and --caldav) or --target-data-dir, not both")
        if not values["target_organization_id"]:
            raise click.UsageError("--target-data-dir needs --target-organization-id")
        return TargetServer(
            data_dir=values["target_data_dir"],
            database_url=values["target_database_url"],
            organization_id=values["target_organization_id"],
        )
    if not imap_url:
        raise click.UsageError("give the target: --imap URL (and --caldav URL), or --target-data-dir")
    for url, plain in (
        (imap_url, imap_url.startswith("imap://") and not values["imap_starttls"]),
        (values["caldav_url"] or "", (values["caldav_url"] or "").startswith("http://")),
    ):
        host = url_host(url) if url else None
        if plain and host and not is_loopback(host) and not values["allow_plaintext"]:
            raise click.UsageError(
                f"{url} would send passwords to {host} in clear; use TLS or --allow-plaintext"
            )
    passwords = _passwords_csv(values["imap_passwords_csv"])
    password = None
    if values["imap_master_user"] or not passwords:
        password = read_secret(values["imap_password_file"], "MAILCRATE_IMAP_PASSWORD", "IMAP")
    caldav_passwords = _passwords_csv(values["caldav_passwords_csv"])
    caldav_password = None
    if values["caldav_url"] and not caldav_passwords:
        caldav_password = read_secret(values["caldav_password_file"], "MAILCRATE_CALDAV_PASSWORD", "CalDAV")
    return TargetServer(
        imap_url=imap_url,
        master_user=values["imap_master_user"],
        password=password,
        passwords=passwords,
        auth=values["imap_auth"],
        starttls=values["imap_starttls"],
        ca_file=values["imap_ca_file"],
        verify=not values["imap_insecure"],
        caldav_url=values["caldav_url"],
        caldav_password=caldav_password,
        caldav_passwords=caldav_passwords,
        caldav_ca_file=values["caldav_ca_file"],
        imap_connections=values["imap_connections"],
    )


@migrate.command("run")
@org_option
@click.option("--bucket", required=True, help="S3 bucket of the exports (from `export setup`).")
@click.option("--prefix", required=True, help="S3 prefix of this migration's exports (one per migration).")
@click.option("--kms-key", required=True, help="KMS key ARN, id or alias the exports are encrypted with.")
@click.option("--role", required=True, help="Role ARN or name the exports assume to write the bucket.")
@_mapping_options
@_target_options
@_state_option
@click.option(
    "--delta", is_flag=True, help="After a complete run: restore only what is new since (24 h later)."
)
@click.option(
    "--parallel",
    type=click.IntRange(1, 10),
    default=4,
    show_default=True,
    help="Users downloaded and restored at once; meanwhile the exports of the next users run "
    "(up to 10 at once: WorkMail's limit per organization).",
)
@click.option(
    "--exports",
    "exports_at_once",
    type=click.IntRange(1, 10),
    default=10,
    show_default=True,
    help="Export jobs started at once, ahead of the restores (fewer leaves the organization's "
    "limit of 10 to other exports).",
)
@click.option(
    "--work-dir",
    type=click.Path(path_type=Path, file_okay=False),
    help="Where the downloaded zips go while restored, in a 0700 directory of this migration's own "
    "(default: the temp directory).",
)
@click.option("--keep", is_flag=True, help="Keep the downloaded zips (decrypted mail!) in --work-dir.")
@aws_options
def run_cmd(
    target: AwsTarget,
    output: str,
    organization_id: str,
    bucket: str,
    prefix: str,
    kms_key: str,
    role: str,
    users_file: Path | None,
    login_template: str | None,
    login_map: Path | None,
    state_path: Path,
    delta: bool,
    parallel: int,
    exports_at_once: int,
    work_dir: Path | None,
    keep: bool,
    **values: Any,
) -> None:
    """Export, verify and restore every user; rerun to resume (exit 1 unless everything arrived)."""
    from mailcrate.admin.jobs import resolve_key_arn, resolve_role_arn
    from mailcrate.admin.progress import stderr_console
    from mailcrate.malloc import (
        MIGRATE_MMAP_THRESHOLD,
        MIGRATE_TRIM_THRESHOLD,
        limit_arenas,
        map_large_blocks,
        start_trimmer,
    )
    from mailcrate.migrate import report
    from mailcrate.migrate.directory import LoginMap
    from mailcrate.migrate.exports import ExportSettings
    from mailcrate.migrate.progress import MigrateProgress
    from mailcrate.migrate.run import Migration, RunOptions, prepare
    from mailcrate.migrate.state import MigrationState
    from mailcrate.server.heap import freeze_startup_heap

    os.umask(0o077)  # every file this run writes (state, downloads) is the operator's alone
    # the threads' freed message bodies and MULTIAPPEND batches otherwise stay in an arena
    # each: ~80 MiB less at the peak with four restores at once (BENCHMARKS.md, migrate)
    limit_arenas()
    map_large_blocks(MIGRATE_MMAP_THRESHOLD, MIGRATE_TRIM_THRESHOLD)
    start_trimmer()
    server = _target_server(values)
    logins = LoginMap(login_template, login_map)
    state = MigrationState(state_path, organization_id)
    try:
        exports = ExportSettings(
            organization_id=organization_id,
            bucket=bucket,
            prefix=prefix,
            kms_key_arn=resolve_key_arn(target, kms_key),
            role_arn=resolve_role_arn(target, role),
            migration_id=state.migration_id,
        )
        members = _members(target, organization_id, users_file)
        # a directory of this migration's own under the one given: only it is ever removed
        work = (work_dir or Path(tempfile.gettempdir())) / f"mailcrate-migrate-{state.migration_id[:12]}"
        options = RunOptions(
            delta=delta, keep=keep, work_dir=work, parallel=parallel, exports=exports_at_once
        )
        console = stderr_console()
        todo = prepare(state, members, logins, delta=delta)
        if console.is_terminal:  # the overall bar's total, for its ETA
            sizes = [_mailbox_mb(target, organization_id, w.member.entity_id) or 0 for w in todo]
        else:
            sizes = []
        with MigrateProgress(console, int(sum(sizes) * 1024 * 1024), len(todo)) as progress:
            migration = Migration(target, state, exports, server, options, progress)
            # the modules and boto3's models, out of the cyclic GC's full passes (3.5 % of the
            # process's CPU at 512 MiB went to collections walking them)
            freeze_startup_heap()
            migration.run(todo)
        records = state.users()
    finally:
        state.close()
    _emit(records, output)
    if keep:
        click.echo(f"kept the downloaded exports in {work} (decrypted mail: remove them when done)", err=True)
    if not report.all_arrived(records):
        sys.exit(1)


def _emit(records: list[Any], output: str) -> None:
    from mailcrate.migrate import report

    if output == "json":
        _print_json(report.as_dict(records))
    elif output == "csv":
        click.echo(report.as_csv(records), nl=False)
    else:
        for line in report.as_table(records):
            click.echo(line)
        if not report.all_arrived(records):
            missing = [r for r in records if not r.arrived]
            click.secho(
                f"error: {len(missing)} user(s) did not arrive completely (listed above)", err=True, fg="red"
            )


# ------------------------------------------------------------------------------ status / report


@migrate.command("status")
@_state_option
@click.option("--output", type=click.Choice(["text", "json"]), default="text", show_default=True)
def status_cmd(state_path: Path, output: str) -> None:
    """Each user's phase from the state file (no network): pending, exporting, downloading,
    restoring, done, failed, waiting (a delta before the 24 hours), skipped."""
    from mailcrate.migrate.state import MigrationState

    state = MigrationState(state_path, create=False)
    try:
        records = state.users()
    finally:
        state.close()
    counts = Counter(r.phase for r in records)
    if output == "json":
        _print_json(
            {
                "organizationId": state.organization_id,
                "phases": dict(sorted(counts.items())),
                "users": [
                    {
                        "user": r.email or r.name,
                        "entityId": r.entity_id,
                        "state": r.phase,
                        "round": r.round,
                        "jobId": r.job_id,
                        "updated": r.updated,
                        "reason": r.reason,
                    }
                    for r in records
                ],
            }
        )
        return
    width = max([len(r.email or r.name) for r in records] + [4])
    for r in records:
        job = (r.job_id or "-")[:8]
        click.echo(
            f"{r.email or r.name:<{width}}  {r.phase:<11}  round {r.round}  job {job:<8}  {r.updated}  {r.reason}".rstrip()
        )
    click.echo(", ".join(f"{n} {phase}" for phase, n in sorted(counts.items())) or "no users yet")


@migrate.command("report")
@_state_option
@click.option("--output", type=click.Choice(["table", "json", "csv"]), default="table", show_default=True)
def report_cmd(state_path: Path, output: str) -> None:
    """Per user and in total: exported, verified, restored, already there, refused (with
    reasons). Exit 0 only when everything arrived."""
    from mailcrate.migrate import report
    from mailcrate.migrate.state import MigrationState

    state = MigrationState(state_path, create=False)
    try:
        records = state.users()
    finally:
        state.close()
    _emit(records, "text" if output == "table" else output)
    if not report.all_arrived(records):
        sys.exit(1)
