"""``mailcrate export ...``: mailbox export jobs from start to restore, for people and scripts.

AWS access uses boto3's standard credential chain (environment, profile, SSO, instance role)
plus ``--endpoint-url`` for ``mailcrate serve`` (omit it for Amazon WorkMail itself).
``--output json`` prints machine-readable results on stdout; progress and errors go to stderr.
"""

from __future__ import annotations

import contextlib
import json
import sys
from datetime import UTC
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from mailcrate.admin.aws import AwsTarget, jsonable
from mailcrate.admin.errors import AdminError
from mailcrate.admin.policies import DEFAULT_KEY_ALIAS, DEFAULT_POLICY_NAME, DEFAULT_ROLE_NAME
from mailcrate.cli.errors import FriendlyGroup, debug_option
from mailcrate.cli.mailbox_cmd import (
    caldav_spec_from,
    entity_option,
    imap_spec_from,
    org_option,
    output_option,
    source_options,
)
from mailcrate.cli.options import settings_options
from mailcrate.config import Settings

if TYPE_CHECKING:
    from mailcrate.admin.archive import ItemReport
    from mailcrate.export.verify import VerifyReport
    from mailcrate.mail.base import CalDavSpec, ImapSpec

# The admin modules (boto3, rich, zip reading) are imported inside the commands, so that other
# commands (``mailcrate serve``) start without them.

__all__ = ["export"]


def aws_options(func: Any) -> Any:
    """``--endpoint-url``, ``--region``, ``--profile``, ``--output``, ``--debug``; builds ``target``."""

    def callback(**kwargs: Any) -> Any:
        kwargs["target"] = AwsTarget(
            endpoint_url=kwargs.pop("endpoint_url"),
            region=kwargs.pop("region"),
            profile=kwargs.pop("profile"),
        )
        return func(**kwargs)

    callback.__name__ = func.__name__
    callback.__doc__ = func.__doc__
    for option in reversed(
        [
            click.option(
                "--endpoint-url",
                envvar="AWS_ENDPOINT_URL",
                show_envvar=True,
                help="mailcrate serve's URL (omit for Amazon WorkMail).",
            ),
            click.option(
                "--region", envvar=["AWS_REGION", "AWS_DEFAULT_REGION"], help="The organization's region."
            ),
            click.option(
                "--profile", envvar="AWS_PROFILE", help="AWS profile (standard credential chain otherwise)."
            ),
            output_option,
            debug_option,
        ]
    ):
        callback = option(callback)
    return callback


def _print_json(value: Any) -> None:
    click.echo(json.dumps(jsonable(value), ensure_ascii=False, indent=2))


@click.group(cls=FriendlyGroup)
def export() -> None:
    """Mailbox export jobs: set up, start, watch, download, verify, restore."""


# ------------------------------------------------------------------------------ jobs


def _wait(
    target: AwsTarget, organization_id: str, job_id: str, output: str, timeout: float | None, interval: float
) -> None:
    from mailcrate.admin import jobs
    from mailcrate.admin.progress import JobProgressView, stderr_console

    console = stderr_console()
    view = JobProgressView(console, job_id)
    with view:
        status = jobs.wait_job(
            target, organization_id, job_id, on_status=view.update, timeout=timeout, interval=interval
        )
    if output == "json":
        _print_json(status.job)
    else:
        view.final(status)
    code = jobs.exit_code_for(status.state)
    if code:
        sys.exit(code)


