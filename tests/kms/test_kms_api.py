"""KMS through a real ``mailcrate serve``: boto3 and the aws CLI, as users call it."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError

from tests.support.mailcrate_server import MailcrateServer


def _code(excinfo: pytest.ExceptionInfo[ClientError]) -> str:
    return excinfo.value.response["Error"]["Code"]


@pytest.fixture(scope="module")
def kms(server: MailcrateServer):
    return server.client("kms")


def test_cli_create_key_and_describe(server: MailcrateServer) -> None:
    meta = server.aws("kms", "create-key")["KeyMetadata"]
    assert meta["KeySpec"] == "SYMMETRIC_DEFAULT" and meta["KeyState"] == "Enabled"
    assert meta["Arn"] == f"arn:aws:kms:us-east-1:{server.account_id}:key/{meta['KeyId']}"
    described = server.aws("kms", "describe-key", "--key-id", meta["Arn"])["KeyMetadata"]
    assert described["KeyId"] == meta["KeyId"]


def test_key_addressable_by_id_arn_alias_and_alias_arn(kms) -> None:
    key = kms.create_key(Description="export key")["KeyMetadata"]
    kms.create_alias(AliasName="alias/addr", TargetKeyId=key["KeyId"])
    alias_arn = f"arn:aws:kms:us-east-1:{key['AWSAccountId']}:alias/addr"
    for ref in (key["KeyId"], key["Arn"], "alias/addr", alias_arn):
        assert kms.describe_key(KeyId=ref)["KeyMetadata"]["KeyId"] == key["KeyId"]
    aliases = kms.list_aliases(KeyId=key["KeyId"])["Aliases"]
    assert [a["AliasName"] for a in aliases] == ["alias/addr"]
    with pytest.raises(ClientError) as exc:
        kms.create_alias(AliasName="alias/addr", TargetKeyId=key["KeyId"])
    assert _code(exc) == "AlreadyExistsException"
    kms.delete_alias(AliasName="alias/addr")
    with pytest.raises(ClientError) as exc:
        kms.describe_key(KeyId="alias/addr")
    assert _code(exc) == "NotFoundException"
    with pytest.raises(ClientError) as exc:
        kms.create_alias(AliasName="alias/aws/mine", TargetKeyId=key["KeyId"])
    assert _code(exc) == "NotAuthorizedException"


def test_unknown_key_is_not_found(kms) -> None:
    for ref in (
        "00000000-0000-0000-0000-000000000000",
        "alias/nope",
        "arn:aws:kms:us-east-1:999999999999:key/x",
    ):
        with pytest.raises(ClientError) as exc:
            kms.describe_key(KeyId=ref)
        assert _code(exc) == "NotFoundException"


def test_data_keys_bind_encryption_context(kms) -> None:
    key = kms.create_key()["KeyMetadata"]
    ctx = {"aws:s3:arn": "arn:aws:s3:::b/k"}
    dk = kms.generate_data_key(KeyId=key["Arn"], KeySpec="AES_256", EncryptionContext=ctx)
    assert len(dk["Plaintext"]) == 32 and dk["KeyId"] == key["Arn"]
    assert (
        kms.decrypt(CiphertextBlob=dk["CiphertextBlob"], EncryptionContext=ctx)["Plaintext"]
        == dk["Plaintext"]
    )
    for wrong in ({}, {"aws:s3:arn": "arn:aws:s3:::b/other"}):
        with pytest.raises(ClientError) as exc:
            kms.decrypt(CiphertextBlob=dk["CiphertextBlob"], EncryptionContext=wrong)
        assert _code(exc) == "InvalidCiphertextException"
    tampered = bytearray(dk["CiphertextBlob"])
    tampered[-1] ^= 1
    with pytest.raises(ClientError) as exc:
        kms.decrypt(CiphertextBlob=bytes(tampered), EncryptionContext=ctx)
    assert _code(exc) == "InvalidCiphertextException"
    with pytest.raises(ClientError) as exc:
        kms.decrypt(CiphertextBlob=b"not a blob at all, really not one", EncryptionContext=ctx)
    assert _code(exc) == "InvalidCiphertextException"
    other = kms.create_key()["KeyMetadata"]
    with pytest.raises(ClientError) as exc:
        kms.decrypt(CiphertextBlob=dk["CiphertextBlob"], EncryptionContext=ctx, KeyId=other["KeyId"])
    assert _code(exc) == "IncorrectKeyException"
    no_plain = kms.generate_data_key_without_plaintext(KeyId=key["KeyId"], NumberOfBytes=64)
    assert "Plaintext" not in no_plain
    assert len(kms.decrypt(CiphertextBlob=no_plain["CiphertextBlob"])["Plaintext"]) == 64
    with pytest.raises(ClientError) as exc:
        kms.generate_data_key(KeyId=key["KeyId"])
    assert _code(exc) == "ValidationException"


def test_encrypt_reencrypt_decrypt(kms) -> None:
    a = kms.create_key()["KeyMetadata"]["KeyId"]
    b = kms.create_key()["KeyMetadata"]["KeyId"]
    blob = kms.encrypt(KeyId=a, Plaintext=b"secret", EncryptionContext={"x": "1"})["CiphertextBlob"]
    moved = kms.re_encrypt(
        CiphertextBlob=blob,
        SourceEncryptionContext={"x": "1"},
        DestinationKeyId=b,
        DestinationEncryptionContext={"y": "2"},
    )
    assert moved["KeyId"].endswith(b) and moved["SourceKeyId"].endswith(a)
    out = kms.decrypt(CiphertextBlob=moved["CiphertextBlob"], EncryptionContext={"y": "2"})
    assert out["Plaintext"] == b"secret" and out["KeyId"].endswith(b)


def test_disabled_and_pending_deletion_states(kms) -> None:
    key = kms.create_key()["KeyMetadata"]["KeyId"]
    blob = kms.encrypt(KeyId=key, Plaintext=b"x")["CiphertextBlob"]
    kms.disable_key(KeyId=key)
    assert kms.describe_key(KeyId=key)["KeyMetadata"]["KeyState"] == "Disabled"
    with pytest.raises(ClientError) as exc:
        kms.decrypt(CiphertextBlob=blob)
    assert _code(exc) == "DisabledException"
    kms.enable_key(KeyId=key)
    assert kms.decrypt(CiphertextBlob=blob)["Plaintext"] == b"x"
    scheduled = kms.schedule_key_deletion(KeyId=key, PendingWindowInDays=7)
    assert scheduled["KeyState"] == "PendingDeletion" and scheduled["PendingWindowInDays"] == 7
    with pytest.raises(ClientError) as exc:
        kms.encrypt(KeyId=key, Plaintext=b"x")
    assert _code(exc) == "KMSInvalidStateException"
    with pytest.raises(ClientError) as exc:
        kms.enable_key(KeyId=key)
    assert _code(exc) == "KMSInvalidStateException"
    kms.cancel_key_deletion(KeyId=key)
    assert kms.describe_key(KeyId=key)["KeyMetadata"]["KeyState"] == "Disabled"


def test_asymmetric_keys_exist_but_cannot_make_data_keys(kms) -> None:
    for spec, usage in (("RSA_2048", "ENCRYPT_DECRYPT"), ("ECC_NIST_P256", "SIGN_VERIFY")):
        meta = kms.create_key(KeySpec=spec, KeyUsage=usage)["KeyMetadata"]
        assert meta["KeySpec"] == spec
        with pytest.raises(ClientError) as exc:
            kms.generate_data_key(KeyId=meta["KeyId"], KeySpec="AES_256")
        assert _code(exc) == "InvalidKeyUsageException"
        assert kms.get_public_key(KeyId=meta["KeyId"])["PublicKey"].startswith(b"0")


def test_list_keys_paginates(kms) -> None:
    for _ in range(3):
        kms.create_key()
    ids = [
        k["KeyId"]
        for page in kms.get_paginator("list_keys").paginate(PaginationConfig={"PageSize": 2})
        for k in page["Keys"]
    ]
    assert len(ids) == len(set(ids)) >= 3
    first = kms.list_keys(Limit=2)
    assert first["Truncated"] and len(first["Keys"]) == 2


def test_key_material_is_sealed_at_rest(server: MailcrateServer, kms) -> None:
    import sqlite3

    kms.create_key()
    rows = (
        sqlite3.connect(server.data_dir / "mailcrate.db")
        .execute("select material_sealed from kms_keys")
        .fetchall()
    )
    assert rows and all(r[0].startswith("v1:") for r in rows)
