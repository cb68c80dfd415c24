"""One API call as an audit event: which calls are recorded, who made them, on what, and the
request parameters with every secret removed.

Recorded: every call that can change state (whatever its outcome: a refused attempt is what an
auditor looks for), every S3 read of an object (GetObject/HeadObject: the export zips and logs
are objects), and every KMS use of a key. Not recorded: read-only calls (Describe/List/Get), and
requests that never authenticated (nobody to name, and recording them would let anyone fill the
table).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from botocore.model import Shape

from mailcrate.accounts import Principal
from mailcrate.audit.events import EventRows, Identity, Who, event_rows, new_event_id, who_of
from mailcrate.storage.db import utcnow

HIDDEN = "HIDDEN_DUE_TO_SECURITY_REASONS"  # what CloudTrail writes in place of a sensitive value

_READ_PREFIXES = ("Describe", "List", "Get", "Head", "Lookup")
#: Calls that read but are recorded anyway: object reads (the export zips and logs) and uses of a
#: KMS key (CloudTrail marks these read-only too).
_RECORDED_READS = {
    "s3": frozenset({"GetObject", "HeadObject"}),
    "kms": frozenset(
        {"Decrypt", "Encrypt", "GenerateDataKey", "GenerateDataKeyWithoutPlaintext", "ReEncrypt"}
    ),
}
#: STS "Get" calls that mint credentials: a change of state, not a read.
_MINTING = frozenset({"GetSessionToken", "GetFederationToken"})
#: Member names never recorded whatever the model says (defence in depth for models that do not
#: mark a secret ``sensitive``): passwords, key material, session tokens, plaintext.
_SECRET_NAMES = frozenset(
    {
        "Password",
        "NewPassword",
        "OldPassword",
        "SecretAccessKey",
        "SessionToken",
        "Plaintext",
        "PrivateKey",
        "SSECustomerKey",
        "CopySourceSSECustomerKey",
        "TokenCode",
    }
)
#: Parameter (or response) members naming a resource, and its CloudTrail resource type.
_RESOURCE_MEMBERS = {
    "OrganizationId": "AWS::WorkMail::Organization",
    "EntityId": "AWS::WorkMail::Entity",
    "UserId": "AWS::WorkMail::User",
    "JobId": "AWS::WorkMail::MailboxExportJob",
    "S3BucketName": "AWS::S3::Bucket",
    "Bucket": "AWS::S3::Bucket",
    "KmsKeyArn": "AWS::KMS::Key",
    "KeyId": "AWS::KMS::Key",
    "RoleArn": "AWS::IAM::Role",
    "RoleName": "AWS::IAM::Role",
    "UserName": "AWS::IAM::User",
    "PolicyArn": "AWS::IAM::ManagedPolicy",
}


def is_read_only(service: str, operation: str) -> bool:
    if service == "sts":
        return operation == "GetCallerIdentity"
    return operation.startswith(_READ_PREFIXES) or operation in _RECORDED_READS.get(service, ())


def is_recorded(service: str, operation: str) -> bool:
    """Whether a call of this operation goes into the audit trail."""
    if service == "cloudtrail":
        return False
    if operation in _MINTING:
        return True
    return not is_read_only(service, operation) or operation in _RECORDED_READS.get(service, ())


def identity_of(principal: Principal) -> Identity:
    """CloudTrail's userIdentity for a mailcrate principal (the key id, never its secret)."""
    if principal.kind == "root":
        return Identity("Root", principal.arn, "root", principal.access_key_id)
    if principal.is_anonymous:  # CloudTrail: type AWSAccount, accountId "anonymous"
        return Identity("AWSAccount", None, "anonymous", None)
    if principal.kind == "session":
        # arn:aws:sts::ACCOUNT:assumed-role/ROLE/SESSION: CloudTrail's Username is the session
        return Identity(
            "AssumedRole", principal.arn, principal.arn.rsplit("/", 1)[-1], principal.access_key_id
        )
    return Identity("IAMUser", principal.arn, principal.arn.rsplit("/", 1)[-1], principal.access_key_id)


