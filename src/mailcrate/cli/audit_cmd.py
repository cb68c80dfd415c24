"""``mailcrate audit``: the audit trail as a table (or ``--output json``).

With ``--data-dir`` it reads the database directly: the operator's view, every account unless
``--account-id`` names one. With ``--endpoint-url`` it asks CloudTrail's LookupEvents as the
caller (only that account's events, and only with ``cloudtrail:LookupEvents``), so it works the
same against mailcrate and AWS.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import click

from mailcrate.cli.errors import FriendlyCommand
from mailcrate.cli.mailbox_cmd import output_option
from mailcrate.cli.options import build_settings, settings_options
from mailcrate.services.cloudtrail.lookup import ATTRIBUTES

_WHEN = click.DateTime(["%Y-%m-%d", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M:%SZ"])


def _utc(value: datetime | None) -> datetime | None:
    return None if value is None else value.replace(tzinfo=value.tzinfo or UTC)


def _from_database(values: dict[str, Any], query_args: dict[str, Any], limit: int) -> list[dict[str, Any]]:
    from mailcrate.datadir import DataDir, DataDirError
    from mailcrate.services.cloudtrail import lookup

    settings = build_settings(values)
    try:
        directory = DataDir.open(settings.data_dir, database_url=settings.database_url)
    except DataDirError as exc:
        raise click.ClickException(str(exc)) from None
    events: list[dict[str, Any]] = []
    token = None
    try:
        query = lookup.Query(**query_args)
        with directory.db.read() as conn:
            while len(events) < limit:
                page, token = lookup.page(conn, query, min(50, limit - len(events)), token)
                events.extend(page)
                if token is None:
                    break
    finally:
        directory.close()
    return events


def _from_api(
    endpoint_url: str, region: str | None, query_args: dict[str, Any], limit: int
) -> list[dict[str, Any]]:
    from mailcrate.admin.aws import AwsTarget

    client = AwsTarget(endpoint_url=endpoint_url, region=region).client("cloudtrail")
    kwargs: dict[str, Any] = {}
    if query_args["attribute"]:
        key, value = query_args["attribute"]
        kwargs["LookupAttributes"] = [{"AttributeKey": key, "AttributeValue": value}]
    for name, arg in (("StartTime", "start"), ("EndTime", "end")):
        if query_args[arg] is not None:
            kwargs[name] = query_args[arg]
    events: list[dict[str, Any]] = []
    for page in client.get_paginator("lookup_events").paginate(**kwargs):
        events.extend(page["Events"])
        if len(events) >= limit:
            break
    return events[:limit]


def _row(event: dict[str, Any]) -> tuple[str, ...]:
    record = json.loads(event["CloudTrailEvent"])
    who = record["userIdentity"].get("arn") or record["userIdentity"].get("invokedBy", "")
    names = [r.get("ARN") or r.get("resourceName", "") for r in record.get("resources", [])]
    return (
        record["eventTime"],
        record.get("recipientAccountId", ""),
        record["eventName"],
        who,
        record.get("sourceIPAddress", ""),
        record.get("errorCode") or "ok",
        ", ".join(n.removeprefix("arn:aws:s3:::") for n in names[:3]) + (" …" if len(names) > 3 else ""),
    )


@click.command("audit", cls=FriendlyCommand)
@settings_options("data_dir", "database_url")
@click.option("--endpoint-url", help="Ask a server's CloudTrail LookupEvents instead of reading --data-dir.")
@click.option("--region", envvar=["AWS_REGION", "AWS_DEFAULT_REGION"], help="Region (with --endpoint-url).")
@click.option("--account-id", help="Only this account's events (with --data-dir; default: every account).")
@click.option(
    "--lookup",
    metavar="KEY=VALUE",
    help=f"One CloudTrail lookup attribute: {', '.join(ATTRIBUTES)} (e.g. EventName=StartMailboxExportJob).",
)
@click.option("--start-time", type=_WHEN, help="Events at or after this time (UTC).")
@click.option("--end-time", type=_WHEN, help="Events at or before this time (UTC).")
@click.option("--max-items", type=click.IntRange(1), default=200, show_default=True, help="Events to show.")
@output_option
def audit(
    endpoint_url: str | None,
    region: str | None,
    account_id: str | None,
    lookup: str | None,
    start_time: datetime | None,
    end_time: datetime | None,
    max_items: int,
    output: str,
    **values: Any,
) -> None:
    """Who changed what, who read which export, what each export job did (newest first)."""
    attribute = None
    if lookup:
        key, sep, value = lookup.partition("=")
        if not sep or key not in ATTRIBUTES or not value:
            raise click.UsageError(f"--lookup takes KEY=VALUE with KEY one of {', '.join(ATTRIBUTES)}")
        attribute = (key, value)
    query_args = {"attribute": attribute, "start": _utc(start_time), "end": _utc(end_time)}
    if endpoint_url:
        events = _from_api(endpoint_url, region, query_args, max_items)
    else:
        events = _from_database(values, {"account_id": account_id, **query_args}, max_items)
    if output == "json":
        click.echo(
            json.dumps([json.loads(e["CloudTrailEvent"]) for e in events], ensure_ascii=False, indent=2)
        )
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(box=None, header_style="bold")
    for title in ("TIME (UTC)", "ACCOUNT", "EVENT", "WHO", "SOURCE IP", "OUTCOME", "RESOURCES"):
        table.add_column(title, overflow="fold")
    for event in events:
        table.add_row(*_row(event))
    Console(width=200 if not click.get_text_stream("stdout").isatty() else None).print(table)
    if not events:
        click.echo("(no audit events)", err=True)
