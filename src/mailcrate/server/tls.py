"""The server's TLS: one ``SSLContext`` for the HTTP port and SMTP STARTTLS, reloaded on SIGHUP.

Both listeners hold the same context object, and OpenSSL takes the certificate for each new
handshake from the context, so loading the renewed files into it (``SIGHUP``, e.g. from a
certbot deploy hook) switches every new connection over without a restart; connections already
open keep the certificate they were set up with. A reload that fails (a half-written file, a key
that does not match) is logged and the old certificate stays in use.
"""

from __future__ import annotations

import logging
import ssl
import threading
from pathlib import Path

__all__ = ["ServerTls", "TlsError"]

log = logging.getLogger(__name__)


class TlsError(Exception):
    """The certificate or key cannot be used (missing, unreadable, not PEM, not a pair)."""


class ServerTls:
    """The certificate and key files, and the context built from them."""

    def __init__(self, cert_file: Path, key_file: Path) -> None:
        self.cert_file = Path(cert_file)
        self.key_file = Path(key_file)
        self._lock = threading.Lock()
        # PROTOCOL_TLS_SERVER with the library's secure defaults (no SSLv3/TLS 1.0/1.1, no
        # compression); clients are not asked for certificates (SigV4 authenticates them).
        self.context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.context.minimum_version = ssl.TLSVersion.TLSv1_2
        self._load(self.context)

    def _load(self, context: ssl.SSLContext) -> None:
        for path in (self.cert_file, self.key_file):  # OpenSSL's own error does not name the file
            if not path.is_file():
                raise TlsError(f"{path}: no such file")
        try:
            context.load_cert_chain(self.cert_file, self.key_file)
        except PermissionError as exc:
            raise TlsError(f"{exc.filename or self.key_file}: permission denied") from None
        except ssl.SSLError as exc:
            raise TlsError(
                f"cannot use {self.cert_file} with {self.key_file}: {exc.reason or exc} "
                "(both PEM; the key must belong to the first certificate)"
            ) from None

    def reload(self) -> bool:
        """Load the files again into the live context; on failure keep the old pair (False)."""
        with self._lock:
            try:
                # Check the new pair on a scratch context first: a failed load_cert_chain on the
                # live one could leave it holding the new certificate with the old key.
                probe = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
                self._load(probe)
                self._load(self.context)
            except TlsError as exc:
                log.error("TLS certificate not reloaded, the previous one stays in use: %s", exc)
                return False
        log.warning("TLS certificate reloaded from %s", self.cert_file)
        return True
