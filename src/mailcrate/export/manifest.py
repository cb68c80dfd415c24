"""The export manifest (``manifest.jsonl``, last entry of the zip) and the export log.

Why a manifest: WorkMail's own export zip carries no index, so a consumer cannot tell a
complete archive from a truncated one, nor map a zip path back to its folder and source
message. mailcrate adds one JSON line per item (original folder names, source id, size,
SHA-256, IMAP internal date and flags) so ``mailcrate export verify`` and ``restore`` work
from the archive alone. It is streamed (``manifest_lines`` / ``iter_manifest``) because a
large mailbox has hundreds of thousands of items.

Why the log looks odd: WorkMail writes ``<S3Prefix>/<JobId>.json`` with *every* value as a
string, times in epoch milliseconds; clients parse it that way, so it is mirrored exactly.

Times in the manifest are ISO 8601 UTC with a ``Z`` suffix (microseconds only when non-zero),
naive datetimes being taken as UTC.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, cast

from mailcrate.export.names import ItemKind
from mailcrate.jobs.records import export_log_key, export_zip_key  # the S3Path contract

__all__ = [
    "MANIFEST_FORMAT",
    "MANIFEST_NAME",
    "ExportLog",
    "Manifest",
    "ManifestError",
    "ManifestHeader",
    "ManifestItem",
    "epoch_ms",
    "export_log_key",
    "export_zip_key",
    "format_time",
    "iter_manifest",
    "manifest_lines",
    "parse_time",
]

MANIFEST_FORMAT = "mailcrate-export/1"
MANIFEST_NAME = "manifest.jsonl"
_KINDS = ("mail", "calendar")


class ManifestError(ValueError):
    """A manifest or export log that does not follow the format (message names the line)."""


def format_time(value: datetime) -> str:
    """ISO 8601 UTC with ``Z`` (naive = UTC)."""
    utc = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    return utc.replace(tzinfo=None).isoformat() + "Z"


def parse_time(text: str) -> datetime:
    """Inverse of :func:`format_time` (accepts any ISO 8601 with an offset); returns UTC."""
    value = datetime.fromisoformat(text)
    if value.tzinfo is None:
        raise ValueError(f"time without a UTC offset: {text!r}")
    return value.astimezone(UTC)


def epoch_ms(value: datetime) -> int:
    """Epoch milliseconds of a datetime (naive = UTC), as the export log stores times."""
    utc = value.replace(tzinfo=UTC) if value.tzinfo is None else value
    return int(utc.timestamp() * 1000)


#: One encoder for every line (``json.dumps`` with options builds a new one per call: a line
#: per exported item, ~6,600 per GiB).
_ENCODE = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


def _dumps(obj: dict[str, Any]) -> bytes:
    """One compact JSON line. Readable UTF-8, except that lone surrogates (possible in
    undecodable folder names) fall back to ``\\u`` escapes, which are still valid JSON."""
    try:
        return _ENCODE(obj).encode("utf-8") + b"\n"
    except UnicodeEncodeError:
        return json.dumps(obj, ensure_ascii=True, separators=(",", ":")).encode("ascii") + b"\n"


@dataclass(frozen=True, slots=True)
class ManifestHeader:
    """Line 1 of the manifest."""

    job_id: str
    organization_id: str
    entity_id: str
    start_time: datetime
    format: str = MANIFEST_FORMAT
    #: folders (kind, original path) the export holds no item of, so that restore and unpack
    #: recreate them; ``emptyFolders`` in JSON (absent in older manifests: none recorded)
    empty_folders: tuple[tuple[ItemKind, tuple[str, ...]], ...] = ()

    def to_json_line(self) -> bytes:
        line: dict[str, Any] = {
            "format": self.format,
            "jobId": self.job_id,
            "organizationId": self.organization_id,
            "entityId": self.entity_id,
            "startTime": format_time(self.start_time),
        }
        if self.empty_folders:  # only then: a manifest without any is the same bytes as before
            line["emptyFolders"] = [{"kind": k, "folder": list(p)} for k, p in self.empty_folders]
        return _dumps(line)

    @classmethod
    def from_dict(cls, obj: dict[str, Any]) -> ManifestHeader:
        if obj.get("format") != MANIFEST_FORMAT:
            raise ManifestError(f"unsupported manifest format {obj.get('format')!r}")
        empty = obj.get("emptyFolders", [])
        if not isinstance(empty, list) or not all(isinstance(e, dict) for e in empty):
            raise ManifestError(f"emptyFolders must be a list of objects, got {empty!r}")
        folders: list[tuple[ItemKind, tuple[str, ...]]] = []
        for e in empty:
            kind = _str(e, "kind")
            if kind not in _KINDS:
                raise ManifestError(f"emptyFolders kind must be mail or calendar, got {kind!r}")
            path = _str_list(e, "folder")
            if not path:
                raise ManifestError("emptyFolders folder must not be empty")
            folders.append((cast(ItemKind, kind), path))
        return cls(
            job_id=_str(obj, "jobId"),
            organization_id=_str(obj, "organizationId"),
            entity_id=_str(obj, "entityId"),
            start_time=parse_time(_str(obj, "startTime")),
            empty_folders=tuple(folders),
        )


@dataclass(frozen=True, slots=True)
class ManifestItem:
    """One exported item. ``folder`` holds the original (decoded, NFC) folder names."""

    zip_path: str
    kind: ItemKind
    folder: tuple[str, ...]
    source_id: str
    size: int
    sha256: str
    internal_date: datetime | None = None
    flags: tuple[str, ...] = field(default=())

    def to_json_line(self) -> bytes:
        return _dumps(
            {
                "zipPath": self.zip_path,
                "kind": self.kind,
                "folder": list(self.folder),
                "sourceId": self.source_id,
                "size": self.size,
                "sha256": self.sha256,
                "internalDate": None if self.internal_date is None else format_time(self.internal_date),
                "flags": list(self.flags),
            }
        )

    @classmethod
    def from_dict(cls, obj: dict[str, Any]) -> ManifestItem:
        kind = _str(obj, "kind")
        if kind not in _KINDS:
            raise ManifestError(f"kind must be mail or calendar, got {kind!r}")
        size = obj.get("size")
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise ManifestError(f"size must be a non-negative integer, got {size!r}")
        sha = _str(obj, "sha256")
        if len(sha) != 64 or any(c not in "0123456789abcdef" for c in sha):
            raise ManifestError(f"sha256 must be 64 lowercase hex digits, got {sha!r}")
        internal = obj.get("internalDate")
        if internal is not None and not isinstance(internal, str):
            raise ManifestError(f"internalDate must be a string or null, got {internal!r}")
        return cls(
            zip_path=_str(obj, "zipPath"),
            kind=cast(ItemKind, kind),
            folder=_str_list(obj, "folder"),
            source_id=_str(obj, "sourceId"),
            size=size,
            sha256=sha,
            internal_date=None if internal is None else parse_time(internal),
            flags=_str_list(obj, "flags"),
        )


def _str(obj: dict[str, Any], key: str) -> str:
    value = obj.get(key)
    if not isinstance(value, str):
        raise ManifestError(f"{key} must be a string, got {value!r}")
    return value


def _str_list(obj: dict[str, Any], key: str) -> tuple[str, ...]:
    value = obj.get(key)
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ManifestError(f"{key} must be a list of strings, got {value!r}")
    return tuple(value)


def manifest_lines(header: ManifestHeader, items: Iterable[ManifestItem]) -> Iterator[bytes]:
    """The manifest as byte lines, ready for ``ZipStreamWriter.add(MANIFEST_NAME, ...)``."""
    yield header.to_json_line()
    for item in items:
        yield item.to_json_line()


def _load_line(raw: bytes | str, number: int) -> dict[str, Any]:
    try:
        obj = json.loads(raw)
    except ValueError as exc:
        raise ManifestError(f"manifest line {number}: not JSON ({exc})") from exc
    if not isinstance(obj, dict):
        raise ManifestError(f"manifest line {number}: not a JSON object")
    return obj


def iter_manifest(lines: Iterable[bytes | str]) -> tuple[ManifestHeader, Iterator[ManifestItem]]:
    """Parse the header now and the items lazily (for manifests too large to hold).

    Raises :class:`ManifestError` (naming the 1-based line) for malformed content; blank
    lines are ignored.
    """
    numbered = ((n, raw) for n, raw in enumerate(lines, 1) if raw.strip())
    try:
        number, raw = next(numbered)
    except StopIteration:
        raise ManifestError("manifest is empty") from None
    try:
        header = ManifestHeader.from_dict(_load_line(raw, number))
    except (ManifestError, ValueError) as exc:
        raise ManifestError(f"manifest line {number}: {exc}") from exc

    def items() -> Iterator[ManifestItem]:
        for number, raw in numbered:
            try:
                yield ManifestItem.from_dict(_load_line(raw, number))
            except ManifestError as exc:
                if str(exc).startswith("manifest line"):
                    raise
                raise ManifestError(f"manifest line {number}: {exc}") from exc
            except ValueError as exc:
                raise ManifestError(f"manifest line {number}: {exc}") from exc

    return header, items()


@dataclass(frozen=True, slots=True)
class Manifest:
    """A whole manifest in memory (fine for tests and small mailboxes)."""

    header: ManifestHeader
    items: tuple[ManifestItem, ...]

    def to_jsonl(self) -> bytes:
        return b"".join(manifest_lines(self.header, self.items))

    @classmethod
    def parse(cls, data: bytes | str | Iterable[bytes | str]) -> Manifest:
        lines = data.splitlines() if isinstance(data, bytes | str) else data
        header, items = iter_manifest(lines)
        return cls(header, tuple(items))


_LOG_FIELDS = (
    ("total_messages", "totalMessages"),
    ("total_folders", "totalFolders"),
    ("total_bytes", "totalBytes"),
    ("total_non_exportable_items", "totalNonExportableItems"),
    ("start_time_ms", "startTime"),
    ("end_time_ms", "endTime"),
)


@dataclass(frozen=True, slots=True)
class ExportLog:
    """The export log. Counts are items (mail + calendar), ``total_bytes`` the sum of item
    sizes (uncompressed), ``sha384_hash`` lowercase hex of the whole zip object."""

    total_messages: int
    total_folders: int
    total_bytes: int
    total_non_exportable_items: int
    sha384_hash: str
    start_time_ms: int
    end_time_ms: int

    def to_dict(self) -> dict[str, str]:
        out = {key: str(getattr(self, attr)) for attr, key in _LOG_FIELDS[:4]}
        out["sha384Hash"] = self.sha384_hash
        out.update({key: str(getattr(self, attr)) for attr, key in _LOG_FIELDS[4:]})
        return out

    def to_json(self) -> bytes:
        return json.dumps(self.to_dict(), indent=2).encode("utf-8") + b"\n"

    @classmethod
    def parse(cls, data: bytes | str) -> ExportLog:
        """Parse a log; raises :class:`ManifestError` naming the bad field."""
        try:
            obj = json.loads(data)
        except ValueError as exc:
            raise ManifestError(f"export log is not JSON: {exc}") from exc
        if not isinstance(obj, dict):
            raise ManifestError("export log is not a JSON object")
        values: dict[str, Any] = {}
        for attr, key in _LOG_FIELDS:
            text = obj.get(key)
            if not isinstance(text, str) or not (text.isascii() and text.isdigit()):
                raise ManifestError(f"export log {key} must be a string of digits, got {text!r}")
            values[attr] = int(text)
        sha = obj.get("sha384Hash")
        if not isinstance(sha, str) or len(sha) != 96:
            raise ManifestError(f"export log sha384Hash must be 96 hex digits, got {sha!r}")
        return cls(sha384_hash=sha.lower(), **values)
