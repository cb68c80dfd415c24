"""``mailcrate mailbox bind`` will not send a password in clear to another machine by accident:
plaintext IMAP (``imap://`` without ``--imap-starttls``) or ``http://`` CalDAV to a host that is
not loopback needs ``--allow-plaintext``; the refusal stores nothing."""

from __future__ import annotations

import json
from pathlib import Path

from tests.cli.support import mailbox_args, no_aws_env, run
from tests.jobs.support import new_mailbox
from tests.support.mailcrate_server import MailcrateServer


def _source(server: MailcrateServer, base: tuple[str, ...]) -> dict:
    shown = run("mailbox", "show", *base, "--output", "json", env=no_aws_env())
    assert shown.returncode == 0, shown.stderr
    return json.loads(shown.stdout)


def test_plaintext_to_a_remote_host_needs_allow_plaintext(server: MailcrateServer, tmp_path: Path) -> None:
    mb = new_mailbox(server)
    (tmp_path / "pw").write_text("Imap-Passw0rd\n")
    base = mailbox_args(server, mb)
    imap = ("--imap-user", "alice", "--imap-password-file", str(tmp_path / "pw"), "--no-check")
    dav = ("--caldav-user", "alice", "--caldav-password-file", str(tmp_path / "pw"))

    refused = run("mailbox", "bind", *base, "--imap", "imap://mail.example.org", *imap, env=no_aws_env())
    assert refused.returncode == 2 and "Traceback" not in refused.stderr
    assert (
        "imap://mail.example.org would send the IMAP password to mail.example.org in clear" in refused.stderr
    )
    assert "imaps:// or --imap-starttls" in refused.stderr and "--allow-plaintext" in refused.stderr
    refused = run("mailbox", "bind", *base, "--imap", "imaps://mail.example.org", *imap,
                  "--caldav", "http://dav.example.org/dav/", *dav, env=no_aws_env())  # fmt: skip
    assert refused.returncode == 2 and "would send the CalDAV password to dav.example.org" in refused.stderr
    assert _source(server, base)["Source"] == "embedded"  # nothing was stored

    # Loopback, TLS, STARTTLS and an explicit --allow-plaintext are accepted.
    for url, extra in (
        ("imap://127.0.0.1:1143", ()),
        ("imap://[::1]:1143", ()),
        ("imap://localhost:1143", ()),
        ("imaps://mail.example.org", ()),
        ("imap://mail.example.org", ("--imap-starttls",)),
        ("imap://mail.example.org", ("--allow-plaintext",)),
    ):
        bound = run("mailbox", "bind", *base, "--imap", url, *imap, *extra, env=no_aws_env())
        assert bound.returncode == 0, (url, bound.stderr)
        assert _source(server, base)["Binding"]["imap"]["url"] == url
    bound = run("mailbox", "bind", *base, "--imap", "imaps://mail.example.org", *imap,
                "--caldav", "http://dav.example.org/dav/", *dav, "--allow-plaintext", env=no_aws_env())  # fmt: skip
    assert bound.returncode == 0, bound.stderr
    assert _source(server, base)["Binding"]["caldav"]["url"] == "http://dav.example.org/dav/"
