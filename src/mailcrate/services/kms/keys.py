"""KMS keys and aliases: state, lookup by any of the four identifier forms, and key material.

Keys belong to an account and a region. Their material (32 random bytes for symmetric keys, a
DER private key for asymmetric ones) is stored only sealed with the data directory's master key,
with the key id bound in, so a sealed value cannot be moved to another key's row.
"""

from __future__ import annotations

import json
import os
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from sqlalchemy import Connection, delete, insert, select, update

from mailcrate.datadir import DataDir
from mailcrate.policy.key_policy import aws_managed_key_policy
from mailcrate.services.kms import errors
from mailcrate.storage.db import as_utc, utcnow
from mailcrate.storage.tables_kms_s3 import kms_aliases, kms_keys

ENABLED, DISABLED, PENDING_DELETION = "Enabled", "Disabled", "PendingDeletion"
SYMMETRIC = "SYMMETRIC_DEFAULT"
RSA_SPECS = {"RSA_2048": 2048, "RSA_3072": 3072, "RSA_4096": 4096}
EC_SPECS = {"ECC_NIST_P256": ec.SECP256R1, "ECC_NIST_P384": ec.SECP384R1, "ECC_NIST_P521": ec.SECP521R1}
SUPPORTED_SPECS = {SYMMETRIC, *RSA_SPECS, *EC_SPECS}
_MATERIAL_PURPOSE = "kms-key-material:"


@dataclass(frozen=True)
class Key:
    key_id: str
    account_id: str
    region: str
    key_spec: str
    key_usage: str
    key_state: str
    description: str
    created_at: datetime
    deletion_date: datetime | None
    material_sealed: str
    policy: str | None = None  # None: AWS's default key policy for the key's account
    tags: tuple[tuple[str, str], ...] = ()

    @property
    def tag_map(self) -> dict[str, str]:
        return dict(self.tags)

    @property
    def arn(self) -> str:
        return key_arn(self.region, self.account_id, self.key_id)

    @property
    def symmetric(self) -> bool:
        return self.key_spec == SYMMETRIC

    def material(self, data_dir: DataDir) -> bytes:
        return data_dir.secrets.open(self.material_sealed, _MATERIAL_PURPOSE + self.key_id)

    def metadata(self) -> dict[str, object]:
        meta: dict[str, object] = {
            "AWSAccountId": self.account_id,
            "KeyId": self.key_id,
            "Arn": self.arn,
            "CreationDate": self.created_at,
            "Enabled": self.key_state == ENABLED,
            "Description": self.description,
            "KeyUsage": self.key_usage,
            "KeyState": self.key_state,
            "Origin": "AWS_KMS",
            "KeyManager": "CUSTOMER",
            "CustomerMasterKeySpec": self.key_spec,
            "KeySpec": self.key_spec,
            "MultiRegion": False,
        }
        if self.key_state == PENDING_DELETION:
            meta["DeletionDate"] = self.deletion_date
        if self.symmetric:
            meta["EncryptionAlgorithms"] = ["SYMMETRIC_DEFAULT"]
        elif self.key_usage == "ENCRYPT_DECRYPT":
            meta["EncryptionAlgorithms"] = ["RSAES_OAEP_SHA_1", "RSAES_OAEP_SHA_256"]
        elif self.key_spec in RSA_SPECS:
            meta["SigningAlgorithms"] = ["RSASSA_PSS_SHA_256", "RSASSA_PKCS1_V1_5_SHA_256"]
        else:
            meta["SigningAlgorithms"] = ["ECDSA_SHA_256"]
        return meta

    def check_usable(self) -> None:
        """Raise the error KMS gives for cryptographic use of a key in this state."""
        if self.key_state == DISABLED:
            raise errors.Disabled(self.arn)
        if self.key_state == PENDING_DELETION:
            raise errors.InvalidState(f"{self.arn} is pending deletion.")


def key_arn(region: str, account_id: str, key_id: str) -> str:
    return f"arn:aws:kms:{region}:{account_id}:key/{key_id}"


def _row_to_key(row: object) -> Key:
    return Key(
        key_id=row.key_id,  # type: ignore[attr-defined]
        account_id=row.account_id,  # type: ignore[attr-defined]
        region=row.region,  # type: ignore[attr-defined]
        key_spec=row.key_spec,  # type: ignore[attr-defined]
        key_usage=row.key_usage,  # type: ignore[attr-defined]
        key_state=row.key_state,  # type: ignore[attr-defined]
        description=row.description or "",  # type: ignore[attr-defined]
        created_at=as_utc(row.created_at),  # type: ignore[attr-defined, arg-type]
        deletion_date=as_utc(row.deletion_date),  # type: ignore[attr-defined]
        material_sealed=row.material_sealed,  # type: ignore[attr-defined]
        policy=row.policy,  # type: ignore[attr-defined]
        tags=_tags_of(row.tags),  # type: ignore[attr-defined]
    )