#: userIdentity's columns of recent callers, by (kind, ARN, access key id): what they depend on.
#: Bounded: emptied when full.
_who: dict[tuple[str, str, str], Who] = {}


def _who_of(principal: Principal) -> Who:
    key = (principal.kind, principal.arn, principal.access_key_id)
    who = _who.get(key)
    if who is None:
        if len(_who) >= 4096:
            _who.clear()
        who = _who[key] = who_of(identity_of(principal))
    return who


def scrub(shape: Shape | None, value: Any, name: str = "") -> Any:
    """``value`` as the audit trail may keep it: sensitive members (the model's ``sensitive``
    trait, or a name in :data:`_SECRET_NAMES`) become :data:`HIDDEN`, blobs and streams are
    left out (object bodies, ciphertexts), structures, lists and maps are walked."""
    if name in _SECRET_NAMES:
        return HIDDEN
    if shape is not None:
        if shape.metadata.get("sensitive"):
            return HIDDEN
        if shape.type_name == "blob":
            return None
    kind = type(value)
    if kind is str or kind is int or kind is bool or kind is float or value is None:  # the most
        return value  # members; exact types first, the isinstance checks below cost more
    if isinstance(value, (bytes, bytearray, memoryview)):
        return None
    if isinstance(value, Mapping):
        members = getattr(shape, "members", None) if shape is not None else None
        out = {}
        for key, item in value.items():
            if members is not None:
                kept = scrub(members.get(key), item, key)
            else:  # a map: its values share one shape
                kept = scrub(getattr(shape, "value", None), item)
            if kept is not None:
                out[key] = kept
        return out
    if isinstance(value, (list, tuple)):
        member = getattr(shape, "member", None)
        return [scrub(member, item) for item in value]
    if isinstance(value, (str, int, float, bool)):
        return value
    if hasattr(value, "read"):  # a streaming body
        return None
    return str(value)


def resources_of(
    service: str, params: Mapping[str, Any], output: Mapping[str, Any] | None
) -> tuple[tuple[str, str], ...]:
    """The resources a call names (organization, entity, job, bucket and key, KMS key, role), as
    (type, name) pairs."""
    found: list[tuple[str, str]] = []
    for source in (params, output or {}):
        for member, value in source.items():  # a call's few members, not every resource member
            rtype = _RESOURCE_MEMBERS.get(member)
            if rtype is not None and isinstance(value, str) and value:
                found.append((rtype, value))
    if service == "s3" and isinstance(params.get("Bucket"), str) and isinstance(params.get("Key"), str):
        found.append(("AWS::S3::Object", f"arn:aws:s3:::{params['Bucket']}/{params['Key']}"))
    return tuple(found)


#: Output members worth keeping as responseElements: ids a call created (never a secret: an
#: access key's secret, a session's token or a data key's plaintext are not in this list).
_RESPONSE_IDS = ("JobId", "OrganizationId", "UserId", "KeyId", "UploadId", "VersionId", "ETag")


def call_rows(
    *,
    service: str,
    operation: str,
    input_shape: Shape | None,
    params: Mapping[str, Any] | None,
    output: Mapping[str, Any] | None,
    principal: Principal,
    account_id: str,
    region: str,
    request_id: str,
    source_ip: str | None,
    user_agent: str | None,
    error_code: str | None,
    error_message: str | None,
) -> EventRows:
    """The event of one API call in ``account_id``'s trail (the caller's, or for an anonymous
    caller's S3 call the bucket owner's), as the rows the trail's writer inserts."""
    params = params or {}
    response = {k: output[k] for k in _RESPONSE_IDS if output and isinstance(output.get(k), str)}
    return event_rows(
        new_event_id(),
        utcnow(),
        account_id,
        region,
        service,
        operation,
        "AwsApiCall",
        is_read_only(service, operation),
        request_id,
        _who_of(principal),
        source_ip,
        user_agent,
        error_code,
        error_message,
        scrub(input_shape, dict(params)) if params else None,
        response or None,
        resources_of(service, params, output),
    )
