"""Provisioning of embedded mailboxes for registered users.

Delegates to the embedded mail store (:mod:`mailcrate.mail.store`) so the directory never writes
mail files itself; kept as one seam because registering, deregistering and deleting an
organization all provision or remove mailboxes.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path


def create(root: Path) -> None:
    try:
        from mailcrate.mail.store import create_mailbox
    except ImportError:  # the store lands separately; until then a private directory is the mailbox
        root.mkdir(parents=True, exist_ok=True, mode=0o700)
        return
    create_mailbox(root)


def delete(root: Path) -> None:
    try:
        from mailcrate.mail.store import delete_mailbox
    except ImportError:
        shutil.rmtree(root, ignore_errors=True)
        return
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
