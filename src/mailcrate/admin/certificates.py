"""``mailcrate init --tls``: a local certificate authority and a server certificate it signed.

A self-signed server certificate would have to be trusted one by one and re-trusted whenever it
is renewed; a small CA kept in the data directory is trusted once (``AWS_CA_BUNDLE``, ``aws
--ca-bundle``, a system trust store) and signs each renewal. The files, beside the database:

    tls/ca.pem        the CA certificate: what clients trust (public)
    tls/ca.key        the CA's private key (0600): only needed to sign a new server certificate
    tls/server.pem    the server certificate, then the CA certificate (the chain ``serve`` sends)
    tls/server.key    the server's private key (0600)

Existing files are kept, so running ``init --tls`` again changes nothing that clients trust.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import socket
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

__all__ = ["TlsFiles", "ensure_tls_files"]

#: Browsers and Apple clients refuse server certificates valid for more than 398 days; a local
#: CA may live longer, since it is trusted explicitly.
SERVER_DAYS = 397
CA_DAYS = 3650


@dataclass(frozen=True)
class TlsFiles:
    """Where ``init --tls`` put the files, and whether this run made them."""

    directory: Path
    created: bool

    @property
    def ca_cert(self) -> Path:
        return self.directory / "ca.pem"

    @property
    def ca_key(self) -> Path:
        return self.directory / "ca.key"

    @property
    def server_cert(self) -> Path:
        return self.directory / "server.pem"

    @property
    def server_key(self) -> Path:
        return self.directory / "server.key"


def default_names() -> list[str]:
    """Names a local server is reached by: loopback in both families and this host's name."""
    names = ["localhost", "127.0.0.1", "::1"]
    host = socket.gethostname()
    if host and host not in names:
        names.append(host)
    return names


def ensure_tls_files(data_dir: Path, names: list[str] | None = None) -> TlsFiles:
    """Create the CA and the server certificate under ``data_dir/tls`` unless they exist."""
    files = TlsFiles(directory=data_dir / "tls", created=False)
    files.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    if files.server_cert.exists() and files.server_key.exists() and files.ca_cert.exists():
        return files
    now = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)  # tolerate a client clock a little behind
    if files.ca_cert.exists() and files.ca_key.exists():
        ca_key = serialization.load_pem_private_key(files.ca_key.read_bytes(), password=None)
        ca_cert = x509.load_pem_x509_certificate(files.ca_cert.read_bytes())
    else:
        ca_key, ca_cert = _make_ca(now)
        _write_private(files.ca_key, ca_key)
        files.ca_cert.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
    server_key = ec.generate_private_key(ec.SECP256R1())
    server_cert = _make_server(now, server_key, ca_key, ca_cert, names or default_names())
    _write_private(files.server_key, server_key)
    files.server_cert.write_bytes(
        server_cert.public_bytes(serialization.Encoding.PEM)
        + ca_cert.public_bytes(serialization.Encoding.PEM)
    )
    return TlsFiles(directory=files.directory, created=True)


def _make_ca(now: dt.datetime) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "mailcrate"),
            x509.NameAttribute(NameOID.COMMON_NAME, f"mailcrate local CA {socket.gethostname()}"[:64]),
        ]
    )
    public = key.public_key()
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=CA_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .sign(key, hashes.SHA256())
    )
    return key, cert


def _make_server(
    now: dt.datetime,
    key: ec.EllipticCurvePrivateKey,
    ca_key: ec.EllipticCurvePrivateKey,
    ca_cert: x509.Certificate,
    names: list[str],
) -> x509.Certificate:
    alt: list[x509.GeneralName] = []
    for name in dict.fromkeys(names):
        try:
            alt.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            alt.append(x509.DNSName(name))
    return (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0][:64])]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=SERVER_DAYS))
        .add_extension(x509.SubjectAlternativeName(alt), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )


def _write_private(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    """A private key file readable by its owner only, from its first byte."""
    data = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
