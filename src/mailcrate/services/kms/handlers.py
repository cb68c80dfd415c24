"""KMS API handlers (json protocol, ``TrentService``): thin, the rules live in keys/crypto."""

from __future__ import annotations

import os
from typing import Any

from cryptography.hazmat.primitives import serialization

from mailcrate.protocol.jsonproto import JsonProtocol
from mailcrate.protocol.models import service_model
from mailcrate.services.base import Call, Handler, ServiceSpec
from mailcrate.services.kms import access, crypto, errors, keys
from mailcrate.services.pagination import decode_cursor, encode_token

DEFAULT_LIMIT = 100
_MAX_MARKED_BYTES = 256  # the longest alias name KMS allows (key ids are 36)
_DATA_KEY_BYTES = {"AES_256": 32, "AES_128": 16}


def _db(call: Call) -> Any:
    return call.context.db


def _resolve(
    call: Call, ref: str, conn: Any, *, allow_alias: bool = True, other_accounts: bool = False
) -> keys.Key:
    return keys.resolve(
        conn, call.account_id, call.region, ref, allow_alias=allow_alias, other_accounts=other_accounts
    )


def _key(
    call: Call, ref: str | None = None, *, allow_alias: bool = True, other_accounts: bool = False
) -> keys.Key:
    with _db(call).read() as conn:
        return _resolve(
            call, ref or call.params["KeyId"], conn, allow_alias=allow_alias, other_accounts=other_accounts
        )


def _allowed_key(
    call: Call,
    action: str | None = None,
    ref: str | None = None,
    *,
    allow_alias: bool = True,
    other_accounts: bool = False,
) -> keys.Key:
    """The key the call names, once the key policy and IAM let the caller do ``action`` with it
    (``kms:<Operation>`` by default)."""
    key = _key(call, ref, allow_alias=allow_alias, other_accounts=other_accounts)
    access.check(call, action or f"kms:{call.operation}", key)
    return key


def _authorize_crypto(call: Call, action: str, key: keys.Key, context: dict[str, str] | None) -> None:
    access.check(call, action, key, crypto.context_keys(context))


def create_key(call: Call) -> dict[str, Any]:
    p = call.params
    spec = p.get("KeySpec") or p.get("CustomerMasterKeySpec") or keys.SYMMETRIC
    if p.get("Origin", "AWS_KMS") != "AWS_KMS" or p.get("CustomKeyStoreId") or p.get("MultiRegion"):
        raise errors.Unsupported("mailcrate supports only single-region AWS_KMS-origin keys")
    _check_tags(p.get("Tags") or [])
    usage = p.get("KeyUsage", "ENCRYPT_DECRYPT")
    # IAM policies alone decide (no key exists yet), with the keys CreateKey requests carry.
    extra = {"kms:KeySpec": spec, "kms:KeyUsage": usage, "kms:KeyOrigin": "AWS_KMS"}
    call.authorize("kms:CreateKey", "*", access.condition_keys(call, None, extra))
    key_id = keys.new_key_id()
    if p.get("Policy") is not None:
        policy = access.validate(p["Policy"])
        if not p.get("BypassPolicyLockoutSafetyCheck"):
            provisional = keys.Key(
                key_id,
                call.account_id,
                call.region,
                spec,
                p.get("KeyUsage", "ENCRYPT_DECRYPT"),
                keys.ENABLED,
                "",
                call.context.clock(),
                None,
                "",
                p["Policy"],
                tuple((t["TagKey"], t["TagValue"]) for t in p.get("Tags") or ()),
            )
            access.check_lockout(call, provisional, policy)
    with _db(call).begin() as conn:
        key = keys.create_key(
            conn,
            call.context.data_dir,
            account_id=call.account_id,
            region=call.region,
            key_spec=spec,
            key_usage=p.get("KeyUsage", "ENCRYPT_DECRYPT"),
            description=p.get("Description", ""),
            policy=p.get("Policy"),
            tags=p.get("Tags"),
            key_id=key_id,
        )
    return {"KeyMetadata": key.metadata()}


def describe_key(call: Call) -> dict[str, Any]:
    return {"KeyMetadata": _allowed_key(call, other_accounts=True).metadata()}


def _marker(scope: str, last: str) -> str:
    """An opaque NextMarker naming the item a page ended with, checksummed and bound to its list."""
    return encode_token(scope, [last])


