"""``mailcrate mailbox import|bind|show`` on a live server's data directory."""

from __future__ import annotations

import json
from pathlib import Path

from mailcrate.mail.store import EmbeddedStore
from tests.cli.support import mailbox_args, no_aws_env, one_line_error, run
from tests.jobs.support import fill_maildir, message, new_mailbox
from tests.support.mailcrate_server import MailcrateServer

ICS = (
    b"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//t//EN\r\nBEGIN:VEVENT\r\nUID:evt-1@example.org\r\n"
    b"DTSTAMP:20240101T000000Z\r\nDTSTART:20240102T100000Z\r\nSUMMARY:Planning\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
)


def _mbox(path: Path, count: int) -> Path:
    path.write_bytes(
        b"".join(
            b"From someone@example.org Tue Oct  1 10:00:00 2024\n"
            + message(n).replace(b"\r\n", b"\n")
            + b"\n\n"
            for n in range(count)
        )
    )
    return path


def test_import_is_idempotent(server: MailcrateServer, tmp_path: Path) -> None:
    mb = new_mailbox(server)
    (tmp_path / "one.eml").write_bytes(message(900))
    (tmp_path / "cal.ics").write_bytes(ICS)
    args = ("mailbox", "import", "--data-dir", str(server.data_dir), "--organization-id", mb.organization_id,
            "--entity-id", mb.email, str(_mbox(tmp_path / "Projects.mbox", 5)), str(tmp_path / "one.eml"),
            str(tmp_path / "cal.ics"))  # fmt: skip
    first = run(*args, env=no_aws_env())
    assert first.returncode == 0, first.stderr
    rows = {line.rsplit(None, 4)[0]: line.split()[-4:] for line in first.stdout.splitlines()[1:4]}
    # folder / in input / imported / already there / refused
    assert rows == {
        "Projects": ["5", "5", "0", "0"],
        "Inbox": ["1", "1", "0", "0"],
        "calendar Calendar": ["1", "1", "0", "0"],
    }
    again = run(*args, "--output", "json", env=no_aws_env())
    report = json.loads(again.stdout)
    assert {m["folder"][0]: (m["imported"], m["skipped"]) for m in report["mail"]} == {
        "Projects": (0, 5),
        "Inbox": (0, 1),
    }
    with EmbeddedStore(mb.root) as store:
        counts = {f.path: f.count for f in store.folders()}
    assert counts[("Projects",)] == 5 and counts[("Inbox",)] == 1 and counts[("Calendar",)] == 1


def test_import_errors(server: MailcrateServer, tmp_path: Path) -> None:
    mb = new_mailbox(server)
    base = ("mailbox", "import", "--data-dir", str(server.data_dir))
    error, hint = one_line_error(
        run(*base, "--organization-id", "m-" + "0" * 32, "--entity-id", "x", str(tmp_path), env=no_aws_env())
    )
    assert "organization" in error and "not found" in error and "list-organizations" in hint
    error, hint = one_line_error(
        run(
            *base,
            "--organization-id",
            mb.organization_id,
            "--entity-id",
            "nobody",
            str(tmp_path),
            env=no_aws_env(),
        )
    )
    assert "no user nobody" in error and "list-users" in hint
    wm = server.client("workmail")
    wm.create_user(OrganizationId=mb.organization_id, Name="unreg", DisplayName="U", Password="Corr3ct-Horse")
    error, hint = one_line_error(
        run(
            *base,
            "--organization-id",
            mb.organization_id,
            "--entity-id",
            "unreg",
            str(tmp_path),
            env=no_aws_env(),
        )
    )
    assert "has no mailbox" in error and "register-to-work-mail" in hint
    error, _hint = one_line_error(
        run(
            "mailbox",
            "show",
            "--data-dir",
            str(tmp_path / "nothing"),
            "--organization-id",
            mb.organization_id,
            "--entity-id",
            "x",
            env=no_aws_env(),
        )
    )
    assert "not an initialised mailcrate data directory" in error


def test_bind_and_show_never_reveal_the_password(server: MailcrateServer, tmp_path: Path) -> None:
    mb = new_mailbox(server)
    secret = "s3cret-Imap-Passw0rd-xyz"
    (tmp_path / "pw").write_text(secret + "\n")
    base = mailbox_args(server, mb)
    shown = run("mailbox", "show", *base, "--output", "json", env=no_aws_env())
    assert json.loads(shown.stdout)["Source"] == "embedded"
    bound = run("mailbox", "bind", *base, "--imap", "imaps://mail.example.org", "--imap-user", "alice",
                "--imap-password-file", str(tmp_path / "pw"), "--imap-master-user", "admin", "--no-check",
                env=no_aws_env())  # fmt: skip
    assert bound.returncode == 0, bound.stderr
    assert "IMAP imaps://mail.example.org as alice*admin" in bound.stdout
    for fmt in ("text", "json"):
        out = run("mailbox", "show", *base, "--output", fmt, env=no_aws_env())
        assert out.returncode == 0 and secret not in out.stdout + out.stderr
    described = json.loads(run("mailbox", "show", *base, "--output", "json", env=no_aws_env()).stdout)
    assert described["Source"] == "external"
    assert described["Binding"]["imap"]["user"] == "alice" and "password" not in described["Binding"]["imap"]
    assert described["Binding"]["owner"] == mb.email
    assert secret.encode() not in (server.data_dir / "mailcrate.db").read_bytes()
    # a Maildir on disk, checked by listing it
    maildir = tmp_path / "Maildir"
    fill_maildir(tmp_path, {"Inbox": 3, "Archive": 2})
    bound = run("mailbox", "bind", *base, "--maildir", str(maildir), env=no_aws_env())
    assert bound.returncode == 0, bound.stderr
    assert "Inbox: 3" in bound.stdout and "Archive: 2" in bound.stdout
    # an unreachable IMAP server is refused by the check, with a hint
    error, hint = one_line_error(run("mailbox", "bind", *base, "--imap", "imap://127.0.0.1:1", "--imap-user", "a",
                                     "--imap-password-file", str(tmp_path / "pw"), env=no_aws_env()))  # fmt: skip
    assert "cannot read the mailbox source" in error and "--no-check" in hint
    back = run("mailbox", "bind", *base, "--embedded", env=no_aws_env())
    assert back.returncode == 0 and "embedded store" in back.stdout
    assert (
        json.loads(run("mailbox", "show", *base, "--output", "json", env=no_aws_env()).stdout)["Source"]
        == "embedded"
    )
