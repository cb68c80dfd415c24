"""The exporter's knobs, taken from ``serve``'s settings table once per worker pool."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from mailcrate.config import PART_TIMEOUT_SECONDS

MIB = 1024 * 1024

__all__ = ["MIB", "ExportSettings", "export_settings_from"]


@dataclass(frozen=True)
class ExportSettings:
    part_size: int = 8 * MIB  # parts held whole (UploadPart over HTTP): part_size x (in flight + 1)
    # Parts streamed into the embedded S3 in-process: memory is their ring (uploader.STREAM_RING)
    # whatever their size, and each UploadPart costs ~8 ms of the worker's CPU (policy, data key,
    # rows): 64 MiB parts cost 0.1 CPU-s per GiB of mail where 8 MiB ones cost 0.7.
    stream_part_size: int = 64 * MIB
    parts_in_flight: int = 3
    lease: timedelta = timedelta(seconds=60)
    endpoint_url: str | None = None  # an external endpoint, "aws", or a remote mailcrate server
    external: bool = False
    remote_server: bool = False  # endpoint_url is another mailcrate server (see Destination.open)
    compresslevel: int = 1
    zip64_limit: int | None = None
    transient_retries: int = 3
    retry_base_seconds: float = 2.0
    progress_interval: float = 1.0
    # An external S3 request's read timeout: how soon a stalled part is abandoned and retried.
    part_timeout: float = float(PART_TIMEOUT_SECONDS)
    # A botocore Loader shared by the jobs of one pool (parsing the S3 model costs ~0.3 s).
    loader: Any = field(default=None, compare=False)

    @property
    def resumable(self) -> bool:
        """Whether an attempt continues an earlier one's upload (mailcrate.export.checkpoint):
        only in-process into the embedded S3, whose write guard lets only the attempt holding
        the job write to the upload. An external S3 cannot fence a superseded attempt's late
        parts, so there every attempt writes an upload of its own."""
        return not self.external and not self.remote_server


def export_settings_from(settings: Any, server_url: str | None) -> ExportSettings:
    """The exporter's settings from ``serve``'s settings table. ``server_url`` (``mailcrate
    worker --server-url``) names a mailcrate server on another machine whose embedded S3 the
    exports go to over HTTP; without it they go in-process into this data directory's embedded
    S3, unless ``--aws-endpoint-url`` points elsewhere."""
    external_url = getattr(settings, "aws_endpoint_url", None)
    loader = None
    if external_url or server_url:
        # Only boto3 (external S3, or a remote server's) reads botocore's models; one loader
        # shared by the jobs keeps them parsed once. The in-process destination needs none, so
        # an idle worker does not import botocore's loader for it.
        import botocore.loaders

        loader = botocore.loaders.create_loader()
    chosen = settings.export_part_size_mib
    sizes = {} if chosen is None else {"part_size": chosen * MIB, "stream_part_size": chosen * MIB}
    return ExportSettings(
        **sizes,
        parts_in_flight=settings.export_parts_in_flight,
        lease=timedelta(seconds=settings.export_lease_seconds),
        part_timeout=float(settings.export_part_timeout_seconds),
        endpoint_url=external_url or server_url,
        external=bool(external_url),
        remote_server=bool(server_url) and not external_url,
        loader=loader,
    )
