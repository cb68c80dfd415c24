"""Calendars of a CalDAV account as a source (the ``caldav`` library).

Every calendar collection of the user's principal is a ``calendar`` folder (named by its
display name); every resource holding a VEVENT is one item.  Tasks (VTODO), journals and the
other objects are never exported, but counted: they are items the pipeline counts as
non-exportable (the export log's totalNonExportableItems), read never.  Resources are listed
with calendar-query REPORTs (every object, and those with a VEVENT; no data, so counting is
cheap) and the events fetched one by one with GET: a REPORT carries calendar data inside XML, and XML parsing rewrites line ends, so
only GET gives the object byte-exact.  Items are MIME messages (:mod:`calendar_mime`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import unquote, urljoin, urlsplit

from lxml import etree

from mailcrate.mail.base import (
    CalDavSpec,
    Folder,
    Item,
    OpenOptions,
    SourceBase,
    SourceError,
    SourceType,
    TransientSourceError,
    config_type,
    nfc,
)
from mailcrate.mail.calendar_mime import calendar_to_mime
from mailcrate.mail.ics import has_event
from mailcrate.mail.not_exportable import not_exportable

log = logging.getLogger(__name__)

_EVENT_QUERY = """<?xml version="1.0" encoding="utf-8"?>
<C:calendar-query xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav">
  <D:prop><D:getetag/></D:prop>
  <C:filter><C:comp-filter name="VCALENDAR"><C:comp-filter name="VEVENT"/></C:comp-filter></C:filter>
</C:calendar-query>"""
_ALL_QUERY = """<?xml version="1.0" encoding="utf-8"?>
<C:calendar-query xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav">
  <D:prop><D:getetag/></D:prop>
  <C:filter><C:comp-filter name="VCALENDAR"/></C:filter>
</C:calendar-query>"""
_DAV = "{DAV:}"


class CalDavSource(SourceBase):
    """Every event of every calendar of one CalDAV principal; see the module docstring."""

    def __init__(self, spec: CalDavSpec, *, owner: str | None = None, retries: int = 3) -> None:
        import caldav
        from caldav.lib import error as caldav_error

        self._error = caldav_error
        self.spec = spec
        self.owner = owner or spec.user
        self.retries = retries
        verify: bool | str = spec.ca_file if (spec.verify and spec.ca_file) else spec.verify
        self._client = caldav.DAVClient(
            url=spec.url, username=spec.user, password=spec.password, ssl_verify_cert=verify
        )
        self._calendars: dict[tuple[str, ...], Any] = {}
        self._hrefs: dict[tuple[str, ...], list[str]] = {}
        self._events: dict[tuple[str, ...], set[str]] = {}
        self._principal = self._call(self._client.principal, what="log in")

    def _call(self, fn: Any, *args: Any, what: str) -> Any:
        """Run a caldav call; auth failures are permanent, other failures retried a few times."""
        for attempt in range(self.retries + 1):
            try:
                return fn(*args)
            except self._error.AuthorizationError:
                raise SourceError(
                    f"CalDAV authentication failed for {self.spec.user} at {self._host()}"
                ) from None
            except self._error.NotFoundError:
                raise
            except Exception as e:
                if attempt == self.retries:
                    raise TransientSourceError(
                        f"CalDAV server {self._host()} failed to {what} ({type(e).__name__})"
                    ) from None
                log.warning("CalDAV %s failed (%s); retrying", what, type(e).__name__)
                time.sleep(0.2 * 2**attempt)
        raise AssertionError("unreachable")

    def _host(self) -> str:
        return urlsplit(self.spec.url).netloc.rpartition("@")[2]

    def _hrefs_of(self, calendar: Any, query: str = _EVENT_QUERY) -> list[str]:
        resp = self._call(self._client.report, str(calendar.url), query, 1, what="list events")
        tree = etree.fromstring(resp.raw.encode() if isinstance(resp.raw, str) else resp.raw)
        base = str(calendar.url)
        hrefs = set()
        for response in tree.iter(f"{_DAV}response"):
            href = response.findtext(f"{_DAV}href")
            if href and urljoin(base, href).rstrip("/") != base.rstrip("/"):
                hrefs.add(urljoin(base, href))
        return sorted(hrefs)

    def folders(self) -> list[Folder]:
        self._calendars.clear()
        self._hrefs.clear()
        result: list[Folder] = []
        for cal in self._call(self._principal.calendars, what="list calendars"):
            try:
                components = [str(c).upper() for c in self._call(cal.get_supported_components, what="probe")]
            except Exception:  # property missing or unreadable: assume events are allowed
                components = ["VEVENT"]
            name = nfc(self._call(cal.get_display_name, what="read calendar names") or "")
            if not name:
                name = unquote(str(cal.url).rstrip("/").rpartition("/")[2]) or "Calendar"
            path = (name,)
            if path in self._calendars:
                path = (f"{name} ({unquote(str(cal.url).rstrip('/').rpartition('/')[2])})",)
            events = set(self._hrefs_of(cal)) if "VEVENT" in components else set()
            everything = set(self._hrefs_of(cal, _ALL_QUERY)) | events
            if not everything and "VEVENT" not in components:
                continue  # an empty task list: nothing to export or to count
            self._calendars[path] = cal
            self._hrefs[path] = sorted(everything)
            self._events[path] = events
            result.append(Folder(path, "calendar", len(everything)))
        result.sort(key=lambda f: f.path)
        return result

    def items(self, folder: Folder, *, after: str | None = None) -> Iterator[Item]:
        if not self._calendars:
            self.folders()
        cal = self._calendars.get(folder.path)
        if cal is None:
            raise SourceError(f"no such calendar {folder.path!r}")
        for href in self._hrefs[folder.path]:
            source_id = urlsplit(href).path
            if after is not None and source_id <= after:
                continue
            if href not in self._events[folder.path]:
                yield not_exportable(folder, source_id, "a task, journal or other non-event object")
                continue
            ics = self._get(cal, href)
            if ics is None:
                continue  # deleted since the listing
            if not has_event(ics):
                yield not_exportable(folder, source_id, "an object without an event")
                continue
            mime = calendar_to_mime(ics, self.owner)
            yield Item(
                folder=folder,
                source_id=source_id,
                size=len(mime),
                internal_date=None,
                flags=(),
                kind="calendar",
                reader=lambda m=mime: iter((m,)),
            )

    def _get(self, cal: Any, href: str) -> bytes | None:
        import caldav

        obj = caldav.Event(client=self._client, url=href, parent=cal)
        try:
            self._call(obj.load, what="read an event")
        except self._error.NotFoundError:
            return None
        raw = getattr(obj, "raw_data", None)  # caldav >= 3.6: the GET body untouched
        if raw is None:  # older caldav: its normalised text (line ends may differ)
            data = obj.data
            raw = data.encode("utf-8") if isinstance(data, str) else data
        return raw

    def close(self) -> None:
        close = getattr(self._client, "close", None)
        if callable(close):
            close()


def _open(spec: CalDavSpec, options: OpenOptions) -> CalDavSource:
    return CalDavSource(spec, owner=options.owner or spec.user, retries=1 if options.quick else 3)


#: A CalDAV account: every calendar of the user's principal (mail.base.SOURCE_TYPES).
SOURCE = SourceType("caldav", frozenset({"calendar"}), *config_type(CalDavSpec), _open)
