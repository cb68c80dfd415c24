"""IMAP: dropped connections resume without duplicates or gaps; TLS; auth errors stay secret-free."""

from __future__ import annotations

import pytest

from mailcrate.mail.base import ImapSpec, SourceError
from mailcrate.mail.imap import ImapSource

from .corpus import big_message, message, sha


def _spec(server, **kw) -> ImapSpec:  # type: ignore[no-untyped-def]
    return ImapSpec(server.url, "alice", server.master_password, master_user=server.master_user, **kw)


def test_killed_session_mid_folder_resumes_without_duplicates_or_gaps(fresh_dovecot) -> None:  # type: ignore[no-untyped-def]
    msgs = [message(i, size=400) for i in range(1200)]
    msgs[700] = big_message(3 * 1024 * 1024)  # a partial-fetch item after a kill, too
    fresh_dovecot.put_messages("alice", ("Archive",), [(m, "") for m in msgs])
    got: list[tuple[str, bytes]] = []
    kills = 0
    with ImapSource(_spec(fresh_dovecot), retry_delay=0.05) as src:
        folder = next(f for f in src.folders() if f.path == ("Archive",))
        for n, item in enumerate(src.items(folder)):
            if n in (100, 600):  # mid-batch: the next FETCH meets a dead connection
                kills += fresh_dovecot.kill_sessions("alice")
            chunks = item.chunks()
            if n == 700:
                first = next(chunks)
                kills += fresh_dovecot.kill_sessions("alice")  # dropped inside a large item
                data = first + b"".join(chunks)
            else:
                data = b"".join(chunks)
            got.append((item.source_id, data))
    assert kills >= 3
    ids = [sid for sid, _ in got]
    assert len(ids) == len(set(ids)) == 1200
    assert [int(s.split(":")[1]) for s in ids] == sorted(int(s.split(":")[1]) for s in ids)
    assert [sha(d) for _, d in got] == [sha(m) for m in msgs]
    # nothing was marked read by all that
    with ImapSource(_spec(fresh_dovecot)) as src:
        folder = next(f for f in src.folders() if f.path == ("Archive",))
        assert all("\\Seen" not in i.flags for i in src.items(folder))


def test_resume_after_source_id_and_uidvalidity_check(fresh_dovecot) -> None:  # type: ignore[no-untyped-def]
    fresh_dovecot.put_messages("alice", ("Inbox",), [(message(i), "S") for i in range(10)])
    with ImapSource(_spec(fresh_dovecot)) as src:
        folder = src.folders()[0]
        all_ids = [i.source_id for i in src.items(folder)]
        assert [i.source_id for i in src.items(folder, after=all_ids[3])] == all_ids[4:]
        validity = all_ids[0].split(":")[0]
        with pytest.raises(SourceError, match="UIDVALIDITY"):
            list(src.items(folder, after=f"{int(validity) + 1}:3"))


def test_tls_starttls_plain_auth_and_certificate_checks(dovecot) -> None:  # type: ignore[no-untyped-def]
    ca = str(dovecot.ca_file)
    ok = [
        ImapSpec(dovecot.imaps_url.replace("127.0.0.1", "localhost"), "bob", "bobpw", ca_file=ca),
        ImapSpec(dovecot.url, "bob", "bobpw", starttls=True, ca_file=ca),
        ImapSpec(dovecot.url, "bob", "adminpw", master_user="admin", auth="plain", starttls=True, ca_file=ca),
        ImapSpec(dovecot.imaps_url, "bob", "bobpw", verify=False),
    ]
    for spec in ok:
        with ImapSource(spec) as src:
            assert src.folders()[0].path == ("Inbox",)
    with pytest.raises(SourceError, match="certificate"):
        ImapSource(ImapSpec(dovecot.imaps_url, "bob", "bobpw"))  # self-signed CA not trusted


@pytest.mark.parametrize(
    "spec_kw",
    [
        {"user": "alice", "password": "wrong-secret-1"},
        {"user": "alice", "password": "wrong-secret-1", "master_user": "admin"},
        {"user": "alice", "password": "wrong-secret-1", "master_user": "admin", "auth": "plain"},
    ],
)
def test_bad_credentials_are_permanent_and_secret_free(dovecot, spec_kw) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(SourceError) as err:
        ImapSource(ImapSpec(dovecot.url, **spec_kw), retry_delay=0)
    assert "wrong-secret-1" not in str(err.value) and "authentication failed" in str(err.value)
    assert "wrong-secret-1" not in repr(ImapSpec(dovecot.url, **spec_kw))


def test_unreachable_host_fails_after_bounded_retries() -> None:
    with pytest.raises(SourceError, match="unreachable after 2 retries"):
        ImapSource(ImapSpec("imap://127.0.0.1:1", "a", "secret-x"), max_retries=2, retry_delay=0)
