"""Who is migrated, and as whom: the organization's users (all pages), the ones left out with
a stated reason, an optional users file, and each address's login on the target server.

A login comes from a CSV (``address,login`` per line; a header line is allowed) or a template
with ``{local}`` (the part before ``@``), ``{domain}``, ``{address}`` and ``{name}`` (the
WorkMail user name), such as ``{local}@new.example``.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mailcrate.admin.aws import AwsTarget
from mailcrate.admin.errors import AdminError

__all__ = ["LoginMap", "Member", "list_members", "read_users_file"]

_PAGE = 100


@dataclass(frozen=True)
class Member:
    """One user of the organization: migrated (``skip`` empty) or not, and why."""

    entity_id: str
    name: str
    email: str
    state: str
    skip: str = ""

    @property
    def label(self) -> str:
        return self.email or self.name


def _users(target: AwsTarget, organization_id: str) -> Iterator[dict[str, Any]]:
    wm = target.client("workmail")
    token: str | None = None
    while True:
        args: dict[str, Any] = {"OrganizationId": organization_id, "MaxResults": _PAGE}
        if token:
            args["NextToken"] = token
        page = wm.list_users(**args)
        yield from page.get("Users", [])
        token = page.get("NextToken")
        if not token:
            return


def _skip_reason(user: dict[str, Any]) -> str:
    """Why a user has no mailbox to export (WorkMail refuses those exports), or ''."""
    state = user.get("State", "")
    if user.get("UserRole") == "SYSTEM_USER":
        return "WorkMail's system user (no mailbox of a person)"
    if state == "DELETED":
        return "deleted"
    if state != "ENABLED":
        if not user.get("Email"):
            return "not registered to WorkMail (no mailbox)"
        return f"disabled (state {state}): enable it in WorkMail to migrate its mailbox"
    return ""


def list_members(target: AwsTarget, organization_id: str, only: set[str] | None = None) -> list[Member]:
    """Every user of the organization (paged through ListUsers), each with a skip reason or
    none. ``only``: addresses, user names or ids from a users file; the others are left out
    of the result, and a name in it that matches nobody is an error (a typo would otherwise
    go unnoticed)."""
    members: list[Member] = []
    matched: set[str] = set()
    for user in _users(target, organization_id):
        keys = {user.get("Id", ""), user.get("Name", ""), (user.get("Email") or "").lower()}
        if only is not None:
            hit = keys & only
            if not hit:
                continue
            matched |= hit
        members.append(
            Member(
                entity_id=user["Id"],
                name=user.get("Name", ""),
                email=user.get("Email") or "",
                state=user.get("State", ""),
                skip=_skip_reason(user),
            )
        )
    if only is not None and only - matched:
        missing = sorted(only - matched)
        raise AdminError(
            f"the users file names {len(missing)} user(s) the organization does not have: "
            + ", ".join(missing[:5])
            + (" ..." if len(missing) > 5 else ""),
            "check the users file (one address, user name or id per line)",
        )
    members.sort(key=lambda m: (m.email or "~", m.name))
    return members


def read_users_file(path: Path) -> set[str]:
    """One address, user name or user id per line; blank lines and ``#`` comments ignored."""
    out = set()
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            out.add(line.lower() if "@" in line else line)
    if not out:
        raise AdminError(f"{path} names no user", "one address, user name or id per line")
    return out


class LoginMap:
    """An address's login on the target: from a CSV, else from a template."""

    def __init__(self, template: str | None = None, csv_path: Path | None = None) -> None:
        if not template and csv_path is None:
            raise AdminError(
                "no target login mapping",
                "pass --login-template '{local}@new.example' or --login-map FILE.csv",
            )
        self.template = template
        self.table: dict[str, str] = {}
        if csv_path is not None:
            with csv_path.open(newline="", encoding="utf-8") as fh:
                for n, row in enumerate(csv.reader(fh), 1):
                    if not row or not row[0].strip() or row[0].strip().startswith("#"):
                        continue
                    if len(row) < 2 or not row[1].strip():
                        if n == 1:
                            continue
                        raise AdminError(f"{csv_path} line {n}: no login", "each line: address,login")
                    if n == 1 and "@" not in row[0]:
                        continue  # a header line
                    self.table[row[0].strip().lower()] = row[1].strip()
        if template:
            try:
                template.format(local="x", domain="y", address="x@y", name="x")
            except (KeyError, IndexError, ValueError) as exc:
                raise AdminError(
                    f"bad --login-template {template!r}: {exc}",
                    "use {local}, {domain}, {address} and {name}, e.g. '{local}@new.example'",
                ) from None

    def login_for(self, member: Member) -> str | None:
        """The target login, or None when the CSV has no line for the address (and no template)."""
        found = self.table.get(member.email.lower())
        if found:
            return found
        if not self.template:
            return None
        local, _, domain = member.email.partition("@")
        return self.template.format(local=local, domain=domain, address=member.email, name=member.name)