def _after(scope: str, marker: str | None) -> str | None:
    """The item a Marker this list issued names; any other is InvalidMarkerException, as in KMS.

    Markers were the last item's id or name, taken as given: a marker never issued silently
    listed from wherever it sorted (usually the start) instead of failing.
    """
    if marker is None:
        return None
    last = decode_cursor(scope, marker, _MAX_MARKED_BYTES)
    if not last:  # never issued (nor an empty name)
        raise errors.InvalidMarker(
            "The request was rejected because the marker that specifies where pagination should next "
            "begin is not valid."
        )
    return last


def list_keys(call: Call) -> dict[str, Any]:
    limit = call.params.get("Limit", DEFAULT_LIMIT)
    scope = f"kms:ListKeys:{call.account_id}:{call.region}"
    after = _after(scope, call.params.get("Marker"))
    with _db(call).read() as conn:
        items = keys.list_keys(conn, call.account_id, call.region, after, limit + 1)
    more = len(items) > limit
    items = items[:limit]
    out: dict[str, Any] = {"Keys": [{"KeyId": k.key_id, "KeyArn": k.arn} for k in items], "Truncated": more}
    if more:
        out["NextMarker"] = _marker(scope, items[-1].key_id)
    return out


def _change_state(call: Call, allowed_from: set[str], new_state: str) -> keys.Key:
    _allowed_key(call, allow_alias=False)
    with _db(call).begin() as conn:
        key = _resolve(call, call.params["KeyId"], conn, allow_alias=False)
        if key.key_state not in allowed_from:
            raise errors.InvalidState(
                f"{key.arn} is {'pending deletion' if key.key_state == keys.PENDING_DELETION else key.key_state}."
            )
        return keys.set_state(conn, key, new_state)


def enable_key(call: Call) -> dict[str, Any]:
    _change_state(call, {keys.ENABLED, keys.DISABLED}, keys.ENABLED)
    return {}


def disable_key(call: Call) -> dict[str, Any]:
    _change_state(call, {keys.ENABLED, keys.DISABLED}, keys.DISABLED)
    return {}


def schedule_key_deletion(call: Call) -> dict[str, Any]:
    days = call.params.get("PendingWindowInDays", 30)
    if not 7 <= days <= 30:
        raise errors.Validation("PendingWindowInDays must be between 7 and 30")
    _allowed_key(call, allow_alias=False)
    with _db(call).begin() as conn:
        key = keys.schedule_deletion(
            conn, _resolve(call, call.params["KeyId"], conn, allow_alias=False), days
        )
    return {
        "KeyId": key.arn,
        "DeletionDate": key.deletion_date,
        "KeyState": key.key_state,
        "PendingWindowInDays": days,
    }


def cancel_key_deletion(call: Call) -> dict[str, Any]:
    key = _change_state(call, {keys.PENDING_DELETION}, keys.DISABLED)
    return {"KeyId": key.arn}


def _authorize_alias(call: Call, name: str, key: keys.Key) -> None:
    """Aliases need the action on the alias (IAM policies only) and on its key (key policy and
    IAM): "Controlling access to aliases" in the AWS KMS Developer Guide."""
    call.authorize(f"kms:{call.operation}", keys.alias_arn(call.region, call.account_id, name))
    access.check(call, f"kms:{call.operation}", key)


def create_alias(call: Call) -> dict[str, Any]:
    keys.check_alias_name(call.params["AliasName"])
    _authorize_alias(
        call, call.params["AliasName"], _key(call, call.params["TargetKeyId"], allow_alias=False)
    )
    with _db(call).begin() as conn:
        key = _resolve(call, call.params["TargetKeyId"], conn, allow_alias=False)
        if key.key_state == keys.PENDING_DELETION:
            raise errors.InvalidState(f"{key.arn} is pending deletion.")
        keys.create_alias(conn, key, call.params["AliasName"])
    return {}


def delete_alias(call: Call) -> dict[str, Any]:
    name = call.params["AliasName"]
    keys.check_alias_name(name)
    _authorize_alias(call, name, _key(call, name))
    with _db(call).begin() as conn:
        keys.delete_alias(conn, call.account_id, call.region, name)
    return {}


def list_aliases(call: Call) -> dict[str, Any]:
    p = call.params
    limit = p.get("Limit", DEFAULT_LIMIT)
    with _db(call).read() as conn:
        key_id = _resolve(call, p["KeyId"], conn, allow_alias=False).key_id if p.get("KeyId") else None
        # A marker of one key's aliases does not continue another's (or the account's) list.
        scope = f"kms:ListAliases:{call.account_id}:{call.region}:{key_id or ''}"
        after = _after(scope, p.get("Marker"))
        items = keys.list_aliases(conn, call.account_id, call.region, key_id, after, limit + 1)
    more = len(items) > limit
    items = items[:limit]
    out: dict[str, Any] = {"Aliases": items, "Truncated": more}
    if more:
        out["NextMarker"] = _marker(scope, str(items[-1]["AliasName"]))
    return out


