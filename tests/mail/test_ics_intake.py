"""``.ics`` intake is honest (issue 17), on real calendars from public test suites
(tests/corpus): of several objects with one UID the newest is kept and the rest reported as
superseded; tasks, journals, free/busy and availability are reported as not exportable and
counted in the export's totalNonExportableItems; the report adds up and the zip holds exactly
the imported events; the calendar MIME part's method is the object's own METHOD."""

from __future__ import annotations

import io
import re
import zipfile
from datetime import UTC, datetime
from pathlib import Path

from mailcrate.export.manifest import MANIFEST_NAME, Manifest, ManifestHeader
from mailcrate.export.pipeline import write_archive
from mailcrate.mail.calendar_mime import calendar_to_mime, ics_from_calendar_mime
from mailcrate.mail.ics import calendar_objects
from mailcrate.mail.intake import import_paths
from mailcrate.mail.store import EmbeddedStore
from tests import corpus

from .corpus import vevent

FILES = sorted((corpus.ROOT / "calendar").iterdir())
START = datetime(2026, 1, 1, tzinfo=UTC)
ITIP = [corpus.calendar_path(f"apple--privateevents-{n}.ics") for n in (40, 41, 49)]


def _export(root: Path) -> tuple[dict[str, bytes], int]:
    """The embedded mailbox through the export pipeline: calendar entries' iCalendar bytes by
    zip path, and the figure the export log calls totalNonExportableItems."""
    out = io.BytesIO()
    with EmbeddedStore(root, owner="alice@example.test") as store:
        figures = write_archive(store, out.write, header=ManifestHeader("j", "o", "e", START))
    with zipfile.ZipFile(out) as zf:
        manifest = Manifest.parse(zf.read(MANIFEST_NAME))
        cals = {
            i.zip_path: ics_from_calendar_mime(zf.read(i.zip_path))
            for i in manifest.items
            if i.kind == "calendar"
        }
    return cals, figures.total_non_exportable_items


def test_import_report_adds_up_and_the_zip_holds_exactly_the_imported(tmp_path: Path) -> None:
    objects = [o for f in FILES for o in calendar_objects(f.read_bytes())]
    root = tmp_path / "mb"
    report = import_paths(root, FILES)
    t = report.calendars["Calendar"]
    assert report.complete and not report.errors
    assert t.done + t.superseded + t.not_exportable == len(objects) == t.archive
    kinds = {o.kind for o in objects}
    assert {"VTODO", "VJOURNAL", "VFREEBUSY", "VAVAILABILITY"} <= kinds
    assert t.not_exportable == len({(o.kind, o.uid or o.ics) for o in objects if o.kind != "VEVENT"})
    # the iTIP sequence (SEQUENCE 0, 1, 1 with one DTSTAMP): the last of the newest is kept
    itip_uid = calendar_objects(ITIP[0].read_bytes())[0].uid
    assert sum(o.uid == itip_uid for o in objects) == 3

    cals, non_exportable = _export(root)
    assert len(cals) == t.done and non_exportable == t.not_exportable
    exported = sorted(cals.values())
    assert ITIP[2].read_bytes() in exported
    assert ITIP[0].read_bytes() not in exported and ITIP[1].read_bytes() not in exported
    assert all(b"BEGIN:VEVENT" in ics for ics in exported)

    again = import_paths(root, FILES).calendars["Calendar"]
    assert (again.done, again.already, again.superseded, again.not_exportable) == (
        0, t.done, t.superseded, t.not_exportable,
    )  # fmt: skip
    assert _export(root)[0] == cals


def test_an_older_version_does_not_replace_a_newer_one(tmp_path: Path) -> None:
    root = tmp_path / "mb"
    first = import_paths(root, [ITIP[2]]).calendars["Calendar"]
    assert (first.done, first.superseded) == (1, 0)
    older = import_paths(root, [ITIP[0]]).calendars["Calendar"]
    assert (older.done, older.superseded) == (0, 1)
    assert list(_export(root)[0].values()) == [ITIP[2].read_bytes()]


def test_mime_method_is_the_objects_own() -> None:
    seen = set()
    for f in FILES:
        data = f.read_bytes()
        m = re.search(rb"(?m)^METHOD:(\w+)", data)
        head = (
            calendar_to_mime(data, "a@example.test")
            .split(b"Content-Type: text/calendar", 1)[1]
            .split(b"\r\n")[0]
        )
        if m:
            assert head == b"; method=" + m.group(1).upper() + b"; charset=UTF-8", f.name
            seen.add(m.group(1))
        else:
            assert head == b"; charset=UTF-8", f.name
    assert {b"REQUEST", b"REPLY", b"PUBLISH"} <= seen
    assert b"method=" not in calendar_to_mime(vevent(1), "a@example.test")
