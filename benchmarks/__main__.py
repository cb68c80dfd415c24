"""Entry point: ``python -m benchmarks <name> [--quick]``.

Each benchmark prints a human table and, as its last line, one JSON object with its figures and
ratios against the baselines it ran side by side.
"""

from __future__ import annotations

import importlib
import sys

BENCHMARKS = {
    "api": "benchmarks.api",
    "api-jobs": "benchmarks.api_jobs",
    "audit-path": "benchmarks.audit_path",
    "export-embedded": "benchmarks.export_embedded",
    "export-imap": "benchmarks.export_imap",
    "export-scaling": "benchmarks.export_scaling",
    "migrate": "benchmarks.migrate",
    "vector-state": "benchmarks.vector_state",
    "recovery": "benchmarks.recovery",
    "report": "benchmarks.report",
    "restore": "benchmarks.restore",
    "s3": "benchmarks.s3_throughput",
    "source-memory": "benchmarks.source_memory",
}


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in BENCHMARKS:
        print(f"usage: python -m benchmarks {{{'|'.join(sorted(BENCHMARKS))}}} [--quick]", file=sys.stderr)
        return 2
    module = importlib.import_module(BENCHMARKS[argv[0]])
    return int(module.main(argv[1:]) or 0)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