def _data_key_length(p: dict[str, Any]) -> int:
    if ("KeySpec" in p) == ("NumberOfBytes" in p):
        raise errors.Validation("Please specify either number of bytes or key spec.")
    return _DATA_KEY_BYTES[p["KeySpec"]] if "KeySpec" in p else p["NumberOfBytes"]


def _generate(call: Call) -> dict[str, Any]:
    p = call.params
    length = _data_key_length(p)
    context = p.get("EncryptionContext")
    key = _key(call, other_accounts=True)
    _authorize_crypto(call, f"kms:{call.operation}", key, context)
    key.check_usable()
    crypto.require_symmetric(key, call.operation)
    plaintext = os.urandom(length)
    blob = crypto.encrypt_with(call.context.data_dir, key, plaintext, context)
    return {"CiphertextBlob": blob, "Plaintext": plaintext, "KeyId": key.arn}


def generate_data_key(call: Call) -> dict[str, Any]:
    return _generate(call)


def generate_data_key_without_plaintext(call: Call) -> dict[str, Any]:
    out = _generate(call)
    del out["Plaintext"]
    return out


def encrypt(call: Call) -> dict[str, Any]:
    p = call.params
    key = _key(call, other_accounts=True)
    _authorize_crypto(call, "kms:Encrypt", key, p.get("EncryptionContext"))
    blob = crypto.encrypt_with(call.context.data_dir, key, p["Plaintext"], p.get("EncryptionContext"))
    return {"CiphertextBlob": blob, "KeyId": key.arn, "EncryptionAlgorithm": "SYMMETRIC_DEFAULT"}


def _open(
    call: Call, blob: bytes, context: dict[str, str] | None, named: str | None, action: str
) -> tuple[keys.Key, bytes]:
    key_id = crypto.key_id_of_blob(blob)
    with _db(call).read() as conn:
        # The blob names its key, in whichever account (a key policy may let others decrypt).
        key = keys.by_id(conn, key_id, call.region)
        if key is None:
            raise errors.InvalidCiphertext()
        if named is not None and _resolve(call, named, conn, other_accounts=True).key_id != key.key_id:
            raise errors.IncorrectKey()
    _authorize_crypto(call, action, key, context)
    return key, crypto.decrypt_with(call.context.data_dir, key, blob, context)


def decrypt(call: Call) -> dict[str, Any]:
    p = call.params
    key, plaintext = _open(
        call, p["CiphertextBlob"], p.get("EncryptionContext"), p.get("KeyId"), "kms:Decrypt"
    )
    return {"KeyId": key.arn, "Plaintext": plaintext, "EncryptionAlgorithm": "SYMMETRIC_DEFAULT"}


def re_encrypt(call: Call) -> dict[str, Any]:
    p = call.params
    source, plaintext = _open(
        call, p["CiphertextBlob"], p.get("SourceEncryptionContext"), p.get("SourceKeyId"), "kms:ReEncryptFrom"
    )
    destination = _key(call, p["DestinationKeyId"], other_accounts=True)
    _authorize_crypto(call, "kms:ReEncryptTo", destination, p.get("DestinationEncryptionContext"))
    blob = crypto.encrypt_with(
        call.context.data_dir, destination, plaintext, p.get("DestinationEncryptionContext")
    )
    return {
        "CiphertextBlob": blob,
        "SourceKeyId": source.arn,
        "KeyId": destination.arn,
        "SourceEncryptionAlgorithm": "SYMMETRIC_DEFAULT",
        "DestinationEncryptionAlgorithm": "SYMMETRIC_DEFAULT",
    }


def get_public_key(call: Call) -> dict[str, Any]:
    key = _allowed_key(call, other_accounts=True)
    if key.symmetric:
        raise errors.Unsupported(f"{key.arn} is a symmetric key; it has no public key.")
    key.check_usable()
    private = serialization.load_der_private_key(key.material(call.context.data_dir), password=None)
    public = private.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    meta = key.metadata()
    return {
        "KeyId": key.arn,
        "PublicKey": public,
        "KeySpec": key.key_spec,
        "CustomerMasterKeySpec": key.key_spec,
        "KeyUsage": key.key_usage,
        "EncryptionAlgorithms": meta.get("EncryptionAlgorithms"),
        "SigningAlgorithms": meta.get("SigningAlgorithms"),
    }


POLICY_NAME = "default"  # a key has one key policy, named "default"


