"""Items a source lists but an export does not carry (tasks, journals, free/busy, availability).

The export pipeline counts an item whose content cannot be read as non-exportable
(``totalNonExportableItems`` in the export log) instead of failing the export; such an item is
exactly that, so a source yields one of these for every object it will not export. The count
in the log then says what the mailbox held beyond what the zip holds.
"""

from __future__ import annotations

from collections.abc import Iterator

from mailcrate.mail.base import Folder, Item, SourceError

__all__ = ["not_exportable"]


def not_exportable(folder: Folder, source_id: str, what: str) -> Item:
    """An item of ``folder`` that is counted, not exported; ``what`` names it (``VTODO``)."""

    def reader() -> Iterator[bytes]:
        raise SourceError(f"{what} is not exported (exports carry events)")

    return Item(folder, source_id, 0, None, (), "calendar", reader)
