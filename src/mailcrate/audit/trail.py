"""The audit trail of one server process: records API calls after their handler, and prunes
events past the retention period in the background.

A call's event is written in its own transaction right after the handler's (the handler's
transaction is its own business, and a failed call has none). A crash between the two loses that
call's event; what an export job did is never lost that way, since job events are written in the
job's own transactions (:mod:`mailcrate.audit.jobs`).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from botocore.model import Shape

from mailcrate.accounts import Principal
from mailcrate.audit.events import prune, record
from mailcrate.audit.requests import call_event, is_recorded
from mailcrate.storage.db import Database

log = logging.getLogger("mailcrate.audit")

PRUNE_INTERVAL_SECONDS = 3600.0


class AuditTrail:
    def __init__(self, db: Database, retention_days: int) -> None:
        self.db = db
        self.retention = timedelta(days=retention_days) if retention_days > 0 else None
        self._stop = threading.Event()

    def after_call(
        self,
        *,
        service: str,
        operation: str,
        input_shape: Shape | None,
        params: Mapping[str, Any] | None,
        output: Any,
        principal: Principal,
        region: str,
        request_id: str,
        source_ip: str | None,
        user_agent: str | None,
        error_code: str | None,
        error_message: str | None,
    ) -> None:
        """Record one authenticated call if it is one the trail keeps. Never raises: the call has
        been answered already, so a failed write is logged loudly instead."""
        if not is_recorded(service, operation):
            return
        event = call_event(
            service=service,
            operation=operation,
            input_shape=input_shape,
            params=params,
            output=output if isinstance(output, Mapping) else None,
            principal=principal,
            region=region,
            request_id=request_id,
            source_ip=source_ip,
            user_agent=user_agent,
            error_code=error_code,
            error_message=error_message,
        )
        try:
            with self.db.begin() as conn:
                record(conn, event)
        except Exception:  # the response is already decided; say the record is missing
            log.exception("audit event of %s.%s (request %s) NOT recorded", service, operation, request_id)

    def start_pruner(self) -> None:
        """Prune now and then every hour, in a daemon thread (no-op without a retention)."""
        if self.retention is None:
            return
        threading.Thread(target=self._prune_loop, name="audit-prune", daemon=True).start()

    def stop(self) -> None:
        self._stop.set()

    def _prune_loop(self) -> None:
        assert self.retention is not None
        while not self._stop.is_set():
            try:
                deleted = prune(self.db, self.retention)
                if deleted:
                    log.info("audit: pruned %d events older than %s", deleted, self.retention)
            except Exception:  # retry next round (database briefly unavailable)
                log.warning("audit: pruning failed; will retry", exc_info=True)
            self._stop.wait(PRUNE_INTERVAL_SECONDS)
