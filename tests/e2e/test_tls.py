"""``mailcrate init --tls`` + ``serve --tls-cert/--tls-key``: the aws CLI, boto3, mailcrate's own
CLI and an SMTP client over TLS with the generated CA; refused without it; SIGHUP reloads."""

from __future__ import annotations

import hashlib
import shutil
import signal
import smtplib
import socket
import ssl
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import SSLError
from cryptography import x509

from mailcrate.admin.certificates import ensure_tls_files
from mailcrate.mail.store import EmbeddedStore
from tests.cli.support import no_aws_env, one_line_error, run, server_env
from tests.support.mailcrate_server import BIN, MailcrateServer


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _init_tls(server: MailcrateServer, *names: str) -> dict[str, str]:
    """``mailcrate init --tls`` on the server's data directory; the variables it prints."""
    extra = [a for n in names for a in ("--tls-name", n)]
    done = run("init", "--data-dir", str(server.data_dir), "--tls", *extra, env=no_aws_env())
    assert done.returncode == 0, done.stderr
    exports = dict(
        line.removeprefix("export ").split("=", 1)
        for line in done.stdout.splitlines()
        if line.startswith("export ")
    )
    assert f"aws --ca-bundle {exports['AWS_CA_BUNDLE']}" in done.stderr
    return exports


def _tls_server(data_dir: Path, *extra: str) -> tuple[MailcrateServer, dict[str, str]]:
    server = MailcrateServer(data_dir=data_dir)
    server.init()
    exports = _init_tls(server)
    server.extra_args = (
        "--tls-cert",
        exports["MAILCRATE_TLS_CERT"],
        "--tls-key",
        exports["MAILCRATE_TLS_KEY"],
        *extra,
    )
    return server.start(), exports


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[MailcrateServer, dict[str, str], int]]:
    smtp_port = _free_port()
    server, exports = _tls_server(tmp_path_factory.mktemp("tls") / "data", "--smtp-port", str(smtp_port))
    try:
        yield server, exports, smtp_port
    finally:
        server.stop()


def _org_count(server: MailcrateServer, ca: str) -> int:
    return len(server.client("workmail", verify=ca).list_organizations()["OrganizationSummaries"])


def test_init_tls_writes_a_ca_and_keeps_it(tmp_path: Path) -> None:
    server = MailcrateServer(data_dir=tmp_path / "data")
    server.init()
    exports = _init_tls(server, "mail.example.org", "192.0.2.7")
    tls_dir = server.data_dir / "tls"
    assert exports["AWS_CA_BUNDLE"] == str(tls_dir / "ca.pem")
    for name in ("ca.key", "server.key"):
        assert (tls_dir / name).stat().st_mode & 0o777 == 0o600
    cert = x509.load_pem_x509_certificate((tls_dir / "server.pem").read_bytes())
    alt = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert alt.get_values_for_type(x509.DNSName) == ["mail.example.org"]
    assert [str(ip) for ip in alt.get_values_for_type(x509.IPAddress)] == ["192.0.2.7"]
    before = {p.name: p.read_bytes() for p in tls_dir.iterdir()}
    _init_tls(server)  # again: what clients trust does not change
    assert {p.name: p.read_bytes() for p in tls_dir.iterdir()} == before


