"""Restore and verify accept inputs mailcrate did not write (issue 17): a hand-made zip of
messages without a manifest (nested and empty folders), a Google-Takeout-style mbox
(``X-Gmail-Labels``) and a Maildir, into a real Dovecot; ``export verify`` says what it could
and could not check without a manifest. Messages from public test suites (tests/corpus)."""

from __future__ import annotations

import hashlib
import json
import os
import re
import zipfile
from collections import Counter
from pathlib import Path

from mailcrate.admin.imap_target import stored_form
from tests import corpus
from tests.cli.support import module_dovecot, run
from tests.cli.test_lossless_restore import server_view
from tests.mail.test_lossless_store import dovecot_maildir
from tests.servers import DovecotServer

USERS = {"z1": "pw1", "m1": "pw2", "d1": "pw3"}
NAMES = sorted(corpus.messages())[1:]  # not the 0-byte one: Dovecot cannot store it


dovecot = module_dovecot(USERS)


def _restore(dv: DovecotServer, user: str, path: Path) -> tuple[int, dict[str, object], str]:
    result = run(
        "export", "restore", str(path), "--imap", dv.url, "--imap-user", user, "--output", "json",
        env={**os.environ, "MAILCRATE_IMAP_PASSWORD": dv.users[user]},
    )  # fmt: skip
    assert "Traceback" not in result.stderr, result.stderr
    return result.returncode, json.loads(result.stdout or "{}"), result.stderr


def _bodies(view: Counter[tuple[str, str, frozenset[str], object]]) -> Counter[tuple[str, str]]:
    return Counter({(folder, sha): n for (folder, sha, _f, _d), n in view.items()})


def _sha(data: bytes) -> str:
    return hashlib.sha256(stored_form(data)).hexdigest()


def test_zip_without_manifest_restores_with_its_folders(dovecot: DovecotServer, tmp_path: Path) -> None:
    layout = {
        "top-level.eml": NAMES[0],
        "INBOX/a.eml": NAMES[1],
        "INBOX/b.eml": NAMES[2],
        "Work/Projects/2024/one.eml": NAMES[3],
        "Work/Projects/2024/two.eml": NAMES[4],
        "Work/readme": NAMES[5],
        "Kund\u00e4r & Co/x.eml": NAMES[6],
    }
    path = tmp_path / "other-exporter.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("Archive/Empty/", b"")  # an empty folder, as a directory entry
        for name, msg in layout.items():
            zf.writestr(name, corpus.read(msg))

    verify = run("export", "verify", str(path), env={**os.environ})
    assert verify.returncode == 0, verify.stderr
    assert (
        "has no manifest" in verify.stdout
        and "NOT checked: no manifest: whether the zip holds every item" in verify.stdout
    )
    assert f"CRC-32 and size, as the zip records them ({len(layout)} files)" in verify.stdout

    code, report, err = _restore(dovecot, "z1", path)
    assert code == 0, err
    assert report["complete"] and report["restored"] == len(layout)
    folder_of = {
        "top-level.eml": "Inbox", "INBOX/a.eml": "Inbox", "INBOX/b.eml": "Inbox",
        "Work/Projects/2024/one.eml": "Work/Projects/2024", "Work/Projects/2024/two.eml": "Work/Projects/2024",
        "Work/readme": "Work", "Kund\u00e4r & Co/x.eml": "Kund\u00e4r & Co",
    }  # fmt: skip
    want = Counter((folder_of[n], _sha(corpus.read(m))) for n, m in layout.items())
    assert _bodies(server_view(dovecot, "z1")) == want
    listed = run_list(dovecot, "z1")
    assert "Archive/Empty" in listed and "Work/Projects/2024" in listed


def run_list(dv: DovecotServer, user: str) -> set[str]:
    from imapclient import IMAPClient

    with IMAPClient(dv.host, dv.port, ssl=False) as c:
        c.login(user, dv.users[user])
        return {
            "/".join(name.split(d.decode()))
            for flags, d, name in c.list_folders()
            if b"\\Noselect" not in flags
        }


