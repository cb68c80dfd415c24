"""Regenerate BENCHMARKS.md's chart from the latest results, and print the figures as markdown.

Reads ``benchmarks/results/<name>.json`` (written by each benchmark's last run) and draws
``benchmarks/charts/export-scaling.png``: export throughput (MB/s) and peak RSS of the serve
process (MB) against mailbox size, from ``export-scaling`` (plus the ``export-embedded`` 1 GiB
point when present).  Needs matplotlib (``pip install -e '.[bench]'``).

    python -m benchmarks report
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from benchmarks.exportlib import RESULTS
from benchmarks.harness import ROOT

CHART = ROOT / "benchmarks" / "charts" / "export-scaling.png"


def _load(name: str) -> dict[str, Any] | None:
    path = RESULTS / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else None


def chart(scaling: dict[str, Any], out: Path = CHART) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = sorted(scaling.get("size", []) + scaling.get("big", []), key=lambda r: r["bytes"])
    if not rows:
        raise SystemExit("export-scaling results have no size cases: run python -m benchmarks export-scaling")
    x = [r["bytes"] / 2**20 for r in rows]
    fig, ax = plt.subplots(figsize=(7.5, 4.2), dpi=110)
    ax.plot(x, [r["mb_s"] for r in rows], "o-", color="tab:blue", label="export throughput (MB/s)")
    for r, xi in zip(rows, x, strict=True):
        ax.annotate(
            r["case"], (xi, r["mb_s"]), textcoords="offset points", xytext=(0, 7), ha="center", fontsize=8
        )
    ax.set_xscale("log")
    ax.set_xlabel("mailbox size (MiB, log scale)")
    ax.set_ylabel("MB/s (start -> COMPLETED)", color="tab:blue")
    ax.axhline(150, color="tab:blue", ls=":", lw=1, label="target 150 MB/s")
    ax.set_ylim(bottom=0)
    ax2 = ax.twinx()
    ax2.plot(x, [r["peak_rss"] / 1e6 for r in rows], "s--", color="tab:red", label="peak RSS of serve (MB)")
    ax2.axhline(250, color="tab:red", ls=":", lw=1, label="target 250 MB")
    ax2.set_ylabel("peak RSS (MB)", color="tab:red")
    ax2.set_ylim(bottom=0)
    lines = ax.get_legend_handles_labels()
    lines2 = ax2.get_legend_handles_labels()
    ax.legend(lines[0] + lines2[0], lines[1] + lines2[1], loc="lower left", fontsize=8)
    machine = scaling.get("machine", {})
    ax.set_title(
        f"mailcrate full export job, embedded store -> embedded S3 (SSE-KMS)\n"
        f"{machine.get('cores', '?')} cores {machine.get('cpu', '')}, {scaling.get('time', '')}",
        fontsize=9,
    )
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    return out


def markdown() -> str:
    out = []
    e = _load("export-embedded")
    if e:
        m = e["median_seconds"]
        out += [
            f"export-embedded ({e['mailbox']['bytes'] / 2**20:,.0f} MiB, {e['mailbox']['messages']:,} messages):",
            "| contender | seconds | MB/s | ratio to mailcrate |",
            "|---|---|---|---|",
        ]
        for k, v in m.items():
            out.append(
                f"| {k} | {v:.2f} | {e['mailbox']['bytes'] / 1e6 / v:.1f} | {v / m['mailcrate']:.2f} |"
            )
        out.append("")
    s = _load("export-scaling")
    if s:
        out += [
            "| case | files | MiB | seconds | MB/s | ms/file | idle RSS MB | peak RSS MB |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for r in s.get("messages", []) + s.get("size", []) + s.get("big", []):
            out.append(
                f"| {r['case']} | {r['files']:,} | {r['bytes'] / 2**20:,.0f} | {r['seconds']:.2f} | {r['mb_s']} | "
                f"{r['ms_per_file']} | {r['idle_rss'] / 1e6:.0f} | {r['peak_rss'] / 1e6:.0f} |"
            )
        out.append(f"\nsummary: {json.dumps(s.get('summary', {}))}")
    return "\n".join(out)


def main(argv: list[str]) -> int:
    scaling = _load("export-scaling")
    if scaling is None:
        print("no benchmarks/results/export-scaling.json yet: run python -m benchmarks export-scaling")
        return 1
    path = chart(scaling)
    print(markdown())
    print(json.dumps({"benchmark": "report", "chart": str(path.relative_to(ROOT))}))
    return 0
