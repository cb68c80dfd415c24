"""Running the server: bind, announce, serve until SIGINT/SIGTERM, shut down cleanly."""

from __future__ import annotations

import contextlib
import logging
import signal
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import uvicorn

from mailcrate.audit.trail import AuditTrail
from mailcrate.config import Settings
from mailcrate.datadir import DataDir
from mailcrate.jobs import store
from mailcrate.jobs.process import WorkerProcess
from mailcrate.logs import configure as configure_logs
from mailcrate.malloc import limit_arenas, start_trimmer
from mailcrate.network import is_loopback
from mailcrate.server.app import MailcrateApp
from mailcrate.server.frontdoor import guarded_protocol
from mailcrate.server.heap import freeze_startup_heap
from mailcrate.server.runtime import Runtime
from mailcrate.server.tls import ServerTls
from mailcrate.services.registry import build_services, identity_authorizer

if TYPE_CHECKING:  # imported when --smtp-port asks for it: aiosmtpd costs an idle server ~1.5 MiB
    import ssl

    from mailcrate.mail.smtp import SMTPIntake

log = logging.getLogger(__name__)


class _Server(uvicorn.Server):
    """uvicorn re-raises SIGTERM after its graceful shutdown (the process then dies by the signal);
    a service manager expects a clean exit status 0 after a requested stop, so swallow it."""

    tls: ServerTls | None = None

    def _reload(self, _sig: int, _frame: object) -> None:
        if self.tls is not None:
            self.tls.reload()
        else:
            log.warning("SIGHUP: nothing to reload (no --tls-cert)")

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        original = {sig: signal.signal(sig, self.handle_exit) for sig in (signal.SIGINT, signal.SIGTERM)}
        # SIGHUP (systemctl reload): load the renewed certificate (server/tls.py). Without TLS
        # there is nothing to reload, but the default action would end the server.
        original[signal.SIGHUP] = signal.signal(signal.SIGHUP, self._reload)
        try:
            yield
        finally:
            for sig, handler in original.items():
                signal.signal(sig, handler)


def build_app(
    settings: Settings, data_dir: DataDir, tls_context: ssl.SSLContext | None = None
) -> MailcrateApp:
    # Job events are always recorded (in the jobs' own transactions), so retention always runs;
    # --audit false only stops the recording of API calls.
    trail = AuditTrail(data_dir.db, settings.audit_retention_days)
    runtime = Runtime(
        data_dir=data_dir,
        settings=settings,
        services=build_services(),
        authorizer=identity_authorizer(),
        audit=trail if settings.audit else None,
    )
    # Export workers run in child processes (`mailcrate worker`): their own GIL and heap; a
    # second one starts while jobs wait for a worker (see WorkerProcess).
    node_id = data_dir.node_id
    pool = WorkerProcess(
        settings,
        runtime.export_wakeup,
        waiting_since=lambda: store.oldest_waiting_since(data_dir.db, node_id),
        release_dead=lambda pid: store.release_dead_process(data_dir.db, pid),
    )
    startup, shutdown = [pool.start, trail.start_pruner], [pool.stop, trail.stop]
    if settings.metrics:  # before the pool starts its children: they inherit the directory
        from mailcrate.server import metrics

        path = metrics.enable(settings.data_dir)
        runtime.metrics = metrics.Metrics(path, data_dir.db, lambda: pool.process_count)
        shutdown.append(lambda: metrics.disable(path))
    if settings.smtp_port is not None:
        intake = _SmtpIntake(settings, data_dir, tls_context)
        startup.append(intake.start)
        shutdown.append(intake.stop)
    return MailcrateApp(runtime, on_startup=startup, on_shutdown=shutdown)


class _SmtpIntake:
    """SMTP delivery into the embedded store, living as long as the server."""

    def __init__(self, settings: Settings, data_dir: DataDir, tls_context: ssl.SSLContext | None) -> None:
        self.settings = settings
        self.data_dir = data_dir
        self.tls_context = tls_context
        self.handle: SMTPIntake | None = None

    def start(self) -> None:
        from mailcrate.mail.smtp import start_smtp
        from mailcrate.services.workmail.users import mailbox_for_address

        assert self.settings.smtp_port is not None
        self.handle = start_smtp(
            self.settings.host,
            self.settings.smtp_port,
            lambda address: mailbox_for_address(self.data_dir, address),
            self.settings.smtp_max_message_bytes,
            tls_context=self.tls_context,
        )
        starttls = " (STARTTLS offered)" if self.tls_context is not None else ""
        print(
            f"mailcrate accepting SMTP on {self.settings.host}:{self.settings.smtp_port}{starttls}",
            flush=True,
        )

    def stop(self) -> None:
        if self.handle is not None:
            self.handle.stop()


def _load_tls(settings: Settings) -> ServerTls | None:
    if settings.tls_cert is None or settings.tls_key is None:
        return None
    return ServerTls(Path(settings.tls_cert), Path(settings.tls_key))


def serve(settings: Settings) -> None:
    limit_arenas()
    start_trimmer()
    configure_logs(settings.log_level, settings.log_format, "serve")
    tls = _load_tls(settings)
    if tls is None and not is_loopback(settings.host):  # said before binding, whatever happens next
        log.warning(
            "listening on %s without TLS: requests and answers (exported mail, session tokens, KMS "
            "data keys) cross the network in clear; start with --tls-cert/--tls-key "
            "(`mailcrate init --tls` makes a certificate)",
            settings.host,
        )
    data_dir = DataDir.open(settings.data_dir, database_url=settings.database_url)
    app = build_app(settings, data_dir, tls.context if tls else None)
    app.on_startup.append(freeze_startup_heap)  # last: what startup built lives as long as serve
    family = socket.AF_INET6 if ":" in settings.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((settings.host, settings.port))
    sock.listen(1024)
    host, port = sock.getsockname()[:2]
    shown_host = f"[{host}]" if ":" in host else host
    config = uvicorn.Config(
        app,
        log_level=settings.log_level,
        # json: uvicorn's own lines go through the root handler too, instead of its text ones
        log_config=None if settings.log_format == "json" else uvicorn.config.LOGGING_CONFIG,
        access_log=False,  # our own request log omits query strings, which can carry session tokens
        lifespan="on",
        timeout_graceful_shutdown=10,
        http=guarded_protocol(settings.header_timeout_seconds, settings.max_connections),
        server_header=False,
        # uvicorn decides "this is TLS" from the file names, then we hand it our own context
        # (the one SIGHUP reloads and SMTP STARTTLS shares).
        ssl_certfile=settings.tls_cert,
        ssl_keyfile=settings.tls_key,
        # Forwarded headers count only from --trusted-proxies (uvicorn trusts loopback by default,
        # which would let any local client choose its aws:SourceIp and aws:SecureTransport).
        proxy_headers=bool(settings.trusted_proxy_networks()),
        forwarded_allow_ips=settings.trusted_proxy_networks() or [],
    )
    server = _Server(config)
    if tls is not None:
        config.load()
        config.ssl = tls.context
        server.tls = tls
    scheme = "https" if tls is not None else "http"
    print(f"mailcrate listening on {scheme}://{shown_host}:{port} (data dir {settings.data_dir})", flush=True)
    try:
        server.run(sockets=[sock])
    finally:
        data_dir.close()
        print("mailcrate stopped", flush=True)
