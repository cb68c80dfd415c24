"""Mail delivered to ``mailcrate serve --smtp-port`` lands in the registered user's embedded Inbox."""

from __future__ import annotations

import hashlib
import smtplib
import socket
from pathlib import Path

import pytest

from mailcrate.mail.store import EmbeddedStore
from tests.support.mailcrate_server import MailcrateServer


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def smtp_server(tmp_path: Path):
    smtp_port = _free_port()
    with MailcrateServer.running(tmp_path / "data", "--smtp-port", str(smtp_port)) as srv:
        yield srv, smtp_port


def test_smtp_delivery_to_a_registered_address(smtp_server) -> None:
    server, smtp_port = smtp_server
    client = server.client("workmail")
    org_id = client.create_organization(Alias="smtporg")["OrganizationId"]
    user_id = client.create_user(OrganizationId=org_id, Name="alice", DisplayName="Alice")["UserId"]
    address = "alice@smtporg.awsapps.com"
    client.register_to_work_mail(OrganizationId=org_id, EntityId=user_id, Email=address)

    message = (
        b"From: Bob <bob@example.net>\r\nTo: Alice <alice@smtporg.awsapps.com>\r\n"
        b"Subject: over SMTP\r\nMessage-ID: <smtp-1@example.net>\r\n\r\nHello Alice,\r\n.dot line\r\n"
    )
    with smtplib.SMTP("127.0.0.1", smtp_port, timeout=10) as smtp:
        refused = smtp.sendmail("bob@example.net", [address], message)
        assert refused == {}
        with pytest.raises(smtplib.SMTPRecipientsRefused) as caught:
            smtp.sendmail("bob@example.net", ["nobody@smtporg.awsapps.com"], message)
        assert caught.value.recipients["nobody@smtporg.awsapps.com"][0] == 550

    root = server.data_dir / "mailboxes" / org_id / user_id
    with EmbeddedStore(root, owner=address) as store:
        inbox = next(folder for folder in store.folders() if folder.path == ("Inbox",))
        items = list(store.items(inbox))
        assert len(items) == 1
        stored = b"".join(items[0].chunks())
    assert hashlib.sha256(stored).digest() == hashlib.sha256(message).digest()
    assert client.get_mailbox_details(OrganizationId=org_id, UserId=user_id)["MailboxSize"] > 0
