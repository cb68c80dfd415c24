"""Envelope encryption with KMS keys, and the in-process API the S3 service calls.

A ciphertext blob is ``b"\\x01MCK" + key id (36 ASCII bytes) + nonce (12) + AES-256-GCM
ciphertext and tag``. The associated data binds the key id and the encryption context (its
canonical JSON), so decrypting with a different context, or after moving the blob's bytes to
another key, fails with InvalidCiphertextException as KMS does.

S3 (and anything else in-process) uses :func:`generate_data_key` and :func:`decrypt_data_key`:
they find the key (another account's by its ARN) and authorize ``kms:GenerateDataKey`` /
``kms:Decrypt`` *as the calling principal* through the key policy and IAM
(:mod:`mailcrate.services.kms.access`), with ``kms:ViaService`` and the
``kms:EncryptionContext:*`` keys in the request context, exactly what key and IAM policies
condition on.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from mailcrate.datadir import DataDir
from mailcrate.services.kms import access, errors
from mailcrate.services.kms.keys import Key, by_id, resolve

if TYPE_CHECKING:
    from mailcrate.services.base import Call

MAGIC = b"\x01MCK"
_KEY_ID_LEN = 36
_NONCE = 12
_HEADER = len(MAGIC) + _KEY_ID_LEN
MAX_PLAINTEXT = 4096


@dataclass(frozen=True)
class DataKey:
    plaintext: bytes
    ciphertext_blob: bytes
    key_arn: str


def _aad(key_id: str, context: Mapping[str, str] | None) -> bytes:
    canonical = json.dumps(dict(sorted((context or {}).items())), separators=(",", ":"), ensure_ascii=False)
    return b"mailcrate-kms-v1\0" + key_id.encode() + b"\0" + canonical.encode()


def key_id_of_blob(blob: bytes) -> str:
    """The key id a ciphertext blob names (InvalidCiphertextException if it is not one of ours)."""
    if len(blob) < _HEADER + _NONCE + 16 or not blob.startswith(MAGIC):
        raise errors.InvalidCiphertext()
    try:
        return blob[len(MAGIC) : _HEADER].decode("ascii")
    except UnicodeDecodeError:
        raise errors.InvalidCiphertext() from None


def require_symmetric(key: Key, operation: str) -> None:
    if not key.symmetric:
        raise errors.InvalidKeyUsage(
            f"{key.arn} key usage is {key.key_usage} with key spec {key.key_spec}, which is not valid "
            f"for {operation}; the key must be a symmetric encryption key (SYMMETRIC_DEFAULT)."
        )


def encrypt_with(data_dir: DataDir, key: Key, plaintext: bytes, context: Mapping[str, str] | None) -> bytes:
    key.check_usable()
    require_symmetric(key, "Encrypt")
    nonce = os.urandom(_NONCE)
    sealed = AESGCM(key.material(data_dir)).encrypt(nonce, plaintext, _aad(key.key_id, context))
    return MAGIC + key.key_id.encode("ascii") + nonce + sealed


def decrypt_with(data_dir: DataDir, key: Key, blob: bytes, context: Mapping[str, str] | None) -> bytes:
    key.check_usable()
    require_symmetric(key, "Decrypt")
    nonce, sealed = blob[_HEADER : _HEADER + _NONCE], blob[_HEADER + _NONCE :]
    try:
        return AESGCM(key.material(data_dir)).decrypt(nonce, sealed, _aad(key.key_id, context))
    except InvalidTag:
        raise errors.InvalidCiphertext() from None


def context_keys(
    encryption_context: Mapping[str, str] | None, via_service: str | None = None
) -> dict[str, Any]:
    """The KMS condition keys a request with this encryption context carries."""
    keys: dict[str, Any] = {
        f"kms:EncryptionContext:{name}": value for name, value in (encryption_context or {}).items()
    }
    if encryption_context:
        keys["kms:EncryptionContextKeys"] = list(encryption_context)
    if via_service:
        keys["kms:ViaService"] = via_service
    return keys


def _key_for(data_dir: DataDir, account_id: str, region: str, key_ref: str) -> Key:
    with data_dir.db.read() as conn:
        return resolve(conn, account_id, region, key_ref, other_accounts=True)


def generate_data_key(
    data_dir: DataDir,
    *,
    account_id: str,
    region: str,
    key_ref: str,
    encryption_context: Mapping[str, str],
    on_behalf_of: Call,
    via_service: str | None = None,
    number_of_bytes: int = 32,
) -> DataKey:
    """A fresh data key and its ciphertext blob under ``key_ref``, authorized as the caller.

    ``on_behalf_of`` is the S3 (or other) :class:`Call` whose principal asks; ``account_id`` is
    where a key id or alias name is looked up (an ARN names its own account, which may be
    another one's: the key policy decides, :mod:`mailcrate.services.kms.access`).
    """
    key = _key_for(data_dir, account_id, region, key_ref)
    access.check(on_behalf_of, "kms:GenerateDataKey", key, context_keys(encryption_context, via_service))
    key.check_usable()
    require_symmetric(key, "GenerateDataKey")
    plaintext = os.urandom(number_of_bytes)
    return DataKey(plaintext, encrypt_with(data_dir, key, plaintext, encryption_context), key.arn)


def decrypt_data_key(
    data_dir: DataDir,
    *,
    key_arn: str | None,
    region: str,
    blob: bytes,
    encryption_context: Mapping[str, str],
    on_behalf_of: Call,
    via_service: str | None = None,
) -> DataKey:
    """Open a data key's ciphertext blob, authorizing ``kms:Decrypt`` as the caller; the key is
    the one the blob names (``key_arn``, when known, must be it), in whichever account it is."""
    key_id = key_id_of_blob(blob)
    with data_dir.db.read() as conn:
        key = by_id(conn, key_id, region)
    if key is None or (key_arn is not None and key.arn != key_arn):
        raise errors.InvalidCiphertext()
    access.check(on_behalf_of, "kms:Decrypt", key, context_keys(encryption_context, via_service))
    return DataKey(decrypt_with(data_dir, key, blob, encryption_context), blob, key.arn)
