"""The migration report from the state file: per user the items and bytes exported, verified,
restored, already there, unchanged (a delta) and refused (with reasons), the user's phase, and
totals; as a table, JSON or CSV. Everything arrived when every user is ``done`` with nothing
refused or left out, or rightly ``skipped`` (disabled, unregistered: the reason says)."""

from __future__ import annotations

import csv
import io
from typing import Any

from mailcrate.migrate.state import UserRecord

__all__ = ["COLUMNS", "all_arrived", "as_csv", "as_dict", "as_table"]

#: (heading, figure attribute) of the numeric columns
COLUMNS = (
    ("exported", "exported_items"),
    ("exported bytes", "exported_bytes"),
    ("verified", "verified_items"),
    ("restored", "restored_items"),
    ("restored bytes", "restored_bytes"),
    ("already there", "already_items"),
    ("unchanged", "unchanged_items"),
)


def all_arrived(records: list[UserRecord]) -> bool:
    return all(r.arrived for r in records)


def _not_restored(r: UserRecord) -> int:
    return len(r.figures.refused) + sum(r.figures.not_restored.values())


def _row(r: UserRecord) -> dict[str, Any]:
    f = r.figures
    return {
        "user": r.email or r.name,
        "entityId": r.entity_id,
        "login": r.login,
        "state": r.phase,
        "round": r.round,
        "jobId": r.job_id,
        "arrived": r.arrived,
        "reason": r.reason,
        **{attr: getattr(f, attr) for _h, attr in COLUMNS},
        "already_bytes": f.already_bytes,
        "unchanged_bytes": f.unchanged_bytes,
        "verified_bytes": f.verified_bytes,
        "refused": f.refused,
        "not_restored": f.not_restored,
        "folders": f.folders,
        "seconds": f.seconds,
    }


def _totals(records: list[UserRecord]) -> dict[str, Any]:
    out: dict[str, Any] = {"users": len(records)}
    for phase in sorted({r.phase for r in records}):
        out[phase] = sum(1 for r in records if r.phase == phase)
    for _h, attr in COLUMNS:
        out[attr] = sum(getattr(r.figures, attr) for r in records)
    out["refused_items"] = sum(_not_restored(r) for r in records)
    return out


def as_dict(records: list[UserRecord]) -> dict[str, Any]:
    return {
        "complete": all_arrived(records),
        "users": [_row(r) for r in records],
        "totals": _totals(records),
    }


def as_csv(records: list[UserRecord]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    head = ["user", "entity_id", "login", "state", "round", "job_id"]
    head += [attr for _h, attr in COLUMNS] + ["refused_items", "reason"]
    writer.writerow(head)
    for r in records:
        reasons = "; ".join(
            [r.reason] * bool(r.reason)
            + [f"{x['item']}: {x['reason']}" for x in r.figures.refused]
            + [f"{n} {why}" for why, n in r.figures.not_restored.items()]
        )
        writer.writerow(
            [r.email or r.name, r.entity_id, r.login, r.phase, r.round, r.job_id or ""]
            + [getattr(r.figures, attr) for _h, attr in COLUMNS]
            + [_not_restored(r), reasons]
        )
    return buf.getvalue()


def as_table(records: list[UserRecord]) -> list[str]:
    head = ["user", "state", *(h for h, _a in COLUMNS), "refused"]
    rows = [
        [
            r.email or r.name,
            r.phase,
            *(str(getattr(r.figures, a)) for _h, a in COLUMNS),
            str(_not_restored(r)),
        ]
        for r in records
    ]
    totals = _totals(records)
    rows.append(
        ["total", f"{totals.get('done', 0)}/{len(records)} done"]
        + [str(totals[a]) for _h, a in COLUMNS]
        + [str(totals["refused_items"])]
    )
    widths = [max(len(row[i]) for row in (head, *rows)) for i in range(len(head))]

    def line(cells: list[str]) -> str:
        return "  ".join(
            c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ).rstrip()

    out = [line(head), *(line(r) for r in rows)]
    for r in records:
        label = r.email or r.name
        if r.reason:
            out.append(f"{r.phase}: {label}: {r.reason}")
        for x in r.figures.refused:
            out.append(f"refused: {label}: {x['item']}: {x['reason']}")
        for why, n in r.figures.not_restored.items():
            out.append(f"not restored: {label}: {n} {why}")
    return out
