"""A throw-away Dovecot IMAP server on 127.0.0.1 (Debian ``dovecot-imapd``), no systemd.

Facts this relies on (checked on Debian 12, Dovecot 2.3): mail must be owned by a non-root user
(``vmail`` is created if missing), passwd-files must be readable by group ``dovecot``, the
config directory must be traversable by ``dovecot``/``dovenull``, and ``auth_failure_delay = 0``
plus a disabled anvil penalty keep negative login tests instant.  Dovecot runs in the foreground
(``-F``) as our child, so ``stop()`` reaps it.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from imapclient import imap_utf7

from .net import free_port, wait_port
from .tls import TestCA, make_test_ca


class DovecotUnavailable(RuntimeError):
    """Dovecot is not installed, or we are not root (needed for mail_uid switching)."""


DEFAULT_USERS = {"alice": "alicepw", "bob": "bobpw"}


@dataclass
class DovecotServer:
    """A running Dovecot.  ``port`` is plain IMAP (STARTTLS offered when ``tls``); ``imaps_port``
    is implicit TLS (``None`` without ``tls``); ``ca_file`` trusts its certificate."""

    host: str
    port: int
    users: dict[str, str]
    master_user: str
    master_password: str
    mail_root: Path
    base_dir: Path
    process: subprocess.Popen[bytes] = field(repr=False)
    imaps_port: int | None = None
    ca_file: Path | None = None
    _uid: int = 0
    _gid: int = 0
    _owned_dir: bool = False

    @property
    def url(self) -> str:
        return f"imap://{self.host}:{self.port}"

    @property
    def imaps_url(self) -> str:
        return f"imaps://{self.host}:{self.imaps_port}"

    def maildir(self, user: str) -> Path:
        """The user's Maildir root (their INBOX)."""
        return self.mail_root / user / "Maildir"

    def folder_dir(self, user: str, path: tuple[str, ...]) -> Path:
        """Dovecot's default Maildir++ directory for a folder (``.`` separator, modified UTF-7)."""
        if path == ("INBOX",) or path == ("Inbox",):
            return self.maildir(user)
        if any("." in p or "/" in p for p in path):
            raise ValueError("Dovecot's Maildir++ layout cannot hold '.' or '/' in folder names")
        return self.maildir(user) / ("." + ".".join(imap_utf7.encode(p).decode() for p in path))

    def add_users(self, users: dict[str, str]) -> dict[str, str]:
        """Give the running server more users (Dovecot re-reads its passwd-file when it changes),
        each with an empty INBOX: how a test module gets mailboxes of its own on the shared
        server. Returns ``users``."""
        clash = set(users) & set(self.users)
        if clash:
            raise ValueError(f"users already on this Dovecot: {sorted(clash)}")
        self.users.update(users)
        passwd = self.base_dir / "users"
        with open(passwd, "a") as f:
            f.write("".join(f"{u}:{{PLAIN}}{pw}::::::\n" for u, pw in users.items()))
        for user in users:
            home = self.mail_root / user
            home.mkdir()
            os.chown(home, self._uid, self._gid)
            self.add_folder(user, ("INBOX",))
        for user, password in users.items():
            self._await_login(user, password)
        return users

    def _await_login(self, user: str, password: str, seconds: float = 10) -> None:
        """Dovecot looks at its passwd-file again at most once a second: a user added within the
        second of another lookup is refused until then (seen as a failed LOGIN in a module that
        added its users right after another's)."""
        from imapclient import IMAPClient
        from imapclient.exceptions import LoginError

        deadline = time.monotonic() + seconds
        while True:
            try:
                with IMAPClient(self.host, self.port, ssl=False) as client:
                    client.login(user, password)
                return
            except LoginError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

    def add_folder(self, user: str, path: tuple[str, ...]) -> Path:
        d = self.folder_dir(user, path)
        for p in (d.parent, d, d / "cur", d / "new", d / "tmp"):
            p.mkdir(exist_ok=True)
            os.chown(p, self._uid, self._gid)
        if d != self.maildir(user) and not (d / "maildirfolder").exists():
            (d / "maildirfolder").touch()
            os.chown(d / "maildirfolder", self._uid, self._gid)
        return d

    def put_messages(
        self, user: str, path: tuple[str, ...], messages: Iterable[tuple[bytes, str]]
    ) -> list[Path]:
        """Write ``(raw, maildir_flag_letters)`` files straight into ``cur/`` (thousands per second,
        where IMAP APPEND does a few hundred); Dovecot indexes them on the next SELECT."""
        d = self.add_folder(user, path)
        out = []
        base = time.time_ns()
        for i, (raw, letters) in enumerate(messages):
            name = f"{base // 10**9}.M{i:07d}P{os.getpid()}.test:2,{''.join(sorted(letters))}"
            target = d / "cur" / name
            target.write_bytes(raw)
            os.chown(target, self._uid, self._gid)
            out.append(target)
        return out

    def put_message(self, user: str, path: tuple[str, ...], raw: bytes, letters: str = "S") -> Path:
        return self.put_messages(user, path, [(raw, letters)])[0]

    def imap_processes(self, user: str | None = None) -> list[object]:
        """``psutil.Process`` objects of the ``imap`` processes serving sessions (of ``user``)."""
        import psutil

        procs = []
        for child in psutil.Process(self.process.pid).children(recursive=True):
            try:
                argv = child.cmdline()
            except psutil.Error:
                continue
            # verbose_proctitle: "<instance>/imap [alice 127.0.0.1 ...]"
            is_session = bool(argv) and argv[0].endswith("/imap")
            if is_session and (user is None or (len(argv) > 1 and argv[1] == f"[{user}")):
                procs.append(child)
        return procs

    def kill_sessions(self, user: str | None = None) -> int:
        """SIGKILL the processes serving IMAP sessions: the client sees a dropped connection."""
        procs = self.imap_processes(user)
        for p in procs:
            p.kill()  # type: ignore[attr-defined]
        return len(procs)

    def stop(self) -> None:
        """Stop the master, then kill any session processes it left behind (orphans linger)."""
        import psutil

        try:
            children = psutil.Process(self.process.pid).children(recursive=True)
        except psutil.Error:
            children = []
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        for child in children:
            with contextlib.suppress(psutil.Error):
                child.kill()
        for port in (self.port, self.imaps_port):
            if port:
                wait_port(self.host, port, closed=True)
        if self._owned_dir:
            shutil.rmtree(self.base_dir, ignore_errors=True)


