"""Access matrix for KMS keys against a real ``mailcrate serve``, with boto3: key policies, IAM
policies, both, explicit denies, two accounts, SSE-KMS in S3 and the KMS condition keys.

Each test is named after the AWS rule it checks; the AWS documentation page is cited above it.
The pages (AWS KMS Developer Guide unless said otherwise):

* KP: "Key policies in AWS KMS" (https://docs.aws.amazon.com/kms/latest/developerguide/key-policies.html)
* DKP: "Default key policy" (https://docs.aws.amazon.com/kms/latest/developerguide/key-policy-default.html)
* XA: "Allowing users in other accounts to use a KMS key"
  (https://docs.aws.amazon.com/kms/latest/developerguide/key-policy-modifying-external-accounts.html)
* EVAL: IAM User Guide, "Policy evaluation logic"
  (https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_evaluation-logic.html)
* COND: "AWS KMS condition keys" (https://docs.aws.amazon.com/kms/latest/developerguide/conditions-kms.html)
* TAGS: "ABAC for AWS KMS" (https://docs.aws.amazon.com/kms/latest/developerguide/abac.html)
* IFX: IAM User Guide, "IAM JSON policy elements: Condition operators" (...IfExists, Null)
* S3KMS: Amazon S3 User Guide, "Using server-side encryption with AWS KMS keys (SSE-KMS)"
  (https://docs.aws.amazon.com/AmazonS3/latest/userguide/UsingKMSEncryption.html)
* PKP: AWS KMS API Reference, "PutKeyPolicy" (BypassPolicyLockoutSafetyCheck, the 32 KB quota)
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from tests.access.support import (
    ACCOUNT_B,
    Caller,
    add_account_b,
    error_code,
    policy,
    root_a,
    root_b,
    statement,
    unique,
    user,
)
from tests.support.mailcrate_server import MailcrateServer

DENIED = "AccessDeniedException"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MailcrateServer]:
    with MailcrateServer.running(tmp_path_factory.mktemp("kms-matrix") / "data") as srv:
        add_account_b(srv)
        yield srv


@pytest.fixture(scope="module")
def a(server: MailcrateServer) -> Caller:
    return root_a(server)


@pytest.fixture(scope="module")
def b(server: MailcrateServer) -> Caller:
    return root_b(server)


def grant(
    principal: str | list[str], action: str | list[str] = "kms:*", effect: str = "Allow", **extra: Any
) -> dict[str, Any]:
    """A key policy statement for ``principal`` (an ARN, an account id, or "*")."""
    return statement(effect, action, Principal={"AWS": principal}, **extra)


def account_root(caller: Caller) -> str:
    return caller.arn.split(":user/")[0].replace(":root", "") + ":root"


def new_key(owner: Caller, *statements: dict[str, Any], bypass: bool = True, **kwargs: Any) -> dict[str, Any]:
    """A key of ``owner``'s account with that key policy (none: AWS's default one)."""
    if statements:
        kwargs.update(Policy=policy(*statements), BypassPolicyLockoutSafetyCheck=bypass)
    return owner.client("kms").create_key(**kwargs)["KeyMetadata"]


def encrypt(caller: Caller, key: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
    return caller.client("kms").encrypt(KeyId=key["Arn"], Plaintext=b"secret", **kwargs)


def kms_code(caller: Caller, operation: str, **kwargs: Any) -> str:
    return error_code(getattr(caller.client("kms"), operation), **kwargs)


def user_with_kms(root: Caller, *statements: dict[str, Any]) -> Caller:
    return user(root, unique("u"), *(statements or (statement("Allow", "kms:*"),)))


# --- one account: key policy, IAM, both ---------------------------------------------------------


# DKP: the default key policy enables IAM policies; a user whose IAM policy allows may use the key.
def test_default_key_policy_lets_iam_policies_allow(a: Caller) -> None:
    key = new_key(a)
    blob = encrypt(user_with_kms(a), key)["CiphertextBlob"]
    assert a.client("kms").decrypt(CiphertextBlob=blob)["Plaintext"] == b"secret"


# DKP + EVAL: with the default key policy, a user without an IAM policy is implicitly denied.
def test_default_key_policy_without_iam_policy_denies(a: Caller) -> None:
    key = new_key(a)
    assert kms_code(user(a, unique("none")), "encrypt", KeyId=key["Arn"], Plaintext=b"x") == DENIED


# DKP: the account's root user is allowed by the default key policy.
def test_default_key_policy_allows_the_account_root(a: Caller) -> None:
    key = new_key(a)
    assert encrypt(a, key)["KeyId"] == key["Arn"]


# KP: a key policy statement naming the user allows it without any IAM policy (key policy alone).
def test_key_policy_naming_the_user_allows_without_iam(a: Caller) -> None:
    alice = user(a, unique("alice"))
    key = new_key(a, grant(a.arn), grant(alice.arn, ["kms:Encrypt", "kms:Decrypt"]))
    blob = encrypt(alice, key)["CiphertextBlob"]
    assert alice.client("kms").decrypt(CiphertextBlob=blob)["Plaintext"] == b"secret"


# KP: a key policy that names only someone else protects the key from a user with kms:* in IAM.
def test_key_policy_naming_someone_else_refuses_iam_kms_star_decrypt(a: Caller) -> None:
    admin = user(a, unique("keyadmin"))
    key = new_key(a)
    blob = encrypt(a, key)["CiphertextBlob"]
    a.client("kms").put_key_policy(
        KeyId=key["KeyId"], Policy=policy(grant(admin.arn)), BypassPolicyLockoutSafetyCheck=True
    )
    mallory = user_with_kms(a)
    assert kms_code(mallory, "decrypt", CiphertextBlob=blob) == DENIED


# KP: ... nor disable or re-enable it.
def test_key_policy_naming_someone_else_refuses_iam_kms_star_disable(a: Caller) -> None:
    admin = user(a, unique("keyadmin"))
    key = new_key(a, grant(admin.arn))
    mallory = user_with_kms(a)
    assert kms_code(mallory, "disable_key", KeyId=key["KeyId"]) == DENIED
    assert kms_code(mallory, "enable_key", KeyId=key["KeyId"]) == DENIED
    assert kms_code(mallory, "schedule_key_deletion", KeyId=key["KeyId"]) == DENIED
    assert admin.client("kms").describe_key(KeyId=key["KeyId"])["KeyMetadata"]["KeyState"] == "Enabled"


# KP: without the account statement, not even the account's root user may use the key.
def test_key_policy_without_account_statement_refuses_root(a: Caller) -> None:
    admin = user(a, unique("keyadmin"))
    key = new_key(a, grant(admin.arn))
    assert kms_code(a, "encrypt", KeyId=key["Arn"], Plaintext=b"x") == DENIED
    assert kms_code(a, "put_key_policy", KeyId=key["KeyId"], Policy=policy(grant(a.arn))) == DENIED


# EVAL: an explicit Deny in the key policy wins over an IAM Allow.
def test_explicit_deny_in_key_policy_beats_iam_allow(a: Caller) -> None:
    carol = user_with_kms(a)
    key = new_key(a, grant(a.arn), grant(carol.arn, "kms:Decrypt", effect="Deny"))
    blob = encrypt(carol, key)["CiphertextBlob"]  # Encrypt is not denied
    assert kms_code(carol, "decrypt", CiphertextBlob=blob) == DENIED


# EVAL: an explicit Deny in the key policy wins over an Allow in the same key policy.
def test_explicit_deny_in_key_policy_beats_key_policy_allow(a: Caller) -> None:
    dave = user(a, unique("dave"))
    key = new_key(a, grant(a.arn), grant(dave.arn), grant(dave.arn, "kms:Encrypt", effect="Deny"))
    assert kms_code(dave, "encrypt", KeyId=key["Arn"], Plaintext=b"x") == DENIED
    assert dave.client("kms").describe_key(KeyId=key["Arn"])["KeyMetadata"]["KeyId"] == key["KeyId"]


# EVAL: an explicit Deny in an IAM policy wins over a key policy naming the user.
def test_explicit_deny_in_iam_beats_key_policy_allow(a: Caller) -> None:
    erin = user(a, unique("erin"), statement("Deny", "kms:Encrypt"))
    key = new_key(a, grant(a.arn), grant(erin.arn))
    assert kms_code(erin, "encrypt", KeyId=key["Arn"], Plaintext=b"x") == DENIED


# EVAL: an explicit Deny in IAM wins where the default key policy enables IAM.
def test_explicit_deny_in_iam_beats_iam_allow_under_default_policy(a: Caller) -> None:
    frank = user(a, unique("frank"), statement("Allow", "kms:*"), statement("Deny", "kms:Encrypt"))
    key = new_key(a)
    assert kms_code(frank, "encrypt", KeyId=key["Arn"], Plaintext=b"x") == DENIED


# KP: an IAM policy allows only the actions and keys it names (the key ARN as its resource).
def test_iam_policy_scoped_to_another_key_does_not_allow(a: Caller) -> None:
    key, other = new_key(a), new_key(a)
    gina = user(a, unique("gina"), statement("Allow", "kms:Encrypt", other["Arn"]))
    assert encrypt(gina, other)["KeyId"] == other["Arn"]
    assert kms_code(gina, "encrypt", KeyId=key["Arn"], Plaintext=b"x") == DENIED


# KP: a key policy naming a role allows that role's sessions without an IAM policy.
def test_key_policy_naming_a_role_allows_its_sessions(a: Caller, server: MailcrateServer) -> None:
    iam = a.client("iam")
    name = unique("role")
    trust = policy({"Effect": "Allow", "Principal": {"AWS": a.arn}, "Action": "sts:AssumeRole"})
    role_arn = iam.create_role(RoleName=name, AssumeRolePolicyDocument=trust)["Role"]["Arn"]
    key = new_key(a, grant(a.arn), grant(role_arn, "kms:Encrypt"))
    creds = a.client("sts").assume_role(RoleArn=role_arn, RoleSessionName="sess")["Credentials"]
    session = Caller(server, creds["AccessKeyId"], creds["SecretAccessKey"], role_arn, creds["SessionToken"])
    assert encrypt(session, key)["KeyId"] == key["Arn"]
    assert kms_code(session, "decrypt", CiphertextBlob=encrypt(a, key)["CiphertextBlob"]) == DENIED


# KP: CreateKey, ListKeys and ListAliases are authorized by IAM policies alone (no key resource).
def test_create_and_list_keys_are_iam_only(a: Caller) -> None:
    lister = user(a, unique("lister"), statement("Allow", ["kms:ListKeys", "kms:ListAliases"]))
    assert "Keys" in lister.client("kms").list_keys()
    assert "Aliases" in lister.client("kms").list_aliases()
    assert kms_code(lister, "create_key") == DENIED


# --- two accounts ------------------------------------------------------------------------------


# XA: the default key policy does not name another account: its root may not use the key.
def test_cross_account_default_key_policy_refuses_other_root(a: Caller, b: Caller) -> None:
    key = new_key(a)
    assert kms_code(b, "encrypt", KeyId=key["Arn"], Plaintext=b"x") == DENIED
    assert kms_code(b, "decrypt", CiphertextBlob=encrypt(a, key)["CiphertextBlob"]) == DENIED


# XA: IAM alone cannot open another account's key (kms:* in B, default key policy in A).
def test_cross_account_iam_alone_is_not_enough(a: Caller, b: Caller) -> None:
    key = new_key(a)
    assert kms_code(user_with_kms(b), "encrypt", KeyId=key["Arn"], Plaintext=b"x") == DENIED


# XA: the key policy names account B; B's root counts as allowed by its own account.
def test_cross_account_key_policy_naming_account_allows_its_root(a: Caller, b: Caller) -> None:
    key = new_key(a, grant(a.arn), grant(ACCOUNT_B, ["kms:Encrypt", "kms:Decrypt", "kms:DescribeKey"]))
    blob = encrypt(b, key)["CiphertextBlob"]
    assert b.client("kms").decrypt(CiphertextBlob=blob)["Plaintext"] == b"secret"
    assert b.client("kms").describe_key(KeyId=key["Arn"])["KeyMetadata"]["AWSAccountId"] != ACCOUNT_B


# XA: the key policy names account B, but B's user has no IAM policy: denied (half missing).
def test_cross_account_key_policy_without_callers_iam_denies(a: Caller, b: Caller) -> None:
    key = new_key(a, grant(a.arn), grant(f"arn:aws:iam::{ACCOUNT_B}:root", "kms:Encrypt"))
    assert kms_code(user(b, unique("noiam")), "encrypt", KeyId=key["Arn"], Plaintext=b"x") == DENIED


# XA: key policy names account B and B's IAM policy allows on the key's ARN: allowed (both halves).
def test_cross_account_both_halves_allow(a: Caller, b: Caller) -> None:
    key = new_key(a, grant(a.arn), grant(ACCOUNT_B, ["kms:Encrypt", "kms:GenerateDataKey"]))
    bob = user(b, unique("bob"), statement("Allow", ["kms:Encrypt", "kms:GenerateDataKey"], key["Arn"]))
    assert encrypt(bob, key)["KeyId"] == key["Arn"]
    data_key = bob.client("kms").generate_data_key(KeyId=key["Arn"], KeySpec="AES_256")
    assert len(data_key["Plaintext"]) == 32


# XA: even a key policy naming B's user directly needs that user's own IAM policy.
def test_cross_account_key_policy_naming_user_still_needs_iam(a: Caller, b: Caller) -> None:
    bare = user(b, unique("bare"))
    key = new_key(a, grant(a.arn), grant(bare.arn, "kms:Encrypt"))
    assert kms_code(bare, "encrypt", KeyId=key["Arn"], Plaintext=b"x") == DENIED
    with_iam = user(b, unique("withiam"), statement("Allow", "kms:Encrypt"))
    key2 = new_key(a, grant(a.arn), grant(with_iam.arn, "kms:Encrypt"))
    assert encrypt(with_iam, key2)["KeyId"] == key2["Arn"]


# XA + EVAL: an explicit Deny in the caller's own IAM policy wins across accounts too.
def test_cross_account_explicit_deny_in_callers_iam(a: Caller, b: Caller) -> None:
    key = new_key(a, grant(a.arn), grant(ACCOUNT_B, "kms:Encrypt"))
    denied = user(b, unique("den"), statement("Allow", "kms:*"), statement("Deny", "kms:Encrypt"))
    assert kms_code(denied, "encrypt", KeyId=key["Arn"], Plaintext=b"x") == DENIED


# XA: only a key ARN names another account's key; a bare key id is looked up in the caller's own.
def test_cross_account_key_id_is_not_found(a: Caller, b: Caller) -> None:
    key = new_key(a, grant(a.arn), grant(ACCOUNT_B, "kms:*"))
    assert kms_code(b, "encrypt", KeyId=key["KeyId"], Plaintext=b"x") == "NotFoundException"


# XA: administrative operations are not available across accounts, whatever the key policy says.
def test_cross_account_admin_operations_refused(a: Caller, b: Caller) -> None:
    key = new_key(a, grant(a.arn), grant(ACCOUNT_B, "kms:*"))
    assert kms_code(b, "disable_key", KeyId=key["Arn"]) == "NotFoundException"
    assert kms_code(b, "get_key_policy", KeyId=key["Arn"], PolicyName="default") == "NotFoundException"


# XA: ReEncrypt into another account's key needs kms:ReEncryptTo from its key policy.
def test_cross_account_reencrypt_to_needs_key_policy(a: Caller, b: Caller) -> None:
    theirs = new_key(a, grant(a.arn), grant(ACCOUNT_B, "kms:ReEncryptTo"))
    closed = new_key(a)
    mine = new_key(b)
    blob = encrypt(b, mine)["CiphertextBlob"]
    out = b.client("kms").re_encrypt(CiphertextBlob=blob, DestinationKeyId=theirs["Arn"])
    assert out["KeyId"] == theirs["Arn"]
    assert kms_code(b, "re_encrypt", CiphertextBlob=blob, DestinationKeyId=closed["Arn"]) == DENIED


# --- SSE-KMS in S3 ----------------------------------------------------------------------------


def shared_bucket(a: Caller, actions: list[str]) -> str:
    """A bucket of account A whose bucket policy lets account B do ``actions``."""
    name = unique("xa")
    s3 = a.client("s3")
    s3.create_bucket(Bucket=name)
    s3.put_bucket_policy(
        Bucket=name,
        Policy=policy(
            {
                "Effect": "Allow",
                "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT_B}:root"},
                "Action": actions,
                "Resource": [f"arn:aws:s3:::{name}", f"arn:aws:s3:::{name}/*"],
            }
        ),
    )
    return name


def s3_code(caller: Caller, operation: str, **kwargs: Any) -> str:
    return error_code(getattr(caller.client("s3"), operation), **kwargs)


# S3KMS + XA: A's bucket policy lets B GetObject, A's default key policy does not name B: B's
# root gets an error, not the plaintext.
def test_sse_kms_get_across_accounts_refused_for_other_root(a: Caller, b: Caller) -> None:
    bucket = shared_bucket(a, ["s3:GetObject"])
    key = new_key(a)
    a.client("s3").put_object(
        Bucket=bucket,
        Key="mail.zip",
        Body=b"mail text",
        ServerSideEncryption="aws:kms",
        SSEKMSKeyId=key["Arn"],
    )
    assert s3_code(b, "get_object", Bucket=bucket, Key="mail.zip") == "AccessDenied"
    # HeadObject reads metadata only and needs no kms:Decrypt: it answers, without a byte of data.
    head = b.client("s3").head_object(Bucket=bucket, Key="mail.zip")
    assert head["ServerSideEncryption"] == "aws:kms" and head["SSEKMSKeyId"] == key["Arn"]


# S3KMS + XA: ... nor does a B user whose IAM allows kms:* and s3:*.
def test_sse_kms_get_across_accounts_refused_for_iam_kms_star(a: Caller, b: Caller) -> None:
    bucket = shared_bucket(a, ["s3:GetObject"])
    key = new_key(a)
    a.client("s3").put_object(
        Bucket=bucket, Key="k", Body=b"mail text", ServerSideEncryption="aws:kms", SSEKMSKeyId=key["Arn"]
    )
    reader = user(b, unique("reader"), statement("Allow", ["kms:*", "s3:*"]))
    assert s3_code(reader, "get_object", Bucket=bucket, Key="k") == "AccessDenied"


# S3KMS + XA: with A's key policy naming B and B's IAM allowing kms:Decrypt, B reads it.
def test_sse_kms_get_across_accounts_with_both_halves(a: Caller, b: Caller) -> None:
    bucket = shared_bucket(a, ["s3:GetObject"])
    key = new_key(a, grant(a.arn), grant(ACCOUNT_B, "kms:Decrypt"))
    a.client("s3").put_object(
        Bucket=bucket, Key="k", Body=b"mail text", ServerSideEncryption="aws:kms", SSEKMSKeyId=key["Arn"]
    )
    reader = user(b, unique("reader"), statement("Allow", ["s3:GetObject", "kms:Decrypt"]))
    assert reader.client("s3").get_object(Bucket=bucket, Key="k")["Body"].read() == b"mail text"


# S3KMS + XA: B may not write into A's bucket under A's key that does not name B.
def test_sse_kms_put_across_accounts_under_unshared_key_refused(a: Caller, b: Caller) -> None:
    bucket = shared_bucket(a, ["s3:PutObject"])
    key = new_key(a)
    code = s3_code(
        b,
        "put_object",
        Bucket=bucket,
        Key="k",
        Body=b"x",
        ServerSideEncryption="aws:kms",
        SSEKMSKeyId=key["Arn"],
    )
    assert code == "AccessDenied"
    assert (
        s3_code(
            b,
            "create_multipart_upload",
            Bucket=bucket,
            Key="m",
            ServerSideEncryption="aws:kms",
            SSEKMSKeyId=key["Arn"],
        )
        == "AccessDenied"
    )


# S3KMS: a user allowed s3:* but denied kms:Decrypt by the key policy cannot read the object.
def test_sse_kms_get_same_account_key_policy_deny(a: Caller) -> None:
    s3 = a.client("s3")
    bucket = unique("sa")
    s3.create_bucket(Bucket=bucket)
    reader = user(a, unique("reader"), statement("Allow", ["s3:*", "kms:*"]))
    key = new_key(a, grant(a.arn), grant(reader.arn, "kms:Decrypt", effect="Deny"))
    s3.put_object(Bucket=bucket, Key="k", Body=b"x", ServerSideEncryption="aws:kms", SSEKMSKeyId=key["Arn"])
    assert s3_code(reader, "get_object", Bucket=bucket, Key="k") == "AccessDenied"
    assert (
        s3_code(
            reader,
            "copy_object",
            Bucket=bucket,
            Key="copy",
            CopySource={"Bucket": bucket, "Key": "k"},
        )
        == "AccessDenied"
    )
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"x"


# S3KMS: an alias (or key id) in SSE-KMS is resolved in the requester's account, not the bucket's.
def test_sse_kms_alias_resolves_in_requesters_account(a: Caller, b: Caller) -> None:
    bucket = shared_bucket(a, ["s3:PutObject", "s3:GetObject"])
    key = new_key(a, grant(a.arn), grant(ACCOUNT_B, "kms:*"))
    code = s3_code(
        b,
        "put_object",
        Bucket=bucket,
        Key="k",
        Body=b"x",
        ServerSideEncryption="aws:kms",
        SSEKMSKeyId=key["KeyId"],
    )
    assert code == "KMS.NotFoundException"
    put = b.client("s3").put_object(
        Bucket=bucket, Key="k", Body=b"x", ServerSideEncryption="aws:kms", SSEKMSKeyId=key["Arn"]
    )
    assert put["SSEKMSKeyId"] == key["Arn"]


# --- condition keys ---------------------------------------------------------------------------


# COND (kms:CallerAccount): a "*" principal limited to one account allows its users without IAM
# and no one of the other account.
def test_caller_account_condition_in_key_policy_allow(a: Caller, b: Caller) -> None:
    key = new_key(
        a,
        grant(a.arn),
        grant("*", "kms:Encrypt", Condition={"StringEquals": {"kms:CallerAccount": a.arn.split(":")[4]}}),
    )
    assert encrypt(user(a, unique("plain")), key)["KeyId"] == key["Arn"]
    assert kms_code(user_with_kms(b), "encrypt", KeyId=key["Arn"], Plaintext=b"x") == DENIED


# COND (kms:CallerAccount) in a Deny: every caller of another account is denied.
def test_caller_account_condition_in_key_policy_deny(a: Caller, b: Caller) -> None:
    key = new_key(
        a,
        grant(a.arn),
        grant(ACCOUNT_B, "kms:Encrypt"),
        grant("*", "kms:*", effect="Deny", Condition={"StringEquals": {"kms:CallerAccount": ACCOUNT_B}}),
    )
    assert kms_code(b, "encrypt", KeyId=key["Arn"], Plaintext=b"x") == DENIED


# COND (kms:ViaService): allowed through S3, refused when called directly.
def test_via_service_condition_allows_only_through_s3(a: Caller) -> None:
    reader = user(a, unique("via"), statement("Allow", "s3:*"))
    key = new_key(
        a,
        grant(a.arn),
        grant(
            reader.arn,
            ["kms:Decrypt", "kms:GenerateDataKey"],
            Condition={"StringEquals": {"kms:ViaService": "s3.us-east-1.amazonaws.com"}},
        ),
    )
    bucket = unique("via")
    a.client("s3").create_bucket(Bucket=bucket)
    reader.client("s3").put_object(
        Bucket=bucket, Key="k", Body=b"v", ServerSideEncryption="aws:kms", SSEKMSKeyId=key["Arn"]
    )
    assert reader.client("s3").get_object(Bucket=bucket, Key="k")["Body"].read() == b"v"
    assert kms_code(reader, "generate_data_key", KeyId=key["Arn"], KeySpec="AES_256") == DENIED


# COND (kms:ViaService) with IfExists in a Deny: a direct call carries no kms:ViaService, so the
# condition is true and the Deny applies; through S3 the key is there and differs: no deny.
def test_via_service_if_exists_deny(a: Caller) -> None:
    writer = user(a, unique("vx"), statement("Allow", ["s3:*", "kms:*"]))
    key = new_key(
        a,
        grant(a.arn),
        grant(
            writer.arn,
            "kms:GenerateDataKey",
            effect="Deny",
            Condition={"StringNotEqualsIfExists": {"kms:ViaService": "s3.us-east-1.amazonaws.com"}},
        ),
    )
    assert kms_code(writer, "generate_data_key", KeyId=key["Arn"], KeySpec="AES_256") == DENIED
    bucket = unique("vx")
    a.client("s3").create_bucket(Bucket=bucket)
    writer.client("s3").put_object(
        Bucket=bucket, Key="k", Body=b"v", ServerSideEncryption="aws:kms", SSEKMSKeyId=key["Arn"]
    )


# COND (kms:EncryptionContext:context-key) in an Allow: only a matching context is allowed.
def test_encryption_context_condition_in_allow(a: Caller) -> None:
    app = user(a, unique("ctx"))
    key = new_key(
        a,
        grant(a.arn),
        grant(app.arn, "kms:Encrypt", Condition={"StringEquals": {"kms:EncryptionContext:app": "mail"}}),
    )
    assert encrypt(app, key, EncryptionContext={"app": "mail"})["KeyId"] == key["Arn"]
    assert (
        kms_code(app, "encrypt", KeyId=key["Arn"], Plaintext=b"x", EncryptionContext={"app": "web"}) == DENIED
    )
    assert kms_code(app, "encrypt", KeyId=key["Arn"], Plaintext=b"x") == DENIED


# COND + IFX: StringEqualsIfExists on an absent context key is true: a request without context is
# allowed, a different value is not.
def test_encryption_context_if_exists_in_allow(a: Caller) -> None:
    app = user(a, unique("ctxif"))
    key = new_key(
        a,
        grant(a.arn),
        grant(
            app.arn, "kms:Encrypt", Condition={"StringEqualsIfExists": {"kms:EncryptionContext:app": "mail"}}
        ),
    )
    assert encrypt(app, key)["KeyId"] == key["Arn"]
    assert (
        kms_code(app, "encrypt", KeyId=key["Arn"], Plaintext=b"x", EncryptionContext={"app": "web"}) == DENIED
    )


# COND (kms:EncryptionContextKeys) in a Deny, with ForAnyValue: a forbidden context key is denied.
def test_encryption_context_keys_in_deny(a: Caller) -> None:
    app = user_with_kms(a)
    key = new_key(
        a,
        grant(a.arn),
        grant(
            "*",
            "kms:Encrypt",
            effect="Deny",
            Condition={"ForAnyValue:StringEquals": {"kms:EncryptionContextKeys": "forbidden"}},
        ),
    )
    assert encrypt(app, key, EncryptionContext={"fine": "1"})["KeyId"] == key["Arn"]
    assert (
        kms_code(app, "encrypt", KeyId=key["Arn"], Plaintext=b"x", EncryptionContext={"forbidden": "1"})
        == DENIED
    )


# IFX (Null): a Deny when kms:EncryptionContextKeys is absent refuses requests without context.
def test_null_condition_denies_requests_without_context(a: Caller) -> None:
    app = user_with_kms(a)
    key = new_key(
        a,
        grant(a.arn),
        grant("*", "kms:Encrypt", effect="Deny", Condition={"Null": {"kms:EncryptionContextKeys": "true"}}),
    )
    assert kms_code(app, "encrypt", KeyId=key["Arn"], Plaintext=b"x") == DENIED
    assert encrypt(app, key, EncryptionContext={"k": "v"})["KeyId"] == key["Arn"]


# COND + IFX: a Deny with plain StringEquals on an absent context key does not apply.
def test_deny_on_absent_context_key_without_if_exists_does_not_apply(a: Caller) -> None:
    app = user_with_kms(a)
    key = new_key(
        a,
        grant(a.arn),
        grant(
            "*", "kms:Encrypt", effect="Deny", Condition={"StringEquals": {"kms:EncryptionContext:tier": "x"}}
        ),
    )
    assert encrypt(app, key)["KeyId"] == key["Arn"]
    assert (
        kms_code(app, "encrypt", KeyId=key["Arn"], Plaintext=b"x", EncryptionContext={"tier": "x"}) == DENIED
    )


# COND (kms:EncryptionContext) in an IAM policy: the identity half conditions on it too.
def test_encryption_context_condition_in_iam_policy(a: Caller) -> None:
    app = user(
        a,
        unique("ctxiam"),
        statement("Allow", "kms:Encrypt", Condition={"StringEquals": {"kms:EncryptionContext:app": "mail"}}),
    )
    key = new_key(a)
    assert encrypt(app, key, EncryptionContext={"app": "mail"})["KeyId"] == key["Arn"]
    assert (
        kms_code(app, "encrypt", KeyId=key["Arn"], Plaintext=b"x", EncryptionContext={"app": "x"}) == DENIED
    )


# TAGS (aws:ResourceTag) in an IAM Allow: only keys tagged so are usable.
def test_resource_tag_condition_in_iam_allow(a: Caller) -> None:
    app = user(
        a,
        unique("abac"),
        statement("Allow", "kms:Encrypt", Condition={"StringEquals": {"aws:ResourceTag/team": "mail"}}),
    )
    tagged = new_key(a, Tags=[{"TagKey": "team", "TagValue": "mail"}])
    plain = new_key(a)
    assert encrypt(app, tagged)["KeyId"] == tagged["Arn"]
    assert kms_code(app, "encrypt", KeyId=plain["Arn"], Plaintext=b"x") == DENIED
    a.client("kms").tag_resource(KeyId=plain["KeyId"], Tags=[{"TagKey": "team", "TagValue": "mail"}])
    assert encrypt(app, plain)["KeyId"] == plain["Arn"]
    a.client("kms").untag_resource(KeyId=plain["KeyId"], TagKeys=["team"])
    assert kms_code(app, "encrypt", KeyId=plain["Arn"], Plaintext=b"x") == DENIED


# TAGS + IFX (aws:ResourceTag) in a key policy Deny, with and without IfExists on an untagged key.
def test_resource_tag_deny_with_and_without_if_exists(a: Caller) -> None:
    app = user_with_kms(a)
    plain_deny = new_key(
        a,
        grant(a.arn),
        grant(
            "*", "kms:Encrypt", effect="Deny", Condition={"StringNotEquals": {"aws:ResourceTag/env": "prod"}}
        ),
    )
    if_exists_deny = new_key(
        a,
        grant(a.arn),
        grant(
            "*",
            "kms:Encrypt",
            effect="Deny",
            Condition={"StringNotEqualsIfExists": {"aws:ResourceTag/env": "prod"}},
        ),
    )
    # Negated operators on an absent key are true: both Deny an untagged key ...
    assert kms_code(app, "encrypt", KeyId=plain_deny["Arn"], Plaintext=b"x") == DENIED
    assert kms_code(app, "encrypt", KeyId=if_exists_deny["Arn"], Plaintext=b"x") == DENIED
    # ... and neither a key tagged env=prod.
    for key in (plain_deny, if_exists_deny):
        a.client("kms").tag_resource(KeyId=key["KeyId"], Tags=[{"TagKey": "env", "TagValue": "prod"}])
        assert encrypt(app, key)["KeyId"] == key["Arn"]


# COND (kms:KeySpec) in an IAM policy: only symmetric keys.
def test_key_spec_condition_in_iam_policy(a: Caller) -> None:
    app = user(
        a,
        unique("spec"),
        statement(
            "Allow", "kms:DescribeKey", Condition={"StringEquals": {"kms:KeySpec": "SYMMETRIC_DEFAULT"}}
        ),
    )
    symmetric = new_key(a)
    rsa = new_key(a, KeySpec="RSA_2048", KeyUsage="SIGN_VERIFY")
    assert (
        app.client("kms").describe_key(KeyId=symmetric["Arn"])["KeyMetadata"]["KeySpec"]
        == "SYMMETRIC_DEFAULT"
    )
    assert kms_code(app, "describe_key", KeyId=rsa["Arn"]) == DENIED


# TAGS (aws:TagKeys): a Deny on tagging with a reserved-looking key refuses only that.
def test_tag_keys_condition_in_iam_deny(a: Caller) -> None:
    app = user(
        a,
        unique("tk"),
        statement("Allow", "kms:*"),
        statement(
            "Deny", "kms:TagResource", Condition={"ForAnyValue:StringEquals": {"aws:TagKeys": "owner"}}
        ),
    )
    key = new_key(a)
    app.client("kms").tag_resource(KeyId=key["KeyId"], Tags=[{"TagKey": "team", "TagValue": "x"}])
    assert (
        kms_code(app, "tag_resource", KeyId=key["KeyId"], Tags=[{"TagKey": "owner", "TagValue": "x"}])
        == DENIED
    )
    assert app.client("kms").list_resource_tags(KeyId=key["KeyId"])["Tags"] == [
        {"TagKey": "team", "TagValue": "x"}
    ]


# --- the key policy operations ----------------------------------------------------------------


# DKP + PKP: a key created without a policy has AWS's default one, named "default".
def test_get_key_policy_of_a_new_key_is_the_default(a: Caller) -> None:
    key = new_key(a)
    kms = a.client("kms")
    assert kms.list_key_policies(KeyId=key["KeyId"])["PolicyNames"] == ["default"]
    document = json.loads(kms.get_key_policy(KeyId=key["KeyId"], PolicyName="default")["Policy"])
    assert document["Statement"] == [
        {
            "Sid": "Enable IAM User Permissions",
            "Effect": "Allow",
            "Principal": {"AWS": a.arn},
            "Action": "kms:*",
            "Resource": "*",
        }
    ]
    assert kms_code(a, "get_key_policy", KeyId=key["KeyId"], PolicyName="other") == "NotFoundException"


# PKP: PutKeyPolicy replaces the policy, and GetKeyPolicy returns it as written.
def test_put_key_policy_round_trip(a: Caller) -> None:
    key = new_key(a)
    text = policy(grant(a.arn), grant(ACCOUNT_B, "kms:Decrypt"))
    a.client("kms").put_key_policy(KeyId=key["KeyId"], PolicyName="default", Policy=text)
    assert a.client("kms").get_key_policy(KeyId=key["KeyId"], PolicyName="default")["Policy"] == text


# PKP: the lockout safety check refuses a policy that would stop the caller from PutKeyPolicy,
# and changes nothing; BypassPolicyLockoutSafetyCheck lets it through.
def test_put_key_policy_lockout_safety_check(a: Caller) -> None:
    key = new_key(a)
    other = user(a, unique("admin"))
    locking = policy(grant(other.arn))
    assert kms_code(a, "put_key_policy", KeyId=key["KeyId"], PolicyName="default", Policy=locking) == (
        "MalformedPolicyDocumentException"
    )
    assert json.loads(a.client("kms").get_key_policy(KeyId=key["KeyId"], PolicyName="default")["Policy"])[
        "Statement"
    ][0]["Principal"] == {"AWS": a.arn}
    a.client("kms").put_key_policy(
        KeyId=key["KeyId"], PolicyName="default", Policy=locking, BypassPolicyLockoutSafetyCheck=True
    )
    assert kms_code(a, "get_key_policy", KeyId=key["KeyId"], PolicyName="default") == DENIED


# PKP: CreateKey applies the same lockout safety check to its Policy.
def test_create_key_lockout_safety_check(a: Caller) -> None:
    other = user(a, unique("admin"))
    before = len(a.client("kms").list_keys(Limit=1000)["Keys"])
    assert kms_code(a, "create_key", Policy=policy(grant(other.arn))) == "MalformedPolicyDocumentException"
    assert len(a.client("kms").list_keys(Limit=1000)["Keys"]) == before
    assert new_key(a, grant(other.arn), bypass=True)["KeyState"] == "Enabled"


# PKP: a malformed policy (not JSON, no Principal, no Resource: "Key policy elements" in KP) is
# MalformedPolicyDocumentException; over 32 KB
# is LimitExceededException.
def test_put_key_policy_validation(a: Caller) -> None:
    key = new_key(a)
    no_resource = {"Effect": "Allow", "Principal": {"AWS": a.arn}, "Action": "kms:*"}
    for bad in ("{not json", policy(statement("Allow", "kms:*")), policy(no_resource)):
        assert kms_code(a, "put_key_policy", KeyId=key["KeyId"], PolicyName="default", Policy=bad) == (
            "MalformedPolicyDocumentException"
        )
    padded = policy(grant(a.arn, Sid="x" * 33000))
    assert kms_code(a, "put_key_policy", KeyId=key["KeyId"], PolicyName="default", Policy=padded) == (
        "LimitExceededException"
    )


# KP: PutKeyPolicy is itself governed by the key policy (a user allowed only Encrypt may not).
def test_put_key_policy_needs_permission(a: Caller) -> None:
    app = user(a, unique("enc"))
    key = new_key(a, grant(a.arn), grant(app.arn, "kms:Encrypt"))
    assert (
        kms_code(
            app, "put_key_policy", KeyId=key["KeyId"], PolicyName="default", Policy=policy(grant(app.arn))
        )
        == DENIED
    )


# COND (kms:KeySpec) on CreateKey, decided by IAM policies alone: only the spec allowed is created.
def test_key_spec_condition_on_create_key(a: Caller) -> None:
    maker = user(
        a,
        unique("maker"),
        statement("Allow", "kms:CreateKey", Condition={"StringEquals": {"kms:KeySpec": "SYMMETRIC_DEFAULT"}}),
    )
    assert maker.client("kms").create_key()["KeyMetadata"]["KeySpec"] == "SYMMETRIC_DEFAULT"
    assert kms_code(maker, "create_key", KeySpec="ECC_NIST_P256", KeyUsage="SIGN_VERIFY") == DENIED


# TAGS + IFX (aws:RequestTag) on CreateKey: an Allow with StringEqualsIfExists lets a key without
# tags through (the key is absent) and one tagged team=mail; team=web is refused. A Deny with
# ...IfExists on the absent key applies: untagged creation is refused.
def test_request_tag_if_exists_on_create_key(a: Caller) -> None:
    maker = user(
        a,
        unique("tagger"),
        statement(
            "Allow", "kms:CreateKey", Condition={"StringEqualsIfExists": {"aws:RequestTag/team": "mail"}}
        ),
    )
    assert maker.client("kms").create_key()["KeyMetadata"]["KeyState"] == "Enabled"
    assert kms_code(maker, "create_key", Tags=[{"TagKey": "team", "TagValue": "web"}]) == DENIED
    mail = [{"TagKey": "team", "TagValue": "mail"}]
    assert maker.client("kms").create_key(Tags=mail)["KeyMetadata"]["KeyState"] == "Enabled"
    strict = user(
        a,
        unique("strict"),
        statement("Allow", "kms:CreateKey"),
        statement(
            "Deny", "kms:CreateKey", Condition={"StringNotEqualsIfExists": {"aws:RequestTag/team": "mail"}}
        ),
    )
    assert kms_code(strict, "create_key") == DENIED
    assert strict.client("kms").create_key(Tags=mail)["KeyMetadata"]["KeyState"] == "Enabled"


# TAGS (aws:PrincipalTag) in a key policy Allow naming everyone: only users tagged team=mail
# (IAM User Guide, "AWS global condition context keys": aws:PrincipalTag).
def test_principal_tag_condition_in_key_policy_allow(a: Caller) -> None:
    iam = a.client("iam")
    name = unique("tagged")
    iam.create_user(UserName=name, Tags=[{"Key": "team", "Value": "mail"}])
    access_key = iam.create_access_key(UserName=name)["AccessKey"]
    tagged = Caller(a.server, access_key["AccessKeyId"], access_key["SecretAccessKey"], name)
    key = new_key(
        a,
        grant(a.arn),
        grant("*", "kms:Encrypt", Condition={"StringEquals": {"aws:PrincipalTag/team": "mail"}}),
    )
    assert encrypt(tagged, key)["KeyId"] == key["Arn"]
    assert kms_code(user(a, unique("untagged")), "encrypt", KeyId=key["Arn"], Plaintext=b"x") == DENIED


# EVAL (aws:ResourceAccount) in the caller's IAM policy: B's user may use keys of account A only
# when its own policy names A as the resource account ("AWS global condition context keys").
def test_resource_account_condition_in_iam_policy(a: Caller, b: Caller) -> None:
    key = new_key(a, grant(a.arn), grant(ACCOUNT_B, "kms:Encrypt"))
    only_a = user(
        b,
        unique("ra"),
        statement(
            "Allow", "kms:Encrypt", Condition={"StringEquals": {"aws:ResourceAccount": a.arn.split(":")[4]}}
        ),
    )
    only_b = user(
        b,
        unique("rb"),
        statement("Allow", "kms:Encrypt", Condition={"StringEquals": {"aws:ResourceAccount": ACCOUNT_B}}),
    )
    assert encrypt(only_a, key)["KeyId"] == key["Arn"]
    assert kms_code(only_b, "encrypt", KeyId=key["Arn"], Plaintext=b"x") == DENIED
