"""Just enough iCalendar reading to split files into items and summarise events, byte-exact.

A full iCalendar library re-serialises what it parses; exports and imports must keep the
original bytes, so this works on physical lines: it unfolds them only to *read* properties and
always copies the raw lines it was given.  It never fails on malformed input - it returns less.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime


@dataclass
class _Line:
    name: str
    params: dict[str, str]
    value: str
    raw: bytes


@dataclass
class _Comp:
    name: str
    begin: bytes
    end: bytes = b""
    props: list[_Line] = field(default_factory=list)
    children: list[_Comp] = field(default_factory=list)

    def raw(self) -> bytes:
        return (
            self.begin
            + b"".join(p.raw for p in self.props)
            + b"".join(c.raw() for c in self.children)
            + self.end
        )

    def get(self, name: str) -> _Line | None:
        return next((p for p in self.props if p.name == name), None)


def _logical_lines(data: bytes) -> list[tuple[str, bytes]]:
    out: list[tuple[str, bytes]] = []
    for phys in data.splitlines(keepends=True):
        if phys[:1] in (b" ", b"\t") and out:
            text, raw = out[-1]
            out[-1] = (text + phys[1:].rstrip(b"\r\n").decode("utf-8", "replace"), raw + phys)
        else:
            out.append((phys.rstrip(b"\r\n").decode("utf-8", "replace"), phys))
    return out


_PARAM = re.compile(r';([^=;:]+)=("[^"]*"|[^;:]*)')


def _parse_line(text: str, raw: bytes) -> _Line:
    m = re.match(r"([A-Za-z0-9-]+)((?:;[^=;:]+=(?:\"[^\"]*\"|[^;:]*))*):(.*)\Z", text, re.S)
    if not m:
        return _Line(text.upper(), {}, "", raw)
    params = {k.upper(): v.strip('"') for k, v in _PARAM.findall(m.group(2))}
    return _Line(m.group(1).upper(), params, m.group(3), raw)


def _parse(data: bytes) -> list[_Comp]:
    """Top-level components (normally VCALENDARs) with their nested components."""
    roots: list[_Comp] = []
    stack: list[_Comp] = []
    for text, raw in _logical_lines(data):
        line = _parse_line(text, raw)
        if line.name == "BEGIN":
            comp = _Comp(line.value.strip().upper(), raw)
            (stack[-1].children if stack else roots).append(comp)
            stack.append(comp)
        elif line.name == "END" and stack:
            stack.pop().end = raw
        elif stack:
            stack[-1].props.append(line)
    return roots


def unescape_text(value: str) -> str:
    """RFC 5545 TEXT unescaping."""
    return re.sub(r"\\([\\;,nN])", lambda m: "\n" if m.group(1) in "nN" else m.group(1), value)


def _uid(comp: _Comp) -> str:
    line = comp.get("UID")
    return line.value.strip() if line else ""


EXPORTABLE = frozenset({"VEVENT"})
"""Component kinds an export carries (WorkMail's: events; tasks, journals, free/busy and
availability are not exported)."""


@dataclass(frozen=True)
class CalendarObject:
    """One calendar object as a CalDAV server stores it: the components of one UID (an event
    with its overrides) from one VCALENDAR, with that VCALENDAR's own properties (METHOD too)
    and the VTIMEZONEs they use, all as raw lines. ``position`` is its order in the file."""

    kind: str
    uid: str
    ics: bytes
    sequence: int
    stamp: str
    position: int

    @property
    def version(self) -> tuple[int, str, int]:
        """What decides which of several objects with one UID is kept: the highest SEQUENCE,
        then the latest DTSTAMP (RFC 5546 3.2 / 2.1.5), then the later in the file (as a later
        PUT replaces an earlier one)."""
        return (self.sequence, self.stamp, self.position)


def calendar_objects(data: bytes) -> list[CalendarObject]:
    """Every calendar object of a file (see :class:`CalendarObject`), in file order. A file
    holding exactly one object and nothing else is that object's bytes unchanged. Components
    without a UID (free/busy, malformed events) are one object each."""
    roots = _parse(data)
    cals = [c for c in roots if c.name == "VCALENDAR"]
    out: list[CalendarObject] = []
    for cal in cals:
        groups: dict[tuple[str, str], list[_Comp]] = {}
        for n, comp in enumerate(c for c in cal.children if c.name != "VTIMEZONE"):
            uid = _uid(comp)
            groups.setdefault((comp.name, uid or f"\0{n}"), []).append(comp)
        zones = {_tzid(z): z for z in cal.children if z.name == "VTIMEZONE"}
        whole = len(roots) == 1 and len(groups) == 1
        for (kind, key), comps in groups.items():
            if whole:
                ics = data
            else:
                used = {p.params["TZID"] for c in comps for p in _all_props(c) if "TZID" in p.params}
                body = b"".join(z.raw() for tzid, z in zones.items() if tzid in used)
                body += b"".join(c.raw() for c in comps)
                ics = cal.begin + b"".join(p.raw for p in cal.props) + body + cal.end
            master = next((c for c in comps if c.get("RECURRENCE-ID") is None), comps[0])
            out.append(
                CalendarObject(
                    kind=kind,
                    uid="" if key.startswith("\0") else key,
                    ics=ics,
                    sequence=_sequence(master),
                    stamp=_value(master, "DTSTAMP"),
                    position=len(out),
                )
            )
    return out


def newest_versions(objects: list[CalendarObject]) -> tuple[list[CalendarObject], list[CalendarObject]]:
    """``(kept, superseded)``: of several objects of one kind and UID, the newest
    (:attr:`CalendarObject.version`) is kept, as a CalDAV server keeps one resource per UID;
    objects without a UID are all kept. Both lists in file order."""
    best: dict[tuple[str, str], CalendarObject] = {}
    for obj in objects:
        if obj.uid:
            key = (obj.kind, obj.uid)
            if key not in best or obj.version > best[key].version:
                best[key] = obj
    kept_ids = {id(o) for o in best.values()}
    kept = [o for o in objects if not o.uid or id(o) in kept_ids]
    superseded = [o for o in objects if o.uid and id(o) not in kept_ids]
    return kept, superseded


def object_version(data: bytes) -> tuple[int, str]:
    """(SEQUENCE, DTSTAMP) of a stored object (its first component's master)."""
    objs = calendar_objects(data)
    return (objs[0].sequence, objs[0].stamp) if objs else (0, "")


def object_uid(data: bytes) -> str:
    """The UID of an object's components (the first component that has one), or ""."""
    for cal in _parse(data):
        for comp in cal.children:
            if comp.name != "VTIMEZONE" and (uid := _uid(comp)):
                return uid
    return ""


def object_kind(data: bytes) -> str:
    """The kind of an object's first component that is not a VTIMEZONE (VEVENT, VTODO, ...)."""
    for cal in _parse(data):
        for comp in cal.children:
            if comp.name != "VTIMEZONE":
                return comp.name
    return ""


def method(data: bytes) -> str:
    """The iTIP METHOD of an object's VCALENDAR (REQUEST, REPLY, ...), or "" when it has none."""
    for cal in _parse(data):
        line = cal.get("METHOD")
        if line is not None and line.value.strip():
            return line.value.strip().upper()
    return ""


def _value(comp: _Comp, name: str) -> str:
    line = comp.get(name)
    return line.value.strip() if line else ""


def _sequence(comp: _Comp) -> int:
    text = _value(comp, "SEQUENCE")
    return int(text) if text.isdigit() else 0


def split_events(data: bytes) -> list[tuple[str, bytes]]:
    """``(uid, ics_bytes)`` of every event object of a file (all versions; see
    :func:`calendar_objects` and :func:`newest_versions`)."""
    return [(o.uid, o.ics) for o in calendar_objects(data) if o.kind == "VEVENT"]


def _tzid(zone: _Comp) -> str:
    line = zone.get("TZID")
    return line.value if line else ""


def _all_props(comp: _Comp) -> list[_Line]:
    return comp.props + [p for c in comp.children for p in _all_props(c)]


def parse_ical_datetime(value: str, params: dict[str, str] | None = None) -> datetime | None:
    """DATE-TIME/DATE value; floating and TZID times are returned naive (no tz database needed)."""
    value = value.strip()
    for fmt in ("%Y%m%dT%H%M%SZ", "%Y%m%dT%H%M%S", "%Y%m%d"):
        try:
            dt = datetime.strptime(value, fmt)
        except ValueError:
            continue
        return dt.replace(tzinfo=UTC) if value.endswith("Z") else dt
    return None


@dataclass(frozen=True)
class EventSummary:
    """What the text/plain part and the headers of a calendar item say about it."""

    uid: str = ""
    summary: str = ""
    start: str = ""
    end: str = ""
    location: str = ""
    organizer: str = ""
    stamp: datetime | None = None
    recurring: bool = False
    overrides: int = 0


def _when(line: _Line | None) -> str:
    if line is None:
        return ""
    dt = parse_ical_datetime(line.value, line.params)
    if dt is None:
        return line.value
    text = dt.strftime("%Y-%m-%d") if len(line.value.strip()) == 8 else dt.strftime("%Y-%m-%d %H:%M")
    if dt.tzinfo is not None:
        text += " UTC"
    elif "TZID" in line.params:
        text += f" ({line.params['TZID']})"
    return text


def summarize(data: bytes) -> EventSummary:
    """Summary of the first event (its master, when there are overrides) of an iCalendar object."""
    events = [c for cal in _parse(data) for c in cal.children if c.name == "VEVENT"]
    if not events:
        return EventSummary()
    master = next((e for e in events if e.get("RECURRENCE-ID") is None), events[0])
    organizer = master.get("ORGANIZER")
    org = ""
    if organizer is not None:
        addr = re.sub(r"(?i)^mailto:", "", organizer.value.strip())
        org = f"{organizer.params['CN']} <{addr}>" if "CN" in organizer.params else addr
    stamp = None
    for name in ("DTSTAMP", "LAST-MODIFIED", "CREATED"):
        line = master.get(name)
        if line is not None and (stamp := parse_ical_datetime(line.value)) is not None:
            break
    if stamp is not None and stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=UTC)
    text = {n: unescape_text(master.get(n).value) if master.get(n) else "" for n in ("SUMMARY", "LOCATION")}
    return EventSummary(
        uid=_uid(master),
        summary=text["SUMMARY"],
        start=_when(master.get("DTSTART")),
        end=_when(master.get("DTEND")),
        location=text["LOCATION"],
        organizer=org,
        stamp=stamp,
        recurring=master.get("RRULE") is not None or master.get("RDATE") is not None,
        overrides=sum(1 for e in events if e.get("RECURRENCE-ID") is not None),
    )


def has_event(data: bytes) -> bool:
    """True when the object holds at least one VEVENT (tasks, journals and cards do not)."""
    return any(c.name == "VEVENT" for cal in _parse(data) for c in cal.children)