def _ensure_vmail() -> tuple[int, int]:
    try:
        pw = pwd.getpwnam("vmail")
    except KeyError:
        subprocess.run(
            ["useradd", "--system", "--no-create-home", "--home-dir", "/nonexistent",
             "--shell", "/usr/sbin/nologin", "vmail"],
            check=True,
        )  # fmt: skip
        pw = pwd.getpwnam("vmail")
    return pw.pw_uid, pw.pw_gid


def start_dovecot(
    tmp_dir: str | os.PathLike[str],
    *,
    users: dict[str, str] | None = None,
    master_user: str = "admin",
    master_password: str = "adminpw",
    tls: bool = False,
) -> DovecotServer:
    """Start Dovecot with its config, Maildirs and logs under ``tmp_dir``; see the module doc."""
    binary = shutil.which("dovecot") or ("/usr/sbin/dovecot" if os.path.exists("/usr/sbin/dovecot") else None)
    if binary is None:
        raise DovecotUnavailable("dovecot is not installed (apt-get install dovecot-imapd)")
    if os.geteuid() != 0:
        raise DovecotUnavailable("starting a test Dovecot needs root (it switches to the mail user)")
    users = dict(users or DEFAULT_USERS)
    uid, gid = _ensure_vmail()
    # Dovecot's auth and login processes (users dovecot/dovenull) must traverse the whole path;
    # pytest's temp root is 0700, so fall back to a fresh /tmp directory (removed by stop()).
    base = Path(tmp_dir).resolve()
    owned = not _traversable(base)
    d = (
        Path(tempfile.mkdtemp(prefix="mailcrate-dovecot-"))
        if owned
        else base / f"dovecot-{os.urandom(3).hex()}"
    )
    for sub in ("run", "state", "mail"):
        (d / sub).mkdir(parents=True)
    os.chmod(d, 0o755)
    os.chown(d / "mail", uid, gid)
    (d / "users").write_text("".join(f"{u}:{{PLAIN}}{pw}::::::\n" for u, pw in users.items()))
    (d / "master-users").write_text(f"{master_user}:{{PLAIN}}{master_password}::::::\n")
    dovecot_gid = _group_id("dovecot")
    for f in ("users", "master-users"):
        os.chown(d / f, 0, dovecot_gid)
        os.chmod(d / f, 0o640)
    port = free_port()
    imaps_port = free_port() if tls else None
    ca: TestCA | None = make_test_ca(d / "tls") if tls else None
    ssl_conf = f"ssl = yes\nssl_cert = <{ca.cert_file}\nssl_key = <{ca.key_file}\n" if ca else "ssl = no\n"
    (d / "dovecot.conf").write_text(
        f"""instance_name = mailcrate-test-{port}
base_dir = {d}/run
state_dir = {d}/state
protocols = imap
listen = 127.0.0.1
{ssl_conf}disable_plaintext_auth = no
auth_mechanisms = plain login
log_path = {d}/dovecot.log
default_login_user = dovenull
default_internal_user = dovecot
mail_uid = {uid}
mail_gid = {gid}
first_valid_uid = 1
mail_location = maildir:{d}/mail/%u/Maildir
mail_fsync = never
verbose_proctitle = yes
auth_master_user_separator = *
auth_failure_delay = 0
service anvil {{
  unix_listener anvil-auth-penalty {{
    mode = 0
  }}
}}
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {d}/master-users
  master = yes
  result_success = continue
}}
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {d}/users
}}
userdb {{
  driver = passwd-file
  args = username_format=%u {d}/users
  default_fields = home={d}/mail/%u
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {imaps_port or 0}
  }}
}}
protocol imap {{
  mail_max_userip_connections = 100
}}
"""
    )
    log = open(d / "dovecot.stderr", "ab")  # noqa: SIM115 - handed to the child
    proc = subprocess.Popen(
        [binary, "-F", "-c", str(d / "dovecot.conf")], stdin=subprocess.DEVNULL, stdout=log, stderr=log
    )
    log.close()
    server = DovecotServer(
        host="127.0.0.1",
        port=port,
        users=users,
        master_user=master_user,
        master_password=master_password,
        mail_root=d / "mail",
        base_dir=d,
        process=proc,
        imaps_port=imaps_port,
        ca_file=ca.ca_file if ca else None,
        _uid=uid,
        _gid=gid,
        _owned_dir=owned,
    )
    try:
        wait_port("127.0.0.1", port)
        if imaps_port:
            wait_port("127.0.0.1", imaps_port)
    except TimeoutError:
        server.stop()
        raise DovecotUnavailable(f"dovecot did not start; see {d}/dovecot.log") from None
    for user in users:
        (d / "mail" / user).mkdir()
        os.chown(d / "mail" / user, uid, gid)
        server.add_folder(user, ("INBOX",))
    return server


def _traversable(path: Path) -> bool:
    return all(os.stat(p).st_mode & 0o001 for p in (path, *path.parents))


def _group_id(name: str) -> int:
    import grp

    try:
        return grp.getgrnam(name).gr_gid
    except KeyError:
        return 0
