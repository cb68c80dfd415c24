"""Real test servers on loopback (Dovecot IMAP, Radicale CalDAV) for any test or benchmark.

    from servers import start_dovecot, start_radicale   # tests/ on sys.path (pytest does this)

    dv = start_dovecot(tmp_path)                 # DovecotServer: host, port, users, master_user, ...
    dv.put_message("alice", ("Inbox",), raw)     # straight into Maildir, much faster than APPEND
    dv.stop()

    rad = start_radicale(tmp_path)               # RadicaleServer: host, port, url, users, ...
    rad.stop()

Each server runs in its own temp directory on a free 127.0.0.1 port and is a child of the test
process, so ``stop()`` reaps it.  Nothing in /etc is touched.  See ``tests/mail/conftest.py`` for
ready-made pytest fixtures.
"""

from .dovecot import DovecotServer, DovecotUnavailable, start_dovecot
from .net import free_port, wait_port
from .radicale import RadicaleServer, start_radicale
from .tls import TestCA, make_test_ca

__all__ = [
    "DovecotServer",
    "DovecotUnavailable",
    "RadicaleServer",
    "TestCA",
    "free_port",
    "make_test_ca",
    "start_dovecot",
    "start_radicale",
    "wait_port",
]
