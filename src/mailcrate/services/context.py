"""What a handler may reach beyond its own call: the narrow service context.

Handlers see the database, the sealed-secrets box, the data directory's files, a clock, the
authorizer, the settings and the service table, nothing of whoever called them. The HTTP server
builds one context per process (:class:`mailcrate.server.runtime.Runtime` holds it) and so does
an export worker; both reach the handlers through :func:`mailcrate.services.invoke.invoke`, so a
rule added there applies to both.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from mailcrate.datadir import DataDir
from mailcrate.services.authorize import Authorizer
from mailcrate.storage.crypto import SecretBox
from mailcrate.storage.db import Database, utcnow

if TYPE_CHECKING:
    from mailcrate.services.base import ServiceSpec


def _ignore(*_: Any) -> None:
    return None


@dataclass(frozen=True)
class ServiceHooks:
    """Things a service tells its host about, which only the host can act on.

    ``export_started``: a job was inserted, wake an idle worker (the server's worker pool).
    ``access_key_removed``: forget a cached key lookup (the server caches them for 5 s)."""

    export_started: Callable[[], None] = _ignore
    access_key_removed: Callable[[str], None] = _ignore


@dataclass(frozen=True)
class ServiceContext:
    """The state a service operation runs against (one per process, shared by its threads)."""

    data_dir: DataDir
    authorizer: Authorizer
    services: Mapping[str, ServiceSpec]
    settings: Any = None  # mailcrate.config.Settings; None in-process where defaults apply
    clock: Callable[[], datetime] = utcnow
    hooks: ServiceHooks = field(default_factory=ServiceHooks)

    @property
    def db(self) -> Database:
        return self.data_dir.db

    @property
    def secrets(self) -> SecretBox:
        return self.data_dir.secrets

    def setting(self, name: str, default: Any) -> Any:
        """A setting of ``serve``'s table, or ``default`` where the host has none."""
        return getattr(self.settings, name, default) if self.settings is not None else default
