"""Resume an export from its last uploaded part instead of starting over.

An attempt that dies (kill -9, a lost lease, a transient fault) has uploaded parts 1..N of the
job's multipart upload. Where the destination keeps that upload across attempts (the embedded
S3, whose write guard lets only the attempt holding the job write to it), the next attempt
continues it: it uploads parts N+1.. and reads only the items from the one the archive was in
at the end of part N, not the whole mailbox again.

What that takes, recorded as a **checkpoint** once parts 1..N are uploaded and hashed:

* the parts' ETags and the SHA-384 state after part N (:mod:`mailcrate.export.resumable_hash`):
  the export log's hash goes on from there without the uploaded bytes;
* a :class:`Position` of the producer at or before the end ``P`` of part N, taken before an
  item (or before the manifest) at zip offset ``S <= P``: the zip writer's entry count and
  central-directory records, the manifest lines, the folder and the source id to continue
  ``items(after=)`` from, and the export's counters;
* the CRC-32 of the archive bytes ``[S, P)``: the resumed attempt writes the archive again from
  ``S`` and drops the bytes before ``P``, which it checks against that CRC. Deflate output is a
  function of its input, so they match unless the item changed since (a CalDAV event edited);
  then the checkpoint does not fit and the export starts over (:class:`ResumeMismatch`).

Checkpoints are stored per checkpoint as what changed since the previous one
(:mod:`mailcrate.jobs.checkpoints`), so each is small and written once, by the attempt holding
the job only.
"""

from __future__ import annotations

import collections
import hashlib
import json
import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import IO, Any

from mailcrate.export import deflate
from mailcrate.export.destination import TransientExportError
from mailcrate.export.zipstream import read_range
from mailcrate.jobs import checkpoints as stored
from mailcrate.mail.base import Folder

log = logging.getLogger("mailcrate.export")

#: Checkpoint states this code reads: a resumed attempt never trusts another layout.
VERSION = 1


class ResumeMismatch(TransientExportError):
    """The archive written again from the checkpoint differs from the uploaded bytes: the
    source changed since. The export starts over (a transient failure: the next attempt does)."""


