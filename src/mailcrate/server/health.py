"""``GET /health`` (liveness) and ``GET /ready`` (readiness), unsigned.

``/health`` is answered on the event loop without touching anything, so it answers while every
thread is busy: it says the process is alive. ``/ready`` says whether it can serve: the database
answers, and the master key opens what the database holds (a root access key's sealed secret),
within ``READY_TIMEOUT``; otherwise 503 with Retry-After and which of the two failed (a wrong
master.key used to pass as healthy, and every signed call then failed).
"""

from __future__ import annotations

import json
import logging

import anyio
import anyio.to_thread
from sqlalchemy import select

from mailcrate.accounts import ACCESS_KEY_PURPOSE
from mailcrate.protocol.http import HttpResponse
from mailcrate.server.runtime import Runtime
from mailcrate.storage.tables import access_keys

log = logging.getLogger("mailcrate.server")

READY_TIMEOUT = 2.0
_JSON = [("Content-Type", "application/json")]


def health() -> HttpResponse:
    return HttpResponse(200, list(_JSON), b'{"status":"ok"}')


def _check(runtime: Runtime) -> dict[str, str]:
    """What is not ready, by component (empty: ready)."""
    data_dir = runtime.data_dir
    try:
        with data_dir.db.read() as conn:
            sealed = conn.execute(
                select(access_keys.c.secret_sealed).where(access_keys.c.principal_kind == "root").limit(1)
            ).scalar()
    except Exception as exc:
        log.warning("readiness: the database does not answer: %s", type(exc).__name__)
        return {"database": "unavailable"}
    if sealed is not None:
        try:
            data_dir.secrets.open_text(sealed, ACCESS_KEY_PURPOSE)
        except Exception:
            log.error("readiness: master.key does not open this database's secrets (wrong or replaced key?)")
            return {"masterKey": "does not open the stored secrets"}
    return {}


async def ready(runtime: Runtime, limiter: anyio.CapacityLimiter) -> HttpResponse:
    problems: dict[str, str] | None = None
    with anyio.move_on_after(READY_TIMEOUT):
        problems = await anyio.to_thread.run_sync(_check, runtime, limiter=limiter, abandon_on_cancel=True)
    if problems is None:
        problems = {"database": f"no answer within {READY_TIMEOUT:g} s"}
    if problems:
        body = json.dumps({"status": "unavailable", **problems}).encode()
        return HttpResponse(503, [*_JSON, ("Retry-After", "5")], body)
    return HttpResponse(200, list(_JSON), b'{"status":"ready"}')
