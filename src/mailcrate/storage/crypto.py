"""Encryption at rest for secrets kept in the data directory.

Every secret mailcrate stores (access-key secrets, mail-server passwords, KMS key material) is
sealed with AES-256-GCM under one master key that lives in ``master.key`` (mode 0600) beside the
database. The database alone therefore never reveals a secret, and the key file is the single thing
an operator must protect or back up separately.
"""

from __future__ import annotations

import base64
import os
from pathlib import Path

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

_NONCE_BYTES = 12
#: The purpose access-key secrets are sealed for (the first secret a data directory holds).
ACCESS_KEY_PURPOSE = "access-key-secret"
_FORMAT_PREFIX = "v1:"


class SecretBox:
    """Seals and opens small secrets with the data directory's master key.

    ``purpose`` is bound as associated data so a sealed value cannot be moved from one column (say
    an access-key secret) to another (say an IMAP password) without detection.
    """

    def __init__(self, key: bytes) -> None:
        if len(key) != 32:
            raise ValueError("master key must be 32 bytes")
        self._aead = AESGCM(key)

    @classmethod
    def load_or_create(cls, path: Path) -> SecretBox:
        """Read the master key, creating it (0600, exclusive) on first use."""
        if not path.exists():
            key = AESGCM.generate_key(bit_length=256)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                os.write(fd, key)
                os.fsync(fd)
            finally:
                os.close(fd)
        return cls(path.read_bytes())

    def seal(self, plaintext: bytes, purpose: str) -> str:
        nonce = os.urandom(_NONCE_BYTES)
        sealed = self._aead.encrypt(nonce, plaintext, purpose.encode())
        return _FORMAT_PREFIX + base64.b64encode(nonce + sealed).decode("ascii")

    def open(self, token: str, purpose: str) -> bytes:
        if not token.startswith(_FORMAT_PREFIX):
            raise ValueError("unknown sealed-secret format")
        raw = base64.b64decode(token[len(_FORMAT_PREFIX) :])
        return self._aead.decrypt(raw[:_NONCE_BYTES], raw[_NONCE_BYTES:], purpose.encode())

    def seal_text(self, text: str, purpose: str) -> str:
        return self.seal(text.encode("utf-8"), purpose)

    def open_text(self, token: str, purpose: str) -> str:
        return self.open(token, purpose).decode("utf-8")
