"""Mailboxes on the data directory: where a user's mail lives (embedded store or an external
source bound to it), and importing mail into the embedded store.

These work on the data directory directly (like ``mailcrate init``), not over the API: binding
stores credentials, which must never cross the wire or appear in a log. The binding is the
user's ``source_sealed`` column: the :class:`~mailcrate.mail.base.SourceSpec` as JSON, sealed with
the data directory's master key under the purpose the export worker opens it with.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import select, update

from mailcrate.admin.errors import AdminError
from mailcrate.datadir import DataDir, DataDirError
from mailcrate.mail.base import SourceError, SourceSpec, open_source
from mailcrate.mail.intake import ImportReport, import_paths
from mailcrate.services.workmail import users
from mailcrate.services.workmail.errors import EntityNotFound, MailboxOnAnotherNode
from mailcrate.storage.tables import organizations
from mailcrate.storage.tables import users as users_table

__all__ = [
    "SOURCE_PURPOSE",
    "MailboxUser",
    "bind",
    "check_source",
    "find_user",
    "import_mail",
    "open_data_dir",
]

#: Must match what the export worker opens the column with (mailcrate.export.job).
SOURCE_PURPOSE = "mailbox-source"


def open_data_dir(path: Path, database_url: str | None = None) -> DataDir:
    try:
        return DataDir.open(path, database_url=database_url)
    except DataDirError as exc:
        raise AdminError(str(exc), f"create it with: mailcrate init --data-dir {path}") from None


@dataclass(frozen=True)
class MailboxUser:
    organization_id: str
    user_id: str
    name: str
    email: str | None
    state: str
    root: Path
    spec: SourceSpec | None  # None: the embedded store

    def effective_spec(self) -> SourceSpec:
        return self.spec or SourceSpec(embedded=str(self.root), owner=self.email)

    def describe(self) -> dict[str, Any]:
        """The binding without secrets (``mailbox show``)."""
        source = self.effective_spec().describe()
        return {
            "OrganizationId": self.organization_id,
            "UserId": self.user_id,
            "Name": self.name,
            "Email": self.email,
            "State": self.state,
            "Source": "embedded" if self.spec is None else "external",
            "Binding": source,
        }


def find_user(data_dir: DataDir, organization_id: str, entity: str) -> MailboxUser:
    """A user by id, name or address, with its mailbox binding (secrets opened, never shown)."""
    with data_dir.db.read() as conn:
        org = conn.execute(
            select(organizations.c.state).where(organizations.c.organization_id == organization_id)
        ).first()
        if org is None:
            raise AdminError(
                f"organization {organization_id} not found in {data_dir.path}",
                "list organizations with: aws workmail list-organizations --endpoint-url ...",
            )
        try:
            user = users.resolve(conn, organization_id, entity, include_deleted=False)
        except EntityNotFound:
            raise AdminError(
                f"no user {entity} in organization {organization_id}",
                f"list users with: aws workmail list-users --organization-id {organization_id}",
            ) from None
        row = user.row
    spec = None
    if row.source_sealed:
        spec = SourceSpec.from_dict(json.loads(data_dir.secrets.open_text(row.source_sealed, SOURCE_PURPOSE)))
    return MailboxUser(
        organization_id=organization_id,
        user_id=row.user_id,
        name=row.name,
        email=row.email,
        state=row.state,
        root=data_dir.mailbox_root(organization_id, row.user_id),
        spec=spec,
    )


def _require_enabled(user: MailboxUser) -> None:
    if user.state != users.ENABLED:
        raise AdminError(
            f"user {user.name} has no mailbox (state {user.state})",
            f"register it first: aws workmail register-to-work-mail --organization-id {user.organization_id} "
            f"--entity-id {user.user_id} --email ADDRESS",
        )


def import_mail(
    data_dir: DataDir, organization_id: str, entity: str, paths: list[Path], folder: str | None
) -> tuple[MailboxUser, ImportReport]:
    """mbox / Maildir / .eml / .ics into the user's embedded mailbox (idempotent)."""
    user = find_user(data_dir, organization_id, entity)
    _require_enabled(user)
    for p in paths:
        if not p.exists():
            raise AdminError(
                f"{p}: no such file or directory", "give mbox files, Maildir trees, .eml or .ics files"
            )
    return user, import_paths(writable_root(data_dir, user), paths, folder)


def writable_root(data_dir: DataDir, user: MailboxUser) -> Path:
    """The user's embedded mailbox, to write mail into on this node: the first write makes this
    node's data directory its home; one that another node's holds is refused (its mail would be
    split, and that node's exports would miss what is written here)."""
    try:
        with data_dir.db.begin() as conn:
            users.claim_mailbox_home(conn, user.organization_id, user.user_id, data_dir.node_id)
    except MailboxOnAnotherNode as exc:
        raise AdminError(
            exc.message, "run this on the node that holds the mailbox, or share one data directory"
        ) from None
    return user.root


def check_source(spec: SourceSpec) -> list[tuple[str, int]]:
    """Open the source and list its folders with counts (``bind`` checks before storing)."""
    try:
        with open_source(spec, quick=True) as src:
            return [
                ("/".join(f.path) + (" (calendar)" if f.kind == "calendar" else ""), f.count)
                for f in src.folders()
            ]
    except SourceError as exc:
        raise AdminError(
            f"cannot read the mailbox source: {exc}", "fix the binding, or store it unchecked with --no-check"
        ) from None


def bind(data_dir: DataDir, organization_id: str, entity: str, spec: SourceSpec | None) -> MailboxUser:
    """Store (``spec``) or clear (None: back to the embedded store) the user's mailbox source."""
    user = find_user(data_dir, organization_id, entity)
    if spec is not None and spec.owner is None and user.email:
        spec = spec.with_owner(user.email)
    sealed = None if spec is None else data_dir.secrets.seal_text(json.dumps(spec.to_dict()), SOURCE_PURPOSE)
    with data_dir.db.begin() as conn:
        conn.execute(
            update(users_table)
            .where(users_table.c.user_id == user.user_id, users_table.c.organization_id == organization_id)
            .values(source_sealed=sealed)
        )
    return find_user(data_dir, organization_id, user.user_id)