@export.command("start")
@org_option
@entity_option
@click.option("--bucket", required=True, help="S3 bucket for the export (in the organization's region).")
@click.option("--prefix", required=True, help="S3 prefix: the zip becomes PREFIX/JOB-ID.zip.")
@click.option("--kms-key", required=True, help="KMS key ARN, id or alias (symmetric) to encrypt with.")
@click.option("--role", required=True, help="Role ARN or name the export assumes to write the bucket.")
@click.option("--description", help="Job description.")
@click.option("--client-token", help="Idempotency token: the same token starts the job only once.")
@click.option("--wait", "wait_", is_flag=True, help="Wait for the job, with a progress bar.")
@click.option("--timeout", type=float, help="With --wait: give up after this many seconds (exit 5).")
@aws_options
def start_cmd(
    target: AwsTarget,
    output: str,
    organization_id: str,
    entity_id: str,
    bucket: str,
    prefix: str,
    kms_key: str,
    role: str,
    description: str | None,
    client_token: str | None,
    wait_: bool,
    timeout: float | None,
) -> None:
    """Start a mailbox export job (prints its JobId).

    Exit codes with --wait: 0 COMPLETED, 3 FAILED, 4 CANCELLED, 5 timeout."""
    from mailcrate.admin import jobs

    job_id = jobs.start_job(
        target,
        organization_id=organization_id,
        entity_id=entity_id,
        bucket=bucket,
        prefix=prefix,
        kms_key=kms_key,
        role=role,
        description=description,
        client_token=client_token,
    )
    if not wait_:
        if output == "json":
            _print_json({"JobId": job_id})
        else:
            click.echo(job_id)
        return
    click.echo(f"started export job {job_id}", err=True)
    _wait(target, organization_id, job_id, output, timeout, 0.5)


@export.command("wait")
@click.argument("job_id")
@org_option
@click.option("--timeout", type=float, help="Give up after this many seconds (exit 5).")
@click.option("--interval", type=float, default=0.5, show_default=True, help="Seconds between polls.")
@aws_options
def wait_cmd(
    target: AwsTarget, output: str, job_id: str, organization_id: str, timeout: float | None, interval: float
) -> None:
    """Wait for a job with a progress bar; exit 0 COMPLETED, 3 FAILED, 4 CANCELLED, 5 timeout."""
    _wait(target, organization_id, job_id, output, timeout, interval)


_DESCRIBE_ORDER = (
    "JobId",
    "State",
    "EstimatedProgress",
    "EntityId",
    "Description",
    "S3BucketName",
    "S3Prefix",
    "S3Path",
    "KmsKeyArn",
    "RoleArn",
    "StartTime",
    "EndTime",
    "ErrorInfo",
)


@export.command("describe")
@click.argument("job_id")
@org_option
@aws_options
def describe_cmd(target: AwsTarget, output: str, job_id: str, organization_id: str) -> None:
    """Show one export job."""
    from mailcrate.admin import jobs
    from mailcrate.admin.progress import format_elapsed

    job = jobs.describe_job(target, organization_id, job_id)
    if output == "json":
        _print_json(job)
        return
    shown = jsonable(job)
    keys = [k for k in _DESCRIBE_ORDER if k in shown] + sorted(k for k in shown if k not in _DESCRIBE_ORDER)
    for key in keys:
        click.echo(f"{key + ':':<19} {shown[key]}")
    if "StartTime" in job:
        click.echo(f"{'Elapsed:':<19} {format_elapsed(jobs.job_elapsed(job))}")


@export.command("list")
@org_option
@aws_options
def list_cmd(target: AwsTarget, output: str, organization_id: str) -> None:
    """List the organization's export jobs (a table; --output json for scripts)."""
    from mailcrate.admin import jobs
    from mailcrate.admin.progress import format_elapsed

    found = list(jobs.list_jobs(target, organization_id))
    if output == "json":
        _print_json({"Jobs": found})
        return
    header = ("JOB ID", "ENTITY", "STATE", "PROGRESS", "STARTED (UTC)", "ELAPSED", "S3 PATH")
    rows = [header]
    for job in found:
        start = job.get("StartTime")
        rows.append(
            (
                job["JobId"],
                job.get("EntityId", ""),
                job.get("State", ""),
                f"{job.get('EstimatedProgress', 0)}%",
                start.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S") if start else "",
                format_elapsed(jobs.job_elapsed(job)),
                f"s3://{job.get('S3BucketName', '')}/{job.get('S3Path', '')}",
            )
        )
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(header))]
    for row in rows:
        click.echo("  ".join(str(v).ljust(w) for v, w in zip(row, widths, strict=True)).rstrip())
    if not found:
        click.echo("(no export jobs)", err=True)