def _mbox_entry(data: bytes, labels: str) -> bytes:
    """One Takeout-style mbox message (mboxrd: ``From `` lines in it get one more ``>``)."""
    quoted = re.sub(rb"(?m)^(>*From )", rb">\1", data)
    return (
        b"From 1234567890@xxx Mon Jan 05 10:00:00 +0000 2026\n"
        + b"X-Gmail-Labels: "
        + labels.encode()
        + b"\n"
        + quoted
        + b"\n"
    )


def test_takeout_mbox_restores_labels_as_folders_and_flags(dovecot: DovecotServer, tmp_path: Path) -> None:
    entries = [
        (NAMES[0], "Inbox,Opened"),
        (NAMES[1], "Work/Clients,Starred"),
        (NAMES[2], "Sent,Opened"),
        (NAMES[3], 'Important,Opened,"Category Updates"'),
        (NAMES[4], "Inbox,Work/Clients,Unread"),
        ("mikel--plain_emails-raw_email_simple.eml", "Inbox"),  # starts with a "From " line
    ]
    path = tmp_path / "All mail Including Spam and Trash.mbox"
    path.write_bytes(b"".join(_mbox_entry(corpus.read(n), labels) for n, labels in entries))
    code, report, err = _restore(dovecot, "m1", path)
    assert code == 0, err
    assert report["restored"] == 7  # one message is in two folders

    def msg(name: str) -> bytes:  # what the message is once in the mbox: its header added
        return b"X-Gmail-Labels: " + dict(entries)[name].encode() + b"\n" + corpus.read(name)

    want = Counter(
        {
            ("Inbox", _sha(msg(NAMES[0])), frozenset({"\\Seen"})): 1,
            ("Work/Clients", _sha(msg(NAMES[1])), frozenset({"\\Flagged"})): 1,
            ("Sent", _sha(msg(NAMES[2])), frozenset({"\\Seen"})): 1,
            ("Archive", _sha(msg(NAMES[3])), frozenset({"\\Seen", "$Important"})): 1,
            ("Inbox", _sha(msg(NAMES[4])), frozenset()): 1,
            ("Work/Clients", _sha(msg(NAMES[4])), frozenset()): 1,
            ("Inbox", _sha(msg("mikel--plain_emails-raw_email_simple.eml")), frozenset()): 1,
        }
    )
    got = Counter({(f, sha, flags): n for (f, sha, flags, _d), n in server_view(dovecot, "m1").items()})
    assert got == want


def test_maildir_restores_with_flags_dates_and_empty_folders(dovecot: DovecotServer, tmp_path: Path) -> None:
    placed = corpus.mailbox()
    source = dovecot_maildir(tmp_path / "src", placed, [corpus.EMPTY_FOLDER])
    code, report, err = _restore(dovecot, "d1", source)
    assert code == 0, err
    assert report["restored"] == len(placed)
    from tests.cli.test_lossless_restore import expected_view

    assert server_view(dovecot, "d1") == expected_view(placed)
    assert "Archive/Empty 2019" in run_list(dovecot, "d1")


def test_junk_in_a_foreign_zip_is_named_not_restored(tmp_path: Path) -> None:
    from mailcrate.admin.foreign import foreign_input

    path = tmp_path / "mac.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("Inbox/m.eml", corpus.read(NAMES[0]))
        zf.writestr("__MACOSX/Inbox/._m.eml", b"\x00\x05\x16\x07")
        zf.writestr("Inbox/.DS_Store", b"\x00\x00\x00\x01Bud1")
    packed = foreign_input(path)
    assert packed is not None
    with packed:
        assert packed.not_restored == {
            "files that are not messages (__MACOSX/Inbox/._m.eml, Inbox/.DS_Store)": 2
        }
        with zipfile.ZipFile(packed.zip_path) as zf:
            assert [n for n in zf.namelist() if n.endswith(".eml")] == ["mail/Inbox/000001.eml"]
    assert not packed.zip_path.exists()