def _policy_name(call: Call) -> None:
    name = call.params.get("PolicyName", POLICY_NAME)
    if name != POLICY_NAME:
        raise errors.NotFound(
            f"Policy {name} is not found; a key's only key policy is named '{POLICY_NAME}'."
        )


def get_key_policy(call: Call) -> dict[str, Any]:
    key = _allowed_key(call, allow_alias=False)
    _policy_name(call)
    return {"Policy": access.policy_text(key), "PolicyName": POLICY_NAME}


def put_key_policy(call: Call) -> dict[str, Any]:
    p = call.params
    key = _allowed_key(call, allow_alias=False)
    _policy_name(call)
    policy = access.validate(p["Policy"])
    if not p.get("BypassPolicyLockoutSafetyCheck"):
        access.check_lockout(call, key, policy)
    with _db(call).begin() as conn:
        keys.set_policy(conn, key, p["Policy"])
    return {}


def list_key_policies(call: Call) -> dict[str, Any]:
    _allowed_key(call, allow_alias=False)
    return {"PolicyNames": [POLICY_NAME], "Truncated": False}


_MAX_TAGS = 50


def _check_tags(tags: list[dict[str, str]]) -> None:
    """Tag rules of KMS ("Tagging keys"): ``aws:`` is AWS's prefix, one value per key."""
    names = [t["TagKey"] for t in tags]
    if any(name.lower().startswith("aws:") for name in names):
        raise errors.TagError("Tag keys may not begin with 'aws:'; that prefix is reserved for AWS.")
    if len(set(names)) != len(names):
        raise errors.TagError("Tag keys must be unique within a request.")


def tag_resource(call: Call) -> dict[str, Any]:
    tags = call.params["Tags"]
    _check_tags(tags)
    new = {t["TagKey"]: t["TagValue"] for t in tags}
    key = _allowed_key(call, allow_alias=False)
    if key.key_state == keys.PENDING_DELETION:
        raise errors.InvalidState(f"{key.arn} is pending deletion.")
    merged = {**key.tag_map, **new}
    if len(merged) > _MAX_TAGS:
        raise errors.LimitExceeded(f"A key may have at most {_MAX_TAGS} tags.")
    with _db(call).begin() as conn:
        keys.set_tags(conn, key, merged)
    return {}


def untag_resource(call: Call) -> dict[str, Any]:
    names = call.params["TagKeys"]
    key = _allowed_key(call, allow_alias=False)
    if key.key_state == keys.PENDING_DELETION:
        raise errors.InvalidState(f"{key.arn} is pending deletion.")
    with _db(call).begin() as conn:
        keys.set_tags(conn, key, {k: v for k, v in key.tag_map.items() if k not in set(names)})
    return {}


def list_resource_tags(call: Call) -> dict[str, Any]:
    key = _allowed_key(call, allow_alias=False)
    tags = [{"TagKey": k, "TagValue": v} for k, v in sorted(key.tags)]
    return {"Tags": tags, "Truncated": False}


HANDLERS: dict[str, Handler] = {
    "CreateKey": create_key,
    "DescribeKey": describe_key,
    "ListKeys": list_keys,
    "EnableKey": enable_key,
    "DisableKey": disable_key,
    "ScheduleKeyDeletion": schedule_key_deletion,
    "CancelKeyDeletion": cancel_key_deletion,
    "CreateAlias": create_alias,
    "DeleteAlias": delete_alias,
    "ListAliases": list_aliases,
    "GenerateDataKey": generate_data_key,
    "GenerateDataKeyWithoutPlaintext": generate_data_key_without_plaintext,
    "Encrypt": encrypt,
    "Decrypt": decrypt,
    "ReEncrypt": re_encrypt,
    "GetPublicKey": get_public_key,
    "GetKeyPolicy": get_key_policy,
    "PutKeyPolicy": put_key_policy,
    "ListKeyPolicies": list_key_policies,
    "TagResource": tag_resource,
    "UntagResource": untag_resource,
    "ListResourceTags": list_resource_tags,
}

# The operations AWS authorizes with IAM policies alone, on resource "*" ("AWS KMS permissions"
# reference: CreateKey, ListKeys and ListAliases have no key resource). Every other operation is
# authorized by its handler with the key: key policy first, then IAM (kms/access.py).
# CreateKey's handler makes that check itself, with its request's condition keys.
IAM_ONLY = frozenset({"ListKeys", "ListAliases"})


def _action(call: Call) -> str | None:
    return f"kms:{call.operation}" if call.operation in IAM_ONLY else None


def spec() -> ServiceSpec:
    return ServiceSpec(
        name="kms",
        model=service_model("kms"),
        protocol=JsonProtocol(),
        handlers=HANDLERS,
        action_for=_action,
    )
