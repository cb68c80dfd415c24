"""The reconciliation report of a restore or an import: per folder, what the input held and
where each item went (DESIGN.md: nothing is skipped, merged or refused without being named).

Every item of the input lands in exactly one column of its folder's row: ``done`` (restored or
imported), ``already`` (the same bytes were in the target), ``superseded`` (an older version of
a calendar object whose newer version was kept), ``not_exportable`` (tasks, journals,
free/busy and availability: exports carry events only) or ``refused`` (named, with the reason
in the target's own words). So ``archive`` - the items of the input - always equals the sum, and
:attr:`Reconciliation.complete` says whether everything arrived (the exit status).
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["Reconciliation", "Refusal", "Tally"]


@dataclass(frozen=True)
class Refusal:
    """One item the target did not take: its name in the input and why."""

    item: str
    reason: str


@dataclass
class Tally:
    """One folder's (or calendar's) row."""

    done: int = 0
    already: int = 0
    superseded: int = 0
    not_exportable: int = 0
    refused: list[Refusal] = field(default_factory=list)

    @property
    def archive(self) -> int:
        return self.done + self.already + self.superseded + self.not_exportable + len(self.refused)

    # the names the import and restore reports used before: imported/restored, skipped
    @property
    def imported(self) -> int:
        return self.done

    @property
    def skipped(self) -> int:
        return self.already

    def to_dict(self) -> dict[str, object]:
        return {
            "archive": self.archive,
            "done": self.done,
            "alreadyThere": self.already,
            "superseded": self.superseded,
            "notExportable": self.not_exportable,
            "refused": [{"item": r.item, "reason": r.reason} for r in self.refused],
        }


@dataclass
class Reconciliation:
    """Rows per mail folder and per calendar, reasons nothing was done (``not_restored``:
    reason -> items, for whole classes such as calendar items without a CalDAV target) and
    inputs that could not be read (``errors``)."""

    mail: dict[tuple[str, ...], Tally] = field(default_factory=dict)
    calendars: dict[str, Tally] = field(default_factory=dict)
    not_restored: dict[str, int] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    destination: str = ""

    def folder(self, path: tuple[str, ...]) -> Tally:
        return self.mail.setdefault(path, Tally())

    def calendar(self, name: str) -> Tally:
        return self.calendars.setdefault(name, Tally())

    def _rows(self) -> list[Tally]:
        return [*self.mail.values(), *self.calendars.values()]

    @property
    def done(self) -> int:
        return sum(t.done for t in self._rows())

    @property
    def skipped(self) -> int:
        return sum(t.already for t in self._rows())

    @property
    def refused(self) -> list[Refusal]:
        return [r for t in self._rows() for r in t.refused]

    @property
    def complete(self) -> bool:
        """Everything the input held is in the target (or was there already); superseded and
        not exportable calendar objects are reported, not failures."""
        return not self.refused and not self.not_restored and not self.errors

    def to_dict(self, done: str = "restored") -> dict[str, object]:
        def row(key: str, name: object, t: Tally) -> dict[str, object]:
            d = t.to_dict()
            return {key: name, "archive": d.pop("archive"), done: d.pop("done"), "skipped": t.already, **d}

        return {
            "destination": self.destination,
            "complete": self.complete,
            done: self.done,
            "skipped": self.skipped,
            "alreadyThere": self.skipped,
            "refused": len(self.refused),
            "mail": [row("folder", list(k), v) for k, v in self.mail.items()],
            "calendars": [row("calendar", k, v) for k, v in self.calendars.items()],
            "notRestored": dict(self.not_restored),
            "errors": list(self.errors),
        }

    def table(self, done: str = "restored") -> list[str]:
        """The report as aligned text lines, for people (``--output json`` is for scripts)."""
        cal_extra = any(t.superseded or t.not_exportable for t in self.calendars.values())
        head = ["folder", "in input", done, "already there", "refused"]
        if cal_extra:
            head += ["superseded", "not exportable"]
        rows: list[list[str]] = []
        for name, t in [
            *(("/".join(k), t) for k, t in self.mail.items()),
            *((f"calendar {k}", t) for k, t in self.calendars.items()),
        ]:
            cells = [name, str(t.archive), str(t.done), str(t.already), str(len(t.refused))]
            if cal_extra:
                cells += [str(t.superseded), str(t.not_exportable)]
            rows.append(cells)
        all_rows = self._rows()
        totals = [
            "total",
            str(sum(t.archive for t in all_rows)),
            str(self.done),
            str(self.skipped),
            str(len(self.refused)),
        ]
        if cal_extra:
            totals += [str(sum(t.superseded for t in all_rows)), str(sum(t.not_exportable for t in all_rows))]
        widths = [max(len(r[i]) for r in (head, *rows, totals)) for i in range(len(head))]

        def line(cells: list[str]) -> str:
            return "  ".join(
                c.ljust(w) if i == 0 else c.rjust(w)
                for i, (c, w) in enumerate(zip(cells, widths, strict=True))
            ).rstrip()

        out = [line(head), *(line(r) for r in rows), line(totals)]
        for r in self.refused:
            out.append(f"refused: {r.item}: {r.reason}")
        for reason, count in self.not_restored.items():
            out.append(f"not restored: {count} {reason}")
        if self.destination:
            out.append(f"into {self.destination}")
        return out