def _tags_of(text: str | None) -> tuple[tuple[str, str], ...]:
    return tuple((t["TagKey"], t["TagValue"]) for t in json.loads(text or "[]"))


def _new_material(key_spec: str) -> bytes:
    if key_spec == SYMMETRIC:
        return os.urandom(32)
    if key_spec in RSA_SPECS:
        private: object = rsa.generate_private_key(public_exponent=65537, key_size=RSA_SPECS[key_spec])
    else:
        private = ec.generate_private_key(EC_SPECS[key_spec]())
    return private.private_bytes(  # type: ignore[attr-defined]
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def new_key_id() -> str:
    return str(uuid.uuid4())


def create_key(
    conn: Connection,
    data_dir: DataDir,
    *,
    account_id: str,
    region: str,
    key_spec: str,
    key_usage: str,
    description: str,
    policy: str | None,
    tags: list[dict[str, str]] | None,
    key_id: str | None = None,
) -> Key:
    if key_spec not in SUPPORTED_SPECS:
        raise errors.Unsupported(f"KeySpec {key_spec} is not supported by mailcrate")
    allowed_usage = (
        {"ENCRYPT_DECRYPT"}
        if key_spec == SYMMETRIC
        else {"ENCRYPT_DECRYPT", "SIGN_VERIFY"}
        if key_spec in RSA_SPECS
        else {"SIGN_VERIFY"}
    )
    if key_usage not in allowed_usage:
        raise errors.Validation(f"KeyUsage {key_usage} is not compatible with KeySpec {key_spec}")
    key_id = key_id or new_key_id()
    sealed = data_dir.secrets.seal(_new_material(key_spec), _MATERIAL_PURPOSE + key_id)
    now = utcnow()
    conn.execute(
        insert(kms_keys).values(
            key_id=key_id,
            account_id=account_id,
            region=region,
            key_spec=key_spec,
            key_usage=key_usage,
            key_state=ENABLED,
            description=description,
            material_sealed=sealed,
            created_at=now,
            policy=policy,
            tags=json.dumps(tags or []),
        )
    )
    return Key(
        key_id,
        account_id,
        region,
        key_spec,
        key_usage,
        ENABLED,
        description,
        now,
        None,
        sealed,
        policy,
        tuple((t["TagKey"], t["TagValue"]) for t in tags or ()),
    )


def _load(conn: Connection, account_id: str, region: str, key_id: str) -> Key | None:
    row = conn.execute(
        select(kms_keys).where(
            kms_keys.c.key_id == key_id, kms_keys.c.account_id == account_id, kms_keys.c.region == region
        )
    ).first()
    return _row_to_key(row) if row is not None else None


def resolve(
    conn: Connection,
    account_id: str,
    region: str,
    ref: str,
    *,
    allow_alias: bool = True,
    other_accounts: bool = False,
) -> Key:
    """A key by id, key ARN, alias name (``alias/x``) or alias ARN; NotFoundException otherwise.

    Ids and alias names are looked up in ``account_id``. An ARN of another account's key (or
    alias) names it only where ``other_accounts`` is true: the operations AWS lets other
    accounts call (Encrypt, Decrypt, GenerateDataKey*, ReEncrypt, DescribeKey, SSE-KMS; "Allowing
    users in other accounts to use a KMS key"); whether the caller may is the key policy's
    business (:mod:`mailcrate.services.kms.access`)."""
    if ref.startswith("arn:"):
        parts = ref.split(":", 5)
        if len(parts) != 6 or parts[2] != "kms":
            raise errors.NotFound(f"Invalid arn {ref}")
        region, owner, resource = parts[3], parts[4], parts[5]
        if owner != account_id and not other_accounts:
            raise errors.NotFound(f"Key '{ref}' does not exist")
        account_id = owner
        if resource.startswith("key/"):
            ref = resource[4:]
        elif resource.startswith("alias/") and allow_alias:
            ref = resource
        else:
            raise errors.NotFound(f"Invalid arn {ref}")
    if ref.startswith("alias/"):
        if not allow_alias:
            raise errors.NotFound(f"Alias {ref} cannot be used here; name a key id or ARN")
        row = conn.execute(
            select(kms_aliases.c.key_id).where(
                kms_aliases.c.account_id == account_id,
                kms_aliases.c.region == region,
                kms_aliases.c.alias_name == ref,
            )
        ).first()
        if row is None:
            raise errors.NotFound(f"Alias {alias_arn(region, account_id, ref)} is not found.")
        ref = row.key_id
    key = _load(conn, account_id, region, ref)
    if key is None:
        raise errors.NotFound(f"Key '{key_arn(region, account_id, ref)}' does not exist")
    return key


def by_id(conn: Connection, key_id: str, region: str) -> Key | None:
    """The key a ciphertext blob names, in whichever account it is (key ids are unique)."""
    row = conn.execute(
        select(kms_keys).where(kms_keys.c.key_id == key_id, kms_keys.c.region == region)
    ).first()
    return _row_to_key(row) if row is not None else None


def set_policy(conn: Connection, key: Key, policy: str) -> None:
    conn.execute(update(kms_keys).where(kms_keys.c.key_id == key.key_id).values(policy=policy))


def set_tags(conn: Connection, key: Key, tags: dict[str, str]) -> None:
    stored = [{"TagKey": k, "TagValue": v} for k, v in tags.items()]
    conn.execute(update(kms_keys).where(kms_keys.c.key_id == key.key_id).values(tags=json.dumps(stored)))


def set_state(conn: Connection, key: Key, state: str, deletion_date: datetime | None = None) -> Key:
    conn.execute(
        update(kms_keys)
        .where(kms_keys.c.key_id == key.key_id)
        .values(key_state=state, deletion_date=deletion_date)
    )
    return _load(conn, key.account_id, key.region, key.key_id)  # type: ignore[return-value]


def schedule_deletion(conn: Connection, key: Key, days: int) -> Key:
    if key.key_state == PENDING_DELETION:
        raise errors.InvalidState(f"{key.arn} is pending deletion.")
    return set_state(conn, key, PENDING_DELETION, utcnow() + timedelta(days=days))


def list_keys(conn: Connection, account_id: str, region: str, after: str | None, limit: int) -> list[Key]:
    query = select(kms_keys).where(kms_keys.c.account_id == account_id, kms_keys.c.region == region)
    if after:
        query = query.where(kms_keys.c.key_id > after)
    rows = conn.execute(query.order_by(kms_keys.c.key_id).limit(limit)).all()
    return [_row_to_key(row) for row in rows]


def alias_arn(region: str, account_id: str, alias_name: str) -> str:
    return f"arn:aws:kms:{region}:{account_id}:{alias_name}"


def check_alias_name(name: str) -> None:
    if not name.startswith("alias/") or len(name) <= len("alias/"):
        raise errors.Validation('Alias must start with the prefix "alias/".')
    if name.startswith("alias/aws/"):
        raise errors.NotAuthorized("Cannot create alias with prefix 'alias/aws/'")


def create_alias(conn: Connection, key: Key, alias_name: str) -> None:
    check_alias_name(alias_name)
    exists = conn.execute(
        select(kms_aliases.c.key_id).where(
            kms_aliases.c.account_id == key.account_id,
            kms_aliases.c.region == key.region,
            kms_aliases.c.alias_name == alias_name,
        )
    ).first()
    if exists is not None:
        raise errors.AlreadyExists(
            f"An alias with the name {alias_arn(key.region, key.account_id, alias_name)} already exists"
        )
    conn.execute(
        insert(kms_aliases).values(
            account_id=key.account_id,
            region=key.region,
            alias_name=alias_name,
            key_id=key.key_id,
            created_at=utcnow(),
        )
    )


def delete_alias(conn: Connection, account_id: str, region: str, alias_name: str) -> None:
    result = conn.execute(
        delete(kms_aliases).where(
            kms_aliases.c.account_id == account_id,
            kms_aliases.c.region == region,
            kms_aliases.c.alias_name == alias_name,
        )
    )
    if result.rowcount == 0:
        raise errors.NotFound(f"Alias {alias_arn(region, account_id, alias_name)} is not found.")


def list_aliases(
    conn: Connection, account_id: str, region: str, key_id: str | None, after: str | None, limit: int
) -> list[dict[str, object]]:
    query = select(kms_aliases).where(kms_aliases.c.account_id == account_id, kms_aliases.c.region == region)
    if key_id:
        query = query.where(kms_aliases.c.key_id == key_id)
    if after:
        query = query.where(kms_aliases.c.alias_name > after)
    rows = conn.execute(query.order_by(kms_aliases.c.alias_name).limit(limit)).all()
    return [
        {
            "AliasName": row.alias_name,
            "AliasArn": alias_arn(region, account_id, row.alias_name),
            "TargetKeyId": row.key_id,
            "CreationDate": as_utc(row.created_at),
            "LastUpdatedDate": as_utc(row.created_at),
        }
        for row in rows
    ]


def aws_managed_key(conn: Connection, data_dir: DataDir, account_id: str, region: str, service: str) -> Key:
    """The ``alias/aws/<service>`` key a service uses when the caller names none (made on first use)."""
    alias_name = f"alias/aws/{service}"
    try:
        return resolve(conn, account_id, region, alias_name)
    except errors.NotFound:
        pass
    key = create_key(
        conn,
        data_dir,
        account_id=account_id,
        region=region,
        key_spec=SYMMETRIC,
        key_usage="ENCRYPT_DECRYPT",
        description=f"Default key that protects my {service.upper()} objects when no other key is defined",
        policy=aws_managed_key_policy(account_id, f"{service}.{region}.amazonaws.com"),
        tags=None,
    )
    conn.execute(
        insert(kms_aliases).values(
            account_id=account_id,
            region=region,
            alias_name=alias_name,
            key_id=key.key_id,
            created_at=utcnow(),
        )
    )
    return key
