"""Provisioning of embedded mailboxes for registered users.

Delegates to the embedded mail store (:mod:`mailcrate.mail.store`) so the directory never writes
mail files itself; one seam because registering, deregistering and deleting an organization
all provision or remove mailboxes.
"""

from __future__ import annotations

import os
from pathlib import Path

from mailcrate.mail.store import create_mailbox, delete_mailbox


def create(root: Path) -> None:
    create_mailbox(root)


def delete(root: Path) -> None:
    delete_mailbox(root)


def size_bytes(root: Path) -> int:
    total = 0
    for directory, _subdirs, files in os.walk(root):
        for name in files:
            try:
                total += os.stat(os.path.join(directory, name)).st_size
            except FileNotFoundError:
                continue
    return total
