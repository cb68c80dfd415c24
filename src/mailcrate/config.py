"""One validated settings table: every knob with its flag, environment variable, default and help.

A setting with ``path=True`` names a file or directory; in a configuration file
(:mod:`mailcrate.config_file`) it is relative to the file's directory.

The CLI builds its options from this table (:func:`mailcrate.cli.options.settings_options`), so
a setting is declared once and documented once. Values are validated when the
:class:`Settings` object is built, not where they are used.
"""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from mailcrate.storage.drivers import normalise_database_url


def default_data_dir() -> Path:
    """Per-user default, following the XDG base-directory convention."""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "mailcrate"


def _setting(flag: str, env: str, default: Any, help: str, **extra: Any) -> Any:
    return field(default=default, metadata={"flag": flag, "env": env, "help": help, **extra})


#: Seconds a request to an external S3 may wait for the endpoint's next bytes (an UploadPart
#: above all) before it is abandoned and retried; the export code's default too.
PART_TIMEOUT_SECONDS = 10


@dataclass(frozen=True)
class Settings:
    data_dir: Path = _setting(
        "--data-dir",
        "MAILCRATE_DATA_DIR",
        None,
        "Data directory (default: ~/.local/share/mailcrate).",
        path=True,
    )
    host: str = _setting(
        "--host", "MAILCRATE_HOST", "127.0.0.1", "Address to listen on (loopback by default)."
    )
    port: int = _setting("--port", "MAILCRATE_PORT", 4566, "TCP port for every AWS-compatible service.")
    database_url: str | None = _setting(
        "--database-url",
        "MAILCRATE_DATABASE_URL",
        None,
        "SQLAlchemy URL of a shared database (default: SQLite in the data directory).",
    )
    max_request_bytes: int = _setting(
        "--max-request-bytes",
        "MAILCRATE_MAX_REQUEST_BYTES",
        10 * 1024 * 1024,
        "Largest JSON/Query request body accepted (S3 object bodies are streamed, not bounded by this).",
    )
    request_idle_seconds: int = _setting(
        "--request-idle-seconds",
        "MAILCRATE_REQUEST_IDLE_SECONDS",
        20,
        "Seconds an S3 upload may send nothing before it is answered RequestTimeout (each waiting "
        "upload holds one of the S3 threads).",
    )
    clock_skew_seconds: int = _setting(
        "--clock-skew-seconds",
        "MAILCRATE_CLOCK_SKEW_SECONDS",
        900,
        "How far a request's X-Amz-Date may be from the server clock (AWS: 15 minutes).",
    )
    log_level: str = _setting(
        "--log-level", "MAILCRATE_LOG_LEVEL", "info", "critical|error|warning|info|debug"
    )
    trusted_proxies: str | None = _setting(
        "--trusted-proxies",
        "MAILCRATE_TRUSTED_PROXIES",
        None,
        "CIDRs (comma or space separated) of reverse proxies whose X-Forwarded-For / "
        "X-Forwarded-Proto give aws:SourceIp and aws:SecureTransport (default: none; no one's "
        "forwarded headers count).",
    )
    smtp_port: int | None = _setting(
        "--smtp-port",
        "MAILCRATE_SMTP_PORT",
        None,
        "Also accept mail over SMTP on this port (same --host) for registered addresses (off by default).",
    )
    smtp_max_message_bytes: int = _setting(
        "--smtp-max-message-bytes",
        "MAILCRATE_SMTP_MAX_MESSAGE_BYTES",
        25 * 1024 * 1024,
        "Largest message SMTP accepts; larger ones get 552.",
    )
    # --- export jobs (mailcrate.jobs / mailcrate.export) ---------------------------------------
    export_workers: int = _setting(
        "--export-workers",
        "MAILCRATE_EXPORT_WORKERS",
        4,
        "Export jobs this server runs at once at most (0: run no exports here, only serve the "
        "API), spread over up to --export-processes worker processes; each process runs its "
        "share, so while only the first runs (the automatic count on a machine with no idle "
        "core), only its share runs at once.",
    )
    export_processes: int = _setting(
        "--export-processes",
        "MAILCRATE_EXPORT_PROCESSES",
        0,
        "Worker processes the export jobs are spread over (0: up to one per CPU core, each beyond "
        "the first only while a core is idle). One runs always; the others start while jobs wait "
        "for a free worker and end after a while without work.",
    )
    export_process_idle_seconds: int = _setting(
        "--export-process-idle-seconds",
        "MAILCRATE_EXPORT_PROCESS_IDLE_SECONDS",
        30,
        "Seconds a worker process started for waiting jobs stays without work before it ends.",
    )
    export_abort_retry_seconds: int = _setting(
        "--export-abort-retry-seconds",
        "MAILCRATE_EXPORT_ABORT_RETRY_SECONDS",
        30,
        "How soon an upload that a failed or cancelled job could not abort is tried again (then "
        "twice as long each time, at most an hour); workers look for such uploads this often.",
    )
    export_lease_seconds: int = _setting(
        "--export-lease-seconds",
        "MAILCRATE_EXPORT_LEASE_SECONDS",
        60,
        "A running job's lease: if its worker stops heartbeating for this long (crash, kill -9), "
        "another worker restarts the job.",
    )
    export_part_timeout_seconds: int = _setting(
        "--export-part-timeout-seconds",
        "MAILCRATE_EXPORT_PART_TIMEOUT_SECONDS",
        PART_TIMEOUT_SECONDS,
        "How long a request to an external S3 (an UploadPart above all) may wait for the "
        "endpoint's next bytes before it is abandoned and retried: a stalled part is retried "
        "after seconds, not after the minutes a socket timeout allows.",
    )
    export_max_attempts: int = _setting(
        "--export-max-attempts",
        "MAILCRATE_EXPORT_MAX_ATTEMPTS",
        3,
        "Times a job is started (first run, lease-expiry restarts, transient-fault retries) before it fails.",
    )
    export_part_size_mib: int | None = _setting(
        "--export-part-size-mib",
        "MAILCRATE_EXPORT_PART_SIZE_MIB",
        None,
        "S3 multipart part size of exports, in MiB (5-5120). Default: 8 over HTTP (each part is "
        "held whole), 64 into this server's own S3 in-process (parts stream through a 4 MiB ring).",
    )
    export_parts_in_flight: int = _setting(
        "--export-parts-in-flight",
        "MAILCRATE_EXPORT_PARTS_IN_FLIGHT",
        3,
        "Parts of one export uploading at once over HTTP (external S3, or a remote server's); memory "
        "per export is about part size x (this + 1). The embedded S3 takes parts as they fill, "
        "two at a time.",
    )
    export_max_running_per_org: int = _setting(
        "--export-max-running-per-org",
        "MAILCRATE_EXPORT_MAX_RUNNING_PER_ORG",
        10,
        "RUNNING export jobs allowed per organization (WorkMail: 10).",
    )
    export_mailbox_interval_seconds: int = _setting(
        "--export-mailbox-interval-seconds",
        "MAILCRATE_EXPORT_MAILBOX_INTERVAL_SECONDS",
        86400,
        "Minimum time between two exports of one mailbox (WorkMail: 24 h); FAILED and CANCELLED "
        "jobs do not count.",
    )
    aws_endpoint_url: str | None = _setting(
        "--aws-endpoint-url",
        "MAILCRATE_AWS_ENDPOINT_URL",
        None,
        "Export to this AWS-compatible endpoint (S3/STS/KMS) instead of the embedded services, or "
        "to AWS itself with the value `aws`; the job's role is assumed with sts:AssumeRole "
        "(ExternalId = account id) using credentials from the standard AWS chain.",
    )
    # --- production: TLS, configuration file (issue 19 part A) ------------------------------
    tls_cert: str | None = _setting(
        "--tls-cert",
        "MAILCRATE_TLS_CERT",
        None,
        "Serve HTTPS (and offer SMTP STARTTLS) with this PEM certificate chain, server certificate "
        "first; reloaded with the key on SIGHUP. `mailcrate init --tls` makes one.",
        path=True,
    )
    tls_key: str | None = _setting(
        "--tls-key", "MAILCRATE_TLS_KEY", None, "The PEM private key of --tls-cert.", path=True
    )
    # --- production: audit trail, metrics, logs, front door (issue 19) --------------------------
    audit: bool = _setting(
        "--audit",
        "MAILCRATE_AUDIT",
        True,
        "Record every call that changes state, every S3 object read and KMS key use in the audit "
        "trail (readable with `aws cloudtrail lookup-events`). Export job events are always recorded.",
    )
    audit_retention_days: int = _setting(
        "--audit-retention-days",
        "MAILCRATE_AUDIT_RETENTION_DAYS",
        90,
        "Days audit events are kept (CloudTrail's event history: 90); 0 keeps them forever.",
    )
    metrics: bool = _setting(
        "--metrics",
        "MAILCRATE_METRICS",
        True,
        "Serve Prometheus metrics at GET /metrics (unauthenticated, like /health: restrict it at "
        "the network if its figures are sensitive).",
    )
    log_format: str = _setting(
        "--log-format",
        "MAILCRATE_LOG_FORMAT",
        "text",
        "text|json: json writes one object per line with request_id, principal and job_id.",
    )
    header_timeout_seconds: int = _setting(
        "--header-timeout-seconds",
        "MAILCRATE_HEADER_TIMEOUT_SECONDS",
        10,
        "Seconds a client has to send a request's headers; slower ones get 408 and are closed.",
    )
    max_connections: int = _setting(
        "--max-connections",
        "MAILCRATE_MAX_CONNECTIONS",
        1000,
        "Open client connections at most; a newer one is closed at once (keep it under the "
        "process's file descriptor limit).",
    )
    max_buffered_bytes: int = _setting(
        "--max-buffered-bytes",
        "MAILCRATE_MAX_BUFFERED_BYTES",
        256 * 1024 * 1024,
        "Bytes of JSON/Query request bodies held in memory at once, all requests together; beyond "
        "it requests get 503 SlowDown (S3 bodies stream and do not count).",
    )
    upload_min_bytes_per_second: int = _setting(
        "--upload-min-bytes-per-second",
        "MAILCRATE_UPLOAD_MIN_BYTES_PER_SECOND",
        4096,
        "Average rate an S3 upload must keep after its first --request-idle-seconds, or it is "
        "answered RequestTimeout (0: no minimum).",
    )
    s3_streams_per_account: int = _setting(
        "--s3-streams-per-account",
        "MAILCRATE_S3_STREAMS_PER_ACCOUNT",
        8,
        "S3 uploads (PUT/POST) one account may have in progress at once (of 32 S3 threads), so one "
        "account's slow uploads cannot starve the others; more wait their turn.",
    )

    def __post_init__(self) -> None:
        if self.data_dir is None:
            object.__setattr__(self, "data_dir", default_data_dir())
        object.__setattr__(self, "data_dir", Path(self.data_dir).expanduser().absolute())
        if not 0 <= int(self.port) < 65536:
            raise ValueError(f"port must be 0-65535 (0: any free port), got {self.port}")
        if self.smtp_port is not None and not 0 < int(self.smtp_port) < 65536:
            raise ValueError(f"smtp-port must be 1-65535, got {self.smtp_port}")
        if self.smtp_max_message_bytes < 1024:
            raise ValueError("smtp-max-message-bytes must be at least 1024")
        if self.max_request_bytes < 1024:
            raise ValueError("max-request-bytes must be at least 1024")
        if self.request_idle_seconds < 1:
            raise ValueError("request-idle-seconds must be at least 1")
        if self.clock_skew_seconds < 0:
            raise ValueError("clock-skew-seconds must not be negative")
        if self.export_workers < 0:
            raise ValueError("export-workers must not be negative")
        if self.export_processes < 0:
            raise ValueError("export-processes must not be negative")
        if self.export_process_idle_seconds < 1:
            raise ValueError("export-process-idle-seconds must be at least 1")
        if self.export_abort_retry_seconds < 1:
            raise ValueError("export-abort-retry-seconds must be at least 1")
        if self.export_lease_seconds < 2:
            raise ValueError("export-lease-seconds must be at least 2")
        if not 1 <= self.export_part_timeout_seconds <= 3600:
            raise ValueError("export-part-timeout-seconds must be 1-3600")
        if self.export_max_attempts < 1:
            raise ValueError("export-max-attempts must be at least 1")
        if self.export_part_size_mib is not None and not 5 <= self.export_part_size_mib <= 5120:
            raise ValueError("export-part-size-mib must be 5-5120 (S3's part size limits)")
        if not 1 <= self.export_parts_in_flight <= 16:
            raise ValueError("export-parts-in-flight must be 1-16")
        if self.export_max_running_per_org < 1:
            raise ValueError("export-max-running-per-org must be at least 1")
        if self.export_mailbox_interval_seconds < 0:
            raise ValueError("export-mailbox-interval-seconds must not be negative")
        if self.database_url is not None:  # postgresql:// means psycopg 3 (the postgres extra)
            object.__setattr__(self, "database_url", normalise_database_url(self.database_url))
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("tls-cert and tls-key go together: give both, or neither for plain HTTP")
        self.trusted_proxy_networks()  # refuses a malformed CIDR at start
        if self.audit_retention_days < 0:
            raise ValueError("audit-retention-days must not be negative (0 keeps events forever)")
        if self.header_timeout_seconds < 1:
            raise ValueError("header-timeout-seconds must be at least 1")
        if self.max_connections < 1:
            raise ValueError("max-connections must be at least 1")
        if self.max_buffered_bytes < self.max_request_bytes:
            raise ValueError("max-buffered-bytes must be at least max-request-bytes")
        if self.upload_min_bytes_per_second < 0:
            raise ValueError("upload-min-bytes-per-second must not be negative (0: no minimum)")
        if not 1 <= self.s3_streams_per_account <= 32:
            raise ValueError("s3-streams-per-account must be 1-32 (the S3 threads)")
        if self.log_format not in {"text", "json"}:
            raise ValueError(f"log-format must be text or json, got {self.log_format!r}")
        if self.log_level not in {"critical", "error", "warning", "info", "debug"}:
            raise ValueError(f"unknown log level {self.log_level!r}")

    def trusted_proxy_networks(self) -> list[str]:
        """``--trusted-proxies`` as normalised networks (``127.0.0.1`` means ``127.0.0.1/32``)."""
        networks = []
        for item in (self.trusted_proxies or "").replace(",", " ").split():
            try:
                networks.append(str(ipaddress.ip_network(item, strict=False)))
            except ValueError:
                raise ValueError(f"trusted-proxies: {item!r} is not an IP network (CIDR)") from None
        return networks

    def with_values(self, **values: Any) -> Settings:
        return replace(self, **{k: v for k, v in values.items() if v is not None})


def setting_fields() -> list[Any]:
    """The table itself, for the CLI and the documentation."""
    return list(fields(Settings))