@export.command("cancel")
@click.argument("job_id")
@org_option
@aws_options
def cancel_cmd(target: AwsTarget, output: str, job_id: str, organization_id: str) -> None:
    """Cancel a running export job."""
    from mailcrate.admin import jobs

    job = jobs.cancel_job(target, organization_id, job_id)
    if output == "json":
        _print_json(job)
    else:
        click.echo(f"job {job_id}: {job.get('State')}")


# ------------------------------------------------------------------------------ setup


@export.command("setup")
@click.option("--bucket", required=True, help="Bucket to create or check (public access blocked).")
@click.option(
    "--prefix", required=True, help="S3 prefix the exports go under (the role may write only there)."
)
@click.option(
    "--kms-key", help=f"Key ARN, id or alias to check (default: {DEFAULT_KEY_ALIAS}, created if missing)."
)
@click.option("--role-name", default=DEFAULT_ROLE_NAME, show_default=True, help="Role to create or check.")
@click.option(
    "--policy-name", default=DEFAULT_POLICY_NAME, show_default=True, help="The role's inline policy."
)
@click.option("--check-only", is_flag=True, help="Create nothing; only report.")
@click.option(
    "--organization-id",
    envvar="MAILCRATE_ORGANIZATION_ID",
    help="Also check the organization is Active in this region (key and bucket must be in its region).",
)
@aws_options
def setup_cmd(
    target: AwsTarget,
    output: str,
    bucket: str,
    prefix: str,
    kms_key: str | None,
    role_name: str,
    policy_name: str,
    check_only: bool,
    organization_id: str | None,
) -> None:
    """Create or check the export prerequisites: KMS key, bucket, role and policies.

    Idempotent: what exists is checked and reported as already fine or wrong (with the command
    that fixes it), never changed; what is missing is created as the AWS procedure does."""
    from mailcrate.admin.setup import ensure_prerequisites

    result = ensure_prerequisites(
        target,
        bucket=bucket,
        prefix=prefix,
        kms_key=kms_key,
        role_name=role_name,
        policy_name=policy_name,
        organization_id=organization_id,
        create=not check_only,
    )
    if output == "json":
        _print_json(result.to_dict())
    else:
        labels = {"created": "created", "ok": "already fine", "wrong": "WRONG"}
        for check in result.checks:
            click.echo(f"{check.name:<24} {labels[check.status]:<13} {check.detail}")
            if check.fix:
                click.echo(f"{'':<24} fix: {check.fix}")
        if result.ok:
            endpoint = f" --endpoint-url {target.endpoint}" if target.endpoint else ""
            click.echo("\nready; start an export with:")
            click.echo(
                f"  mailcrate export start --organization-id {organization_id or 'ORG'} --entity-id USER --bucket {bucket} "
                f"--prefix {prefix} --kms-key {result.key_arn} --role {result.role_arn}{endpoint} --wait"
            )
    if not result.ok:
        sys.exit(1)


# ------------------------------------------------------------------------------ files


def _print_problems(report: VerifyReport) -> None:
    for problem in report.problems:
        click.echo(f"  {problem}", err=True)


def _verify_summary(report: VerifyReport) -> str:
    return (
        f"{report.items_checked} items, {report.total_bytes} bytes, zip {report.zip_size} bytes, "
        f"SHA-384 {report.sha384_hex[:16]}..."
    )


