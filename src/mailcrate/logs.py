"""Logging set-up for ``serve`` and its worker children: text (default) or one JSON object per
line (``--log-format json``) carrying the request id, principal and job id of the line's context.

The ids travel in context variables: :mod:`mailcrate.server.dispatch` sets the request id and
principal for the call it runs, the export worker sets the job id for the job its thread runs.
anyio copies the context into the thread a call runs in, so every line logged on a call's behalf
carries them. Secrets never get here: the principal is an ARN, and the request line names no
query string or header.
"""

from __future__ import annotations

import json
import logging
import sys
from contextvars import ContextVar
from datetime import UTC, datetime

REQUEST_ID: ContextVar[str | None] = ContextVar("mailcrate_request_id", default=None)
PRINCIPAL: ContextVar[str | None] = ContextVar("mailcrate_principal", default=None)
JOB_ID: ContextVar[str | None] = ContextVar("mailcrate_job_id", default=None)

FORMATS = ("text", "json")


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time, level, logger, process role, message, the context's
    ids, and any ``extra`` fields a caller attached (``log.info(..., extra={"status": 200})``)."""

    _STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime"}

    def __init__(self, role: str) -> None:
        super().__init__()
        self.role = role

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "process": self.role,
            "message": record.getMessage(),
            "request_id": REQUEST_ID.get(),
            "principal": PRINCIPAL.get(),
            "job_id": JOB_ID.get(),
        }
        for key, value in vars(record).items():
            if key not in self._STANDARD and key not in line:
                line[key] = value
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str, ensure_ascii=False)


def configure(level: str, fmt: str, role: str) -> None:
    """Install the root handler on stderr (``role``: "serve" or "worker")."""
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter(role))
    else:
        tag = "" if role == "serve" else f"[{role}]"
        handler.setFormatter(logging.Formatter(f"%(asctime)s %(levelname)s %(name)s{tag}: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
