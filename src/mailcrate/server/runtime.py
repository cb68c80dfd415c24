"""Everything a request needs beyond itself, built once per server process.

No module-level mutable state: the service context (data directory, settings, service table,
authorizer), the access-key cache and the export wake-up all hang off one :class:`Runtime` that
the ASGI app owns. Services see only :attr:`Runtime.context`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from mailcrate.accounts import Principal, lookup_access_key
from mailcrate.audit.trail import AuditTrail
from mailcrate.config import Settings
from mailcrate.datadir import DataDir
from mailcrate.services.authorize import Authorizer
from mailcrate.services.base import ServiceSpec
from mailcrate.services.context import ServiceContext, ServiceHooks

_KEY_CACHE_SECONDS = 5.0


@dataclass
class Runtime:
    data_dir: DataDir
    settings: Settings
    services: Mapping[str, ServiceSpec]
    authorizer: Authorizer = field(default_factory=Authorizer)
    # The event StartMailboxExportJob sets to wake an idle worker.
    export_wakeup: threading.Event = field(default_factory=threading.Event)
    # Observers of every answered call (server/observe.py); None when switched off.
    audit: AuditTrail | None = None
    metrics: Any = None  # server.metrics.Metrics
    _keys: dict[str, tuple[float, Principal | None]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.target_prefixes = {
            spec.model.metadata["targetPrefix"]: name
            for name, spec in self.services.items()
            if spec.model.metadata.get("targetPrefix")
        }
        self.context = ServiceContext(
            data_dir=self.data_dir,
            authorizer=self.authorizer,
            services=self.services,
            settings=self.settings,
            hooks=ServiceHooks(export_started=self.export_wakeup.set, access_key_removed=self.forget_key),
        )

    def principal_for(self, access_key_id: str) -> Principal | None:
        """Look a key up, caching briefly so a burst of calls costs one query and one decryption."""
        now = time.monotonic()
        with self._lock:
            cached = self._keys.get(access_key_id)
        if cached is not None and now - cached[0] < _KEY_CACHE_SECONDS:
            return cached[1]
        principal = lookup_access_key(self.data_dir, access_key_id)
        with self._lock:
            if len(self._keys) > 10_000:
                self._keys.clear()
            self._keys[access_key_id] = (now, principal)
        return principal

    def forget_key(self, access_key_id: str) -> None:
        """Called when a key is deleted or deactivated in this process."""
        with self._lock:
            self._keys.pop(access_key_id, None)