@export.command("download")
@click.argument("job_id")
@org_option
@click.option(
    "--to",
    "to",
    required=True,
    type=click.Path(path_type=Path, file_okay=False),
    help="Directory for JOB-ID.zip, JOB-ID.json and the unpacked JOB-ID/ tree.",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["maildir", "mbox"]),
    default="maildir",
    show_default=True,
    help="Unpack as a Maildir tree or one mbox per folder (calendar items: .ics files).",
)
@click.option("--no-unpack", is_flag=True, help="Download and verify only.")
@aws_options
def download_cmd(
    target: AwsTarget, output: str, job_id: str, organization_id: str, to: Path, fmt: str, no_unpack: bool
) -> None:
    """Download a completed export, verify it (log SHA-384, every manifest entry) and unpack it."""
    from mailcrate.admin.download import download_export
    from mailcrate.admin.progress import ByteProgress, stderr_console

    console = stderr_console()
    result = download_export(
        target,
        organization_id,
        job_id,
        to,
        fmt=fmt,
        unpack=not no_unpack,
        progress=lambda label, total: ByteProgress(console, label, total),
    )
    if output == "json":
        _print_json(result.to_dict())
    else:
        click.echo(f"downloaded {result.zip_path}" + (f" and {result.log_path}" if result.log_path else ""))
        if result.report.ok:
            click.echo(f"verified: {_verify_summary(result.report)}")
        if result.unpacked is not None:
            _print_item_report(result.unpacked, "unpacked")
    if not result.report.ok:
        click.secho(
            f"error: {result.zip_path} failed verification ({len(result.report.problems)} problems):",
            err=True,
            fg="red",
        )
        _print_problems(result.report)
        click.echo("hint: download it again; if it still fails, the stored export is damaged", err=True)
        sys.exit(1)


@export.command("verify")
@click.argument("zip_path", metavar="FILE.zip", type=click.Path(path_type=Path, dir_okay=False, exists=True))
@click.option(
    "--log",
    "log_path",
    type=click.Path(path_type=Path, dir_okay=False, exists=True),
    help="The export log (default: FILE.json beside the zip, when present).",
)
@output_option
@debug_option
def verify_cmd(zip_path: Path, log_path: Path | None, output: str) -> None:
    """Check a downloaded export: every manifest entry's size and SHA-256, the log's SHA-384.

    A zip without a manifest (not written by mailcrate) is checked as far as it can be, and
    the output says what could not be checked."""
    from mailcrate.admin.archive import verify_archive
    from mailcrate.admin.foreign import zip_without_manifest
    from mailcrate.export.verify import verify_without_manifest

    if log_path is None and zip_path.with_suffix(".json").is_file():
        log_path = zip_path.with_suffix(".json")
    if zip_without_manifest(zip_path):
        report = verify_without_manifest(zip_path, log_path)
    else:
        report = verify_archive(zip_path, log_path)
    if output == "json":
        _print_json(
            {
                "ok": report.ok,
                "zip": str(zip_path),
                "log": str(log_path) if log_path else None,
                "items": report.items_checked,
                "bytes": report.total_bytes,
                "sha384": report.sha384_hex,
                "problems": [{"entry": p.entry, "message": p.message} for p in report.problems],
                "manifest": not report.unchecked,
                "checked": report.checked,
                "unchecked": report.unchecked,
            }
        )
    elif report.ok and report.unchecked:
        click.echo(f"OK as far as it goes: {zip_path} has no manifest: {_verify_summary(report)}")
        for line in report.checked:
            click.echo(f"  checked: {line}")
        for line in report.unchecked:
            click.echo(f"  NOT checked: {line}")
    elif report.ok:
        checked = f" and {log_path.name}" if log_path else " (no export log given: SHA-384 unchecked)"
        click.echo(f"OK {zip_path}{checked}: {_verify_summary(report)}")
    else:
        click.secho(f"FAILED {zip_path}: {len(report.problems)} problem(s)", err=True, fg="red")
        _print_problems(report)
    if not report.ok:
        sys.exit(1)


def _print_item_report(report: ItemReport, done: str) -> None:
    """The reconciliation table; what did not arrive goes to stderr too, in red."""
    for line in report.table(done):
        click.echo(line)
    if not report.complete:
        missing = len(report.refused) + sum(report.not_restored.values()) + len(report.errors)
        click.secho(f"error: {missing} item(s) not {done} (listed above)", err=True, fg="red")


