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


def split_events(data: bytes) -> list[tuple[str, bytes]]:
    """One ``(uid, ics_bytes)`` per event UID: the VEVENTs with that UID (overrides included) plus
    the VCALENDAR's own properties and the VTIMEZONEs they use, all as raw lines.  A file that
    already holds exactly one event UID and nothing else is returned unchanged."""
    result: list[tuple[str, bytes]] = []
    roots = _parse(data)
    for cal in roots:
        if cal.name != "VCALENDAR":
            continue
        events = [c for c in cal.children if c.name == "VEVENT"]
        uids: list[str] = []
        for ev in events:
            if _uid(ev) not in uids:
                uids.append(_uid(ev))
        others = [c for c in cal.children if c.name not in ("VEVENT", "VTIMEZONE")]
        if len(uids) == 1 and not others and len(roots) == 1:
            result.append((uids[0], data))
            continue
        zones = {_tzid(z): z for z in cal.children if z.name == "VTIMEZONE"}
        for uid in uids:
            mine = [e for e in events if _uid(e) == uid]
            used = {p.params["TZID"] for e in mine for p in _all_props(e) if "TZID" in p.params}
            body = b"".join(z.raw() for tzid, z in zones.items() if tzid in used)
            body += b"".join(e.raw() for e in mine)
            result.append((uid, cal.begin + b"".join(p.raw for p in cal.props) + body + cal.end))
    return result


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
