"""Several sources seen as one mailbox (e.g. mail over IMAP, calendars over CalDAV)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from mailcrate.mail.base import Folder, Item, MailboxSource, SourceBase, SourceError


class CompositeSource(SourceBase):
    """Concatenates the folders of its parts; each folder is read from the part that listed it."""

    def __init__(self, parts: Sequence[MailboxSource]) -> None:
        self._parts = list(parts)
        self._owner: dict[tuple[str, tuple[str, ...]], MailboxSource] = {}

    def folders(self) -> list[Folder]:
        result: list[Folder] = []
        self._owner.clear()
        for part in self._parts:
            for folder in part.folders():
                key = (folder.kind, folder.path)
                if key in self._owner:
                    raise SourceError(f"two sources both have the {folder.kind} folder {folder.path!r}")
                self._owner[key] = part
                result.append(folder)
        return result

    def items(self, folder: Folder, *, after: str | None = None) -> Iterator[Item]:
        if not self._owner:
            self.folders()
        part = self._owner.get((folder.kind, folder.path))
        if part is None:
            raise SourceError(f"no such {folder.kind} folder {folder.path!r}")
        return part.items(folder, after=after)

    def close(self) -> None:
        for part in self._parts:
            part.close()
