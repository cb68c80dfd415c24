"""Pure pieces: folder-name encoding, calendar MIME, iCalendar splitting, source specs."""

from __future__ import annotations

import json

import pytest

from mailcrate.mail.base import CalDavSpec, ImapSpec, SourceSpec
from mailcrate.mail.calendar_mime import calendar_to_mime, ics_from_calendar_mime
from mailcrate.mail.ics import split_events, summarize
from mailcrate.mail.maildirpp import decode_component, dir_name, encode_component, path_from_dir
from mailcrate.mail.store import calendar_dir_name

from .corpus import vevent


@pytest.mark.parametrize(
    "name", ["Sent Items", "a.b", "a/b", ".", "..", "Ärger & Co", "日本語", "x\\2e", "c\x01\x7f", "&-"]
)
def test_component_round_trip(name: str) -> None:
    piece = encode_component(name)
    assert "." not in piece and "/" not in piece and piece.isascii() and piece.isprintable()
    assert decode_component(piece) == name


def test_paths_and_inbox() -> None:
    assert dir_name(("Inbox",)) is None
    assert dir_name(("Inbox", "Sub")) == ".INBOX.Sub"
    assert path_from_dir(".INBOX.Sub") == ("Inbox", "Sub")
    assert path_from_dir(dir_name(("A", "b.c", "..")) or "") == ("A", "b.c", "..")
    assert calendar_dir_name("..") == "%2E." and calendar_dir_name("a/b%") == "a%2Fb%25"


def test_calendar_mime_round_trip_and_headers() -> None:
    ics = vevent(3, overrides=2, tz=True)
    mime = calendar_to_mime(ics, "alice@example.test")
    assert ics_from_calendar_mime(mime) == ics
    assert calendar_to_mime(ics, "alice@example.test") == mime  # deterministic
    head = mime.split(b"\r\n\r\n")[0].decode()
    assert "From: alice@example.test" in head and "Date: Mon, 01 Dec 2025 12:00:00 GMT" in head
    assert "Message-ID: <" in head and "multipart/alternative" in head
    assert b"text/calendar; charset=UTF-8" in mime  # no METHOD in the object: no method parameter
    info = summarize(ics)
    assert info.summary == "Meeting 3 \u2013 Planung" and info.overrides == 2 and info.recurring


def test_split_keeps_overrides_and_used_timezones() -> None:
    a, b = vevent(1, overrides=1, tz=True), vevent(2)
    combined = a.replace(b"END:VCALENDAR\r\n", b"") + b"BEGIN:VEVENT" + b.split(b"BEGIN:VEVENT", 1)[1]
    combined = (
        combined.replace(b"END:VCALENDAR\r\n", b"")
        + b"BEGIN:VTODO\r\nUID:t\r\nEND:VTODO\r\nEND:VCALENDAR\r\n"
    )
    parts = dict(split_events(combined))
    assert parts == {"event-1@example.test": a, "event-2@example.test": b}
    assert split_events(a) == [("event-1@example.test", a)]


def test_spec_json_round_trip_and_secrets() -> None:
    spec = SourceSpec(
        imap=ImapSpec("imaps://mail.example.test", "alice", "s3cret", master_user="admin", ca_file="/ca.pem"),
        caldav=CalDavSpec("https://dav.example.test/", "alice", "s3cret2"),
        owner="alice@example.test",
    )
    assert SourceSpec.from_dict(json.loads(json.dumps(spec.to_dict()))) == spec
    assert "s3cret" not in repr(spec) and "s3cret" not in json.dumps(spec.describe())
    with pytest.raises(ValueError):
        SourceSpec()
    with pytest.raises(ValueError):
        SourceSpec(embedded="/x", maildir="/y")
    with pytest.raises(ValueError):
        SourceSpec.from_dict({"imapp": {}})