def folders_digest(folders: list[Folder], upto: int) -> str:
    """Which folders, in which order, came before (and with) folder ``upto``: a resumed attempt
    continues only over the same folders as the uploaded parts were written from."""
    keys = [(f.kind, f.path) for f in folders[: upto + 1]]
    return hashlib.sha256(json.dumps(keys).encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class Position:
    """Where the producer stands before writing an item (or, with ``folder == len(folders)``,
    the manifest): everything a resumed attempt needs to write the rest of the archive."""

    offset: int  # zip bytes before it: its local header starts here
    entries: int  # zip entries before it
    central: int  # bytes of central-directory records before it
    manifest: int  # bytes of manifest lines before it
    folder: int  # its folder's index in the listing
    after: str | None  # the source id of its folder's previous item (``items(after=)``)
    seq: int  # items of its folder numbered before it (the zip names' counter)
    exported: int
    total_bytes: int
    skipped: int
    filled: tuple[int, ...]  # folders that listed an item before it
    items_done: int
    bytes_done: int


@dataclass(frozen=True, slots=True)
class ResumePoint:
    """A job's checkpoints put together: where its next attempt continues."""

    parts: int  # parts 1..parts are uploaded
    end: int  # archive bytes in them
    part_size: int  # the size of part parts+1 (part sizes grow in long exports)
    etags: list[str]
    hash_state: bytes
    tail_crc: int  # CRC-32 of the archive bytes [position.offset, end)
    position: Position
    folders: str  # folders_digest of the listing up to position.folder
    central: bytes
    manifest: bytes

    def fits(self, folders: list[Folder]) -> bool:
        return folders_digest(folders, self.position.folder) == self.folders


def load(db: Any, job_id: str, upload_id: str) -> ResumePoint | None:
    """The job's checkpoints of ``upload_id`` put together, or None when there are none or they
    do not chain (then the export starts over)."""
    return from_rows(stored.load(db, job_id, upload_id))


def from_rows(rows: list[stored.StoredCheckpoint]) -> ResumePoint | None:
    """Checkpoints, oldest first, put together (None when there are none or they do not chain)."""
    if not rows:
        return None
    etags: list[str] = []
    central, manifest = bytearray(), bytearray()
    previous = 0
    state: dict[str, Any] = {}
    for row in rows:
        state = json.loads(row.state)
        if state.get("version") != VERSION or state["from"] != previous or row.part_number != state["part"]:
            return None
        etags += state["etags"]
        central += row.central
        manifest += row.manifest
        previous = state["part"]
    position = Position(**{**state["position"], "filled": tuple(state["position"]["filled"])})
    if len(etags) != previous or len(central) != position.central or len(manifest) != position.manifest:
        return None
    return ResumePoint(
        parts=previous,
        end=state["end"],
        part_size=state["part_size"],
        etags=etags,
        hash_state=rows[-1].hash_state,
        tail_crc=state["tail_crc"],
        position=position,
        folders=state["folders"],
        central=bytes(central),
        manifest=bytes(manifest),
    )


class SkipToEnd:
    """The zip writer's ``write`` of a resumed attempt: the archive is written again from the
    checkpoint's position; the bytes up to the end of the uploaded parts are checked against
    the checkpoint's CRC and dropped, the rest go to ``write`` (the part sink)."""

    def __init__(self, write: Callable[[Any], object], point: ResumePoint) -> None:
        self._write = write
        self._left = point.end - point.position.offset
        self._expected = point.tail_crc
        self._crc = 0

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if self._left:
            view = memoryview(data)
            take = min(len(view), self._left)
            self._crc = deflate.crc32(view[:take], self._crc)
            self._left -= take
            if not self._left and self._crc != self._expected:
                raise ResumeMismatch("the mailbox changed since the uploaded parts were written")
            data = view[take:]
            if not len(data):
                return
        self._write(data)


class Checkpointer:
    """The producer's side: it is told each :class:`Position` (:meth:`before`), and whenever
    more parts are uploaded and hashed since the last checkpoint, it stores one at the latest
    position within them. ``save`` returns False once the attempt no longer holds the job
    (then no more checkpoints are taken: the attempt is stopping)."""

    def __init__(
        self,
        save: Callable[[stored.StoredCheckpoint], bool],
        *,
        uploader: Any,
        filler: Any,
        folders: list[Folder],
        start: ResumePoint | None = None,
    ) -> None:
        self._save = save
        self._uploader = uploader
        self._filler = filler
        filler.tracking = True  # the part ends' item offsets and CRCs
        self._writer: Any = None
        self._manifest: IO[bytes] | None = None
        self._folders = folders
        self._positions: collections.deque[Position] = collections.deque()
        self._part = start.parts if start else 0
        self._central = start.position.central if start else 0
        self._manifest_at = start.position.manifest if start else 0
        self._stopped = False
        self.saved = 0  # checkpoints stored by this attempt

    def attach(self, writer: Any, manifest: IO[bytes]) -> None:
        """The zip writer and the manifest spool the positions refer to."""
        self._writer, self._manifest = writer, manifest

    def before(self, position: Position) -> None:
        """The producer is about to write at ``position``."""
        self._filler.item_start = position.offset
        self._positions.append(position)
        if not self._stopped:
            self._take()

    def _take(self) -> None:
        durable = self._uploader.durable()
        if durable is None or durable[0] <= self._part:
            return
        part, hash_state, etags = durable
        boundary = self._filler.boundary(part)
        if boundary is None:
            return
        end, item_start, crc = boundary
        chosen = None
        while self._positions and self._positions[0].offset <= end:
            chosen = self._positions.popleft()
        if chosen is None:
            return
        self._positions.appendleft(chosen)  # it may serve the next checkpoint too
        if chosen.offset == end:
            crc = 0
        elif chosen.offset != item_start:
            return  # the part ended inside an item written before this position: not resumable here
        state = {
            "version": VERSION,
            "part": part,
            "from": self._part,
            "end": end,
            "part_size": self._filler.size_after(part),
            "etags": etags[self._part :],
            "tail_crc": crc,
            "position": asdict(chosen),
            "folders": folders_digest(self._folders, chosen.folder),
        }
        central = self._writer.central_bytes(self._central, chosen.central)
        assert self._manifest is not None
        manifest = read_range(self._manifest, self._manifest_at, chosen.manifest)
        row = stored.StoredCheckpoint(part, json.dumps(state), hash_state, central, manifest)
        try:
            saved = self._save(row)
        except Exception as exc:  # a checkpoint saves time later; failing to store one is no failure
            log.warning("export checkpoint after part %d not stored: %s", part, exc)
            return
        if not saved:
            self._stopped = True
            return
        self._part, self._central, self._manifest_at = part, chosen.central, chosen.manifest
        self._filler.forget_boundaries(part)
        self.saved += 1
