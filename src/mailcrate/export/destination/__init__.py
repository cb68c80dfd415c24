"""Where an export goes: S3 (and KMS through it), always acting as the job's role.

One module per concern:

* :mod:`.errors`: permanent vs transient failures and what to tell the administrator;
* :mod:`.contract`: what a destination does (:class:`ExportDestination`) and the checks before
  any byte is written (:class:`Checks`);
* :mod:`.roles`: assuming the job's role, in-process as the service principal or externally;
* :mod:`.embedded`: the embedded S3 in-process, through the services' one road (``invoke``);
* :mod:`.boto`: boto3 over HTTP (an external S3, AWS, or a remote mailcrate server).

:func:`open_destination` below is the one place that chooses between them.
"""

from __future__ import annotations

from typing import Any

from mailcrate.export.destination.boto import READ_TIMEOUT, REAL_AWS, BotoDestination, endpoint_for
from mailcrate.export.destination.contract import ExportDestination
from mailcrate.export.destination.errors import (
    TRANSIENT_CODES,
    ExportError,
    TransientExportError,
    classify,
    error_code,
)
from mailcrate.export.destination.roles import SERVICE_PRINCIPAL, embedded_assumer, external_assumer
from mailcrate.export.settings import ExportSettings
from mailcrate.jobs import store
from mailcrate.jobs.records import ExportJob
from mailcrate.services.base import WriteGuard
from mailcrate.services.context import ServiceContext

__all__ = [
    "REAL_AWS",
    "SERVICE_PRINCIPAL",
    "TRANSIENT_CODES",
    "ExportDestination",
    "ExportError",
    "TransientExportError",
    "classify",
    "error_code",
    "open_destination",
    "open_for_job",
]


def open_destination(
    job: ExportJob,
    *,
    context: ServiceContext,
    endpoint_url: str | None,
    external: bool,
    remote_server: bool = False,
    max_connections: int = 10,
    loader: Any = None,
    write_guard: WriteGuard | None = None,
    read_timeout: float = READ_TIMEOUT,
) -> ExportDestination:
    """Assume the job's role and return where to write:

    * ``external``: boto3 STS and S3 at ``endpoint_url`` (None or :data:`REAL_AWS` = AWS's own
      endpoints);
    * ``remote_server``: the embedded S3 of the mailcrate server at ``endpoint_url``, over
      HTTP with boto3 (a ``mailcrate worker --server-url`` on another machine shares the
      database, so it assumes the role in-process, but not the server's disk);
    * otherwise the embedded S3 of this data directory, in-process, where ``write_guard``
      fences each write where it lands (an external S3 cannot run it: there the export's
      commit protocol, :mod:`mailcrate.export.job`, keeps late writes harmless)."""
    if external or remote_server:
        assume = (
            external_assumer(job, endpoint_for(endpoint_url)) if external else embedded_assumer(job, context)
        )
        return BotoDestination.open(
            job,
            endpoint_url=endpoint_url,
            assume=assume,
            max_connections=max_connections,
            loader=loader,
            read_timeout=read_timeout,
        )
    from mailcrate.export.destination.embedded import EmbeddedDestination

    return EmbeddedDestination.open(
        job, context=context, assume=embedded_assumer(job, context), write_guard=write_guard
    )


def open_for_job(
    job: ExportJob,
    context: ServiceContext,
    settings: ExportSettings,
    *,
    attempt: str | None = None,
    max_connections: int = 10,
) -> ExportDestination:
    """:func:`open_destination` with the exporter's settings; ``attempt`` (the attempt's
    ``<worker>#<fence>``) fences every write on the embedded S3 to that attempt."""
    return open_destination(
        job,
        context=context,
        endpoint_url=settings.endpoint_url,
        external=settings.external,
        remote_server=settings.remote_server,
        max_connections=max_connections,
        loader=settings.loader,
        write_guard=store.guard_attempt_writes(job.job_id, attempt) if attempt else None,
        read_timeout=settings.part_timeout,
    )