@export.command("restore")
@click.argument("zip_path", metavar="INPUT", type=click.Path(path_type=Path, exists=True))
@click.option(
    "--organization-id", envvar="MAILCRATE_ORGANIZATION_ID", help="Embedded target: the organization."
)
@click.option("--entity-id", help="Embedded target: the user (id, name or address).")
@settings_options("data_dir", "database_url")
@source_options
@click.option(
    "--log",
    "log_path",
    type=click.Path(path_type=Path, dir_okay=False, exists=True),
    help="Also check the zip against its export log before restoring.",
)
@output_option
@debug_option
def restore_cmd(
    zip_path: Path,
    organization_id: str | None,
    entity_id: str | None,
    data_dir: Path | None,
    database_url: str | None,
    log_path: Path | None,
    output: str,
    **values: Any,
) -> None:
    """Restore an export into a user's embedded mailbox, or over IMAP (and CalDAV).

    INPUT is an export zip; also a zip of messages without a manifest (other exporters: folders
    from its paths), an mbox file (Google Takeout's labels become folders) or a Maildir tree.

    The archive is verified as in `export verify`: over IMAP while it is read (each entry's
    SHA-256 before it is sent; a damaged entry stops the restore there), otherwise first.
    Re-running skips what is already there (the same bytes, one copy per copy in the archive),
    so an interrupted restore is resumed by running it again. A message the server refuses is
    named with the server's words and the rest goes on; the exit status is 1 when anything was
    not restored."""
    from mailcrate.admin.foreign import foreign_input

    imap = imap_spec_from(values)
    caldav = caldav_spec_from(values)
    embedded = bool(organization_id or entity_id)
    if embedded and imap is not None:
        raise click.UsageError(
            "restore into either an embedded mailbox (--organization-id/--entity-id) or --imap"
        )
    if embedded and not (organization_id and entity_id):
        raise click.UsageError("an embedded restore needs both --organization-id and --entity-id")
    if not embedded and imap is None and caldav is None:
        raise click.UsageError("give --organization-id and --entity-id, or --imap URL (and/or --caldav URL)")
    if log_path is None and zip_path.with_suffix(".json").is_file():
        log_path = zip_path.with_suffix(".json")
    foreign = foreign_input(zip_path)  # another exporter's zip, an mbox, a Maildir: packed
    with foreign or contextlib.nullcontext():
        if foreign is not None:
            zip_path, log_path = foreign.zip_path, None
        report = _restore(
            zip_path, log_path, imap, caldav, embedded, organization_id, entity_id, data_dir, database_url
        )
        if foreign is not None:
            report.not_restored.update(foreign.not_restored)
    if output == "json":
        _print_json(report.to_dict())
    else:
        _print_item_report(report, "restored")
    if not report.complete:
        sys.exit(1)


def _restore(
    zip_path: Path,
    log_path: Path | None,
    imap: ImapSpec | None,
    caldav: CalDavSpec | None,
    embedded: bool,
    organization_id: str | None,
    entity_id: str | None,
    data_dir: Path | None,
    database_url: str | None,
) -> ItemReport:
    """``export restore`` of one export zip (verified as it says) into its target."""
    from mailcrate.admin.archive import open_verified
    from mailcrate.admin.mailbox import find_user, open_data_dir, writable_root
    from mailcrate.admin.restore import (
        check_archive,
        restore_embedded,
        restore_imap,
        restore_remote_calendars,
    )

    # Embedded and CalDAV-only: the whole archive is verified first. Over IMAP only what needs
    # no entry's bytes is checked here, the rest in restore_imap's reads. Either way the restore
    # reads the zip as checked here (its central directory and manifest are not read again).
    checked = check_archive(zip_path, log_path) if imap is not None else open_verified(zip_path, log_path)
    with checked as archive:
        if embedded:
            if caldav is not None:
                raise click.UsageError(
                    "the embedded mailbox holds its own calendars; --caldav goes with --imap"
                )
            dd = open_data_dir(Settings(data_dir=data_dir).data_dir, database_url)
            try:
                user = find_user(dd, organization_id or "", entity_id or "")
                if user.state != "ENABLED":
                    raise AdminError(
                        f"user {user.name} has no mailbox (state {user.state})",
                        "register it to WorkMail first",
                    )
                root = writable_root(dd, user)
            finally:
                dd.close()
            report = restore_embedded(zip_path, root, archive=archive)
        elif imap is not None:
            report = restore_imap(zip_path, imap, caldav=caldav, log_path=log_path, archive=archive)
        else:
            assert caldav is not None
            report = restore_remote_calendars(zip_path, caldav, archive=archive)
    return report
