"""One user's export from S3 into the target: download, verify, restore, with figures.

The zip and its export log are fetched with the operator's credentials into a private
directory (0700; files 0600: S3 hands out the decrypted bytes) and removed by the caller after
the restore unless ``--keep``. Verification is ``export verify``'s: the zip's SHA-384 against
the log and every item's size and SHA-256 against the manifest; on a first round the restore
does the per-item checks as it reads (:func:`mailcrate.admin.restore.restore_imap`), on a delta
the whole archive is checked first (the items not sent are checked too).

The restore is the lossless one: content identity makes a rerun after a crash append nothing
twice. A delta sends only the items beyond what the previous round's export held, counted as
a multiset per (kind, folder, SHA-256), so mail the user deleted or moved in the target since
the switch is not brought back.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

from mailcrate.admin.archive import ItemReport, open_verified
from mailcrate.admin.aws import AwsTarget, error_code
from mailcrate.admin.download import log_key_for
from mailcrate.admin.errors import AdminError
from mailcrate.admin.fetch import download_object
from mailcrate.admin.restore import (
    BATCH_BYTES,
    READ_AHEAD_BYTES,
    check_archive,
    restore_embedded,
    restore_imap,
)
from mailcrate.export.manifest import ManifestItem
from mailcrate.mail.base import CalDavSpec, ImapSpec
from mailcrate.migrate.state import Figures, Identity

__all__ = ["TargetServer", "fetch_export", "restore_buffers", "restore_user"]

#: Bytes the restores of one ``migrate run`` read ahead of their appends, all of them together,
#: and of their MULTIAPPEND batches: each of ``--parallel`` restores gets its share, at most a
#: lone restore's (:func:`mailcrate.admin.restore.restore_imap`: 8 MiB, 2 MiB batches). Items
#: larger than a restore's read-ahead go one at a time in the process (``big_items_alone``):
#: the benchmark's mail has attachments up to 20 MB, and four restores each holding such a
#: message (read, inflated, in a batch in flight) made most of the process's peak. Smaller
#: batches (1 MiB at four restores) cost the target Dovecot CPU: one transaction per batch.
READ_AHEAD_BUDGET = 16 << 20
BATCH_BUDGET = 8 << 20


@dataclass(frozen=True)
class TargetServer:
    """Where the organization moves: an IMAP (+ CalDAV) server, or (``data_dir`` and
    ``organization_id``) an organization in a mailcrate data directory's embedded store, whose
    users the logins name (id, user name or address). Passwords come from files or the
    environment (the CLI reads them); ``password``: one for every login (a master user's),
    ``passwords``: per login."""

    imap_url: str = ""
    master_user: str | None = None
    password: str | None = field(default=None, repr=False)
    passwords: dict[str, str] = field(default_factory=dict, repr=False)
    auth: str = "login"
    starttls: bool = False
    ca_file: str | None = None
    verify: bool = True
    caldav_url: str | None = None
    caldav_password: str | None = field(default=None, repr=False)
    caldav_passwords: dict[str, str] = field(default_factory=dict, repr=False)
    caldav_ca_file: str | None = None
    imap_connections: int = 1
    data_dir: Path | None = None
    database_url: str | None = None
    organization_id: str | None = None

    @property
    def destination(self) -> str:
        return f"{self.data_dir} organization {self.organization_id}" if self.data_dir else self.imap_url

    def embedded_root(self, login: str) -> Path:
        """The embedded mailbox of the target user named ``login`` (made this node's)."""
        from mailcrate.admin.mailbox import find_user, open_data_dir, writable_root

        assert self.data_dir is not None and self.organization_id is not None
        dd = open_data_dir(self.data_dir, self.database_url)
        try:
            user = find_user(dd, self.organization_id, login)
            if user.state != "ENABLED":
                raise AdminError(
                    f"target user {login} has no mailbox (state {user.state})",
                    "register it to WorkMail first",
                )
            return writable_root(dd, user)
        finally:
            dd.close()

    def imap_spec(self, login: str) -> ImapSpec:
        password = self.password if self.master_user else self.passwords.get(login, self.password)
        if password is None:
            raise AdminError(f"no IMAP password for {login}", "add it to the passwords file")
        return ImapSpec(
            url=self.imap_url,
            user=login,
            password=password,
            master_user=self.master_user,
            auth=self.auth,  # type: ignore[arg-type]
            starttls=self.starttls,
            ca_file=self.ca_file,
            verify=self.verify,
        )

    def caldav_spec(self, login: str) -> CalDavSpec | None:
        if not self.caldav_url:
            return None
        password = self.caldav_passwords.get(login, self.caldav_password)
        if password is None:
            raise AdminError(f"no CalDAV password for {login}", "add it to the CalDAV passwords file")
        return CalDavSpec(url=self.caldav_url, user=login, password=password, ca_file=self.caldav_ca_file)


def fetch_export(
    target: AwsTarget,
    job: dict[str, Any],
    into: Path,
    on_bytes: Callable[[int], None] = lambda _n: None,
    client: Any = None,
) -> tuple[Path, Path | None]:
    """The job's zip and export log into ``into`` (made 0700; files 0600). ``client``: an S3
    client to reuse."""
    into.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(into, 0o700)
    bucket, key, job_id = job["S3BucketName"], job["S3Path"], job["JobId"]
    s3 = client or target.client("s3")
    zip_path = into / f"{job_id}.zip"
    part = into / f"{job_id}.zip.part"
    part.unlink(missing_ok=True)
    try:
        download_object(s3, bucket, key, part, on_bytes=on_bytes)  # 0600 before any byte
        os.replace(part, zip_path)
    except ClientError as exc:
        if error_code(exc) in ("404", "NoSuchKey", "NotFound"):
            raise AdminError(
                f"s3://{bucket}/{key} is gone (job {job_id})", "run again: a new export"
            ) from None
        raise
    finally:
        part.unlink(missing_ok=True)
    log_path: Path | None = into / f"{job_id}.json"
    try:
        body = s3.get_object(Bucket=bucket, Key=log_key_for(key))["Body"].read()
        fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # type: ignore[arg-type]
        with os.fdopen(fd, "wb") as fh:
            fh.write(body)
    except ClientError as exc:
        if error_code(exc) not in ("404", "NoSuchKey", "NotFound"):
            raise
        log_path = None
    if log_path is None:
        raise AdminError(
            f"the export log of job {job_id} is missing: the zip's SHA-384 cannot be checked",
            "run again: a new export is started when this one is older than 24 hours",
        )
    return zip_path, log_path


def restore_buffers(parallel: int) -> tuple[int, int]:
    """(read-ahead bytes, MULTIAPPEND batch bytes) of one of ``parallel`` restores at once."""
    share = max(1, parallel)
    return (
        min(READ_AHEAD_BYTES, max(1 << 20, READ_AHEAD_BUDGET // share)),
        min(BATCH_BYTES, max(256 << 10, BATCH_BUDGET // share)),
    )


def identity(item: ManifestItem) -> Identity:
    return (item.kind, tuple(item.folder), item.sha256)


def restore_user(
    zip_path: Path,
    log_path: Path | None,
    server: TargetServer,
    login: str,
    *,
    previous: Counter[Identity] | None = None,
    on_item: Callable[[int], None] = lambda _n: None,
    on_total: Callable[[int], None] = lambda _n: None,
    parallel: int = 1,
) -> tuple[Figures, list[Identity]]:
    """Restore one user's export; its figures and the identities of the items now in the
    target (refused ones and calendar items without CalDAV left out, so that a delta tries
    them again). ``previous``: a delta (what the last round's export held), else None.
    ``parallel``: restores running at once in this process (their buffers share
    :data:`READ_AHEAD_BUDGET` and :data:`BATCH_BUDGET`)."""
    embedded = server.data_dir is not None
    imap = None if embedded else server.imap_spec(login)
    root = server.embedded_root(login) if embedded else None
    figures = Figures()
    # over IMAP the restore checks each item as it reads it; otherwise all is checked first
    quick = previous is None and not embedded
    archive = check_archive(zip_path, log_path) if quick else open_verified(zip_path, log_path)
    with archive:
        items = list(archive.items())
        # CalDAV only for a user with calendar items: every WorkMail mailbox has an (often
        # empty) default calendar, not worth a CalDAV account that may not exist
        has_calendar = any(i.kind == "calendar" for i in items)
        caldav = server.caldav_spec(login) if has_calendar and not embedded else None
        held = [identity(i) for i in items]
        figures.exported_items = figures.verified_items = len(items)
        figures.exported_bytes = figures.verified_bytes = sum(i.size for i in items)
        if previous is not None:
            remaining = Counter(previous)

            def new(item: ManifestItem) -> bool:
                key = identity(item)
                if remaining[key] > 0:
                    remaining[key] -= 1
                    figures.unchanged_items += 1
                    figures.unchanged_bytes += item.size
                    return False
                return True

            archive.keep_only(new)
        on_total(figures.exported_bytes - figures.unchanged_bytes)
        report = ItemReport(destination=server.destination)
        sizes: dict[str, int] = {}
        seen = {"already": 0, "not": 0}

        def tick(item: ManifestItem) -> None:
            sizes[item.zip_path] = item.size
            already, not_restored = report.skipped, sum(report.not_restored.values())
            if already > seen["already"]:
                figures.already_bytes += item.size
            elif not_restored == seen["not"]:
                figures.restored_bytes += item.size  # refusals are taken back below
            seen["already"], seen["not"] = already, not_restored
            on_item(item.size)

        if root is not None:
            restore_embedded(zip_path, root, tick=tick, archive=archive, report=report)
        else:
            assert imap is not None
            read_ahead, batch = restore_buffers(parallel)
            restore_imap(
                zip_path,
                imap,
                caldav=caldav,
                tick=tick,
                log_path=log_path,
                archive=archive,
                report=report,
                imap_connections=server.imap_connections,
                read_ahead_bytes=read_ahead,
                batch_bytes=batch,
                big_items_alone=read_ahead if parallel > 1 else None,
            )
    refused = report.refused
    # what did not arrive is not "held": a delta sends it again (and names it again if refused)
    missing = {r.item for r in refused}
    held = [
        key
        for item, key in zip(items, held, strict=True)
        if item.zip_path not in missing and (embedded or caldav is not None or item.kind != "calendar")
    ]
    figures.refused = [{"item": r.item, "reason": r.reason} for r in refused]
    figures.restored_bytes -= sum(sizes.get(r.item, 0) for r in refused)
    figures.restored_items = report.done
    figures.already_items = report.skipped
    figures.not_restored = dict(report.not_restored)
    figures.folders = [
        *({"folder": list(k), **t.to_dict()} for k, t in report.mail.items()),
        *({"calendar": k, **t.to_dict()} for k, t in report.calendars.items()),
    ]
    return figures, held
