"""``python -m mailcrate.runner``: the worker child that ``mailcrate serve`` starts.

The same as ``mailcrate worker``, without the click CLI and the modules of the other commands
(accounts, admin, quickstart): the child's settings arrive as MAILCRATE_* variables
(:func:`mailcrate.jobs.process.worker_env`), so only two flags need parsing. This keeps the
child's idle RSS down (it is summed with the server's in the memory targets of BENCHMARKS.md).
"""

from __future__ import annotations

import os
import sys
from typing import Any

from mailcrate.config import Settings, setting_fields


def settings_from_env(environ: dict[str, str] | os._Environ[str] = os.environ) -> Settings:
    values: dict[str, Any] = {}
    for f in setting_fields():
        raw = environ.get(f.metadata["env"])
        if raw is None:
            continue
        kind = str(f.type)
        if kind.startswith("int"):
            values[f.name] = int(raw)
        elif kind == "bool":  # worker_env wrote str(True) / str(False)
            values[f.name] = raw.strip().lower() in {"1", "true", "yes", "on"}
        else:
            values[f.name] = raw
    return Settings(**values)


def main(argv: list[str]) -> int:
    server_url: str | None = None
    wakeups_on_stdin = False
    exit_when_idle: float | None = None
    args = iter(argv)
    for arg in args:
        if arg == "--wakeups-on-stdin":
            wakeups_on_stdin = True
        elif arg == "--exit-when-idle" and (value := next(args, "")).replace(".", "", 1).isdigit():
            exit_when_idle = float(value)
        elif arg == "--server-url":
            server_url = next(args, None)
        elif arg.startswith("--server-url="):
            server_url = arg.split("=", 1)[1]
        else:
            print(
                "usage: python -m mailcrate.runner [--wakeups-on-stdin] [--exit-when-idle SECONDS] "
                f"[--server-url URL] ({arg}?)",
                file=sys.stderr,
            )
            return 2
    from mailcrate.runner.worker import run_worker

    run_worker(
        settings_from_env(), server_url, wakeups_on_stdin=wakeups_on_stdin, exit_when_idle=exit_when_idle
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