def test_aws_cli_over_tls_with_the_generated_ca(tls) -> None:
    server, exports, _ = tls
    assert server.endpoint.startswith("https://")
    ca = exports["AWS_CA_BUNDLE"]
    before = _org_count(server, ca)
    env = server.aws_env(AWS_CA_BUNDLE=ca)
    org = server.aws("workmail", "create-organization", "--alias", "tlsorg", env=env)["OrganizationId"]
    assert server.aws("sts", "get-caller-identity", "--ca-bundle", ca)["Account"] == server.account_id
    refused = server.aws("workmail", "create-organization", "--alias", "tlsorg2", check=False)
    assert refused.returncode != 0 and "CERTIFICATE_VERIFY_FAILED" in refused.stderr, refused.stderr
    # Plain HTTP to the TLS port gets no answer.
    plain = subprocess.run(
        [str(BIN / "aws"), "sts", "get-caller-identity", "--endpoint-url", server.endpoint.replace("https", "http")],
        env=server.aws_env(), capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert plain.returncode != 0
    orgs = server.client("workmail", verify=ca).list_organizations()["OrganizationSummaries"]
    assert len(orgs) == before + 1 and org in {o["OrganizationId"] for o in orgs}


def test_boto3_over_tls_and_refused_without_the_ca(tls) -> None:
    server, exports, _ = tls
    s3 = server.client("s3", verify=exports["AWS_CA_BUNDLE"])
    s3.create_bucket(Bucket="tls-bucket")
    body = b"over TLS " * 200_000  # ~1.8 MB, streamed through the TLS connection
    s3.put_object(Bucket="tls-bucket", Key="k", Body=body)
    assert hashlib.sha256(s3.get_object(Bucket="tls-bucket", Key="k")["Body"].read()).digest() == (
        hashlib.sha256(body).digest()
    )
    untrusting = boto3.session.Session().client(
        "s3",
        endpoint_url=server.endpoint,
        region_name=server.region,
        aws_access_key_id=server.access_key_id,
        aws_secret_access_key=server.secret_access_key,
        config=Config(retries={"max_attempts": 1}),
    )
    with pytest.raises(SSLError, match="CERTIFICATE_VERIFY_FAILED"):
        untrusting.put_object(Bucket="tls-bucket", Key="refused", Body=b"x")
    assert [o["Key"] for o in s3.list_objects_v2(Bucket="tls-bucket")["Contents"]] == ["k"]


def test_mailcrate_cli_endpoint_errors(tls, server: MailcrateServer) -> None:
    """mailcrate's own CLI: the generated CA works; each usual mistake is one line and a hint."""
    tls_server, exports, _ = tls
    org = "m-" + "0" * 32
    listing = ("export", "list", "--organization-id", org)
    ok = run(*listing, env=server_env(tls_server, AWS_CA_BUNDLE=exports["AWS_CA_BUNDLE"]))
    assert "OrganizationNotFoundException" in ok.stderr or "organization not found" in ok.stderr, ok.stderr
    error, hint = one_line_error(run(*listing, env=server_env(tls_server)))
    assert "is not trusted" in error and "AWS_CA_BUNDLE" in hint
    plain_to_tls = tls_server.endpoint.replace("https://", "http://")
    error, hint = one_line_error(run(*listing, "--endpoint-url", plain_to_tls, env=server_env(tls_server)))
    assert "closed the connection" in error and "https://" in hint
    tls_to_plain = server.endpoint.replace("http://", "https://")
    error, hint = one_line_error(run(*listing, "--endpoint-url", tls_to_plain, env=server_env(server)))
    assert "does not speak TLS" in error and "use http://" in hint
    typo = server.endpoint.replace("http://", "htp://")
    result = run(*listing, "--endpoint-url", typo, env=server_env(server))
    error, hint = one_line_error(result)
    assert result.returncode == 2 and "is not an http:// or https:// URL" in error
    assert f"did you mean {server.endpoint}" in hint


def test_smtp_offers_starttls_with_the_same_certificate(tls) -> None:
    server, exports, smtp_port = tls
    wm = server.client("workmail", verify=exports["AWS_CA_BUNDLE"])
    org = wm.create_organization(Alias="starttls")["OrganizationId"]
    user = wm.create_user(OrganizationId=org, Name="carol", DisplayName="Carol", Password="Corr3ct-Horse")[
        "UserId"
    ]
    wm.register_to_work_mail(OrganizationId=org, EntityId=user, Email="carol@starttls.awsapps.com")
    message = b"From: a@example.net\r\nTo: carol@starttls.awsapps.com\r\nSubject: tls\r\n\r\nsecret\r\n"
    context = ssl.create_default_context(cafile=exports["AWS_CA_BUNDLE"])
    with smtplib.SMTP("127.0.0.1", smtp_port, timeout=10) as smtp:
        smtp.ehlo()
        assert smtp.has_extn("starttls")
        smtp.starttls(context=context)
        peer = smtp.sock.getpeercert(binary_form=True)
        smtp.ehlo()
        assert smtp.sendmail("a@example.net", ["carol@starttls.awsapps.com"], message) == {}
    served = x509.load_pem_x509_certificate(Path(exports["MAILCRATE_TLS_CERT"]).read_bytes())
    assert x509.load_der_x509_certificate(peer) == served
    with EmbeddedStore(server.data_dir / "mailboxes" / org / user) as store:
        inbox = next(f for f in store.folders() if f.path == ("Inbox",))
        assert [b"".join(i.chunks()) for i in store.items(inbox)] == [message]


def _served_cert(port: int) -> x509.Certificate:
    return x509.load_pem_x509_certificate(ssl.get_server_certificate(("127.0.0.1", port)).encode())


def _starttls_cert(port: int, ca: Path) -> x509.Certificate:
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as smtp:
        smtp.starttls(context=ssl.create_default_context(cafile=str(ca)))
        return x509.load_der_x509_certificate(smtp.sock.getpeercert(binary_form=True))


def test_sighup_reloads_the_certificate(tmp_path: Path) -> None:
    smtp_port = _free_port()
    server, exports = _tls_server(tmp_path / "data", "--smtp-port", str(smtp_port))
    try:
        cert_file, key_file = Path(exports["MAILCRATE_TLS_CERT"]), Path(exports["MAILCRATE_TLS_KEY"])
        first = _served_cert(server.port)
        assert first == x509.load_pem_x509_certificate(cert_file.read_bytes())
        renewed = ensure_tls_files(tmp_path / "renewed")  # another CA and server key
        shutil.copyfile(renewed.server_cert, cert_file)
        shutil.copyfile(renewed.server_key, key_file)
        assert server.process is not None
        server.process.send_signal(signal.SIGHUP)
        second = _wait_for_cert(server.port, lambda c: c != first)
        assert second == x509.load_pem_x509_certificate(renewed.server_cert.read_bytes())
        sts = server.client("sts", verify=str(renewed.ca_cert))
        assert sts.get_caller_identity()["Account"] == server.account_id
        assert _starttls_cert(smtp_port, renewed.ca_cert) == second  # SMTP shares the context
        # A broken key is refused: the renewed certificate stays in use and the server answers.
        key_file.write_text("not a key\n")
        server.process.send_signal(signal.SIGHUP)
        assert server.log_path is not None
        deadline = time.monotonic() + 10
        while "not reloaded" not in server.log_path.read_text() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert "TLS certificate not reloaded" in server.log_path.read_text()
        assert _served_cert(server.port) == second
        assert sts.get_caller_identity()["Account"] == server.account_id
    finally:
        assert server.stop() == 0


def _wait_for_cert(port: int, ready, timeout: float = 10) -> x509.Certificate:
    deadline = time.monotonic() + timeout
    while True:
        cert = _served_cert(port)
        if ready(cert) or time.monotonic() > deadline:
            return cert
        time.sleep(0.1)


def test_sighup_without_tls_keeps_serving(server: MailcrateServer) -> None:
    """``systemctl reload`` on a plain-HTTP server must not end it (SIGHUP's default action)."""
    assert server.process is not None and server.log_path is not None
    server.process.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + 10
    while "nothing to reload" not in server.log_path.read_text() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert "SIGHUP: nothing to reload" in server.log_path.read_text()
    assert server.process.poll() is None
    assert server.client("sts").get_caller_identity()["Account"] == server.account_id


def test_warning_when_listening_beyond_loopback_without_tls(tmp_path: Path, server: MailcrateServer) -> None:
    """192.0.2.1 (TEST-NET-1, RFC 5737) is no address of this machine: the bind fails after the
    warning, so nothing ever listens beyond loopback."""
    args = ("serve", "--data-dir", str(server.data_dir), "--port", "0", "--export-workers", "0")
    plain = run(*args, "--host", "192.0.2.1", env=no_aws_env(), timeout=60)
    assert plain.returncode != 0 and "cannot listen on 192.0.2.1" in plain.stderr
    assert "listening on 192.0.2.1 without TLS" in plain.stderr and "--tls-cert" in plain.stderr
    certs = ensure_tls_files(tmp_path)
    tls_args = ("--tls-cert", str(certs.server_cert), "--tls-key", str(certs.server_key))
    with_tls = run(*args, "--host", "192.0.2.1", *tls_args, env=no_aws_env(), timeout=60)
    assert with_tls.returncode != 0 and "cannot listen" in with_tls.stderr
    assert "without TLS" not in with_tls.stderr
    assert server.log_path is not None and "without TLS" not in server.log_path.read_text()


def test_serve_refuses_a_bad_certificate(tmp_path: Path, server: MailcrateServer) -> None:
    args = ("serve", "--data-dir", str(server.data_dir), "--port", "0")
    certs = ensure_tls_files(tmp_path)
    only_cert = run(*args, "--tls-cert", str(certs.server_cert), env=no_aws_env(), timeout=60)
    assert only_cert.returncode == 2 and "tls-cert and tls-key go together" in only_cert.stderr
    other = ensure_tls_files(tmp_path / "other")
    mismatched = run(*args, "--tls-cert", str(certs.server_cert), "--tls-key", str(other.server_key),
                     env=no_aws_env(), timeout=60)  # fmt: skip
    assert mismatched.returncode == 1 and "the key must belong to the first certificate" in mismatched.stderr
    assert "Traceback" not in mismatched.stderr
    missing = run(*args, "--tls-cert", str(tmp_path / "nope.pem"), "--tls-key", str(certs.server_key),
                  env=no_aws_env(), timeout=60)  # fmt: skip
    assert missing.returncode == 1 and "nope.pem: no such file" in missing.stderr
