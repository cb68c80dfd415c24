"""Derive ``selection.txt`` and ``excluded.txt`` from s3-tests' collected tests and their markers.

Every collected test of ``test_s3.py`` and ``test_headers.py`` is either selected (must pass
against mailcrate) or excluded with one reason: a feature mailcrate does not claim (README,
"The embedded S3"), an expectation only Ceph RGW has, an AWS behaviour that has changed since
the test was written, or a limit of the test's client rather than of the server. The rules are
below, most specific first; nothing is excluded for not being done yet.

    python -m tests.s3tests.select MARKS.tsv   # lines "test id<TAB>marker,marker"

(``MARKS.tsv`` comes from collecting the vendored suite with a plugin that prints each item's
markers; the runner's ``--collect`` lists the ids.)
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent

NOT_CLAIMED = "not claimed"
RGW_ONLY = "RGW-only expectation"
OUTDATED = "outdated AWS expectation"
CLIENT = "test client limitation"

PUBLIC_READ_SETUP = (
    "its setup creates the bucket and object with the public-read canned ACL, which AWS refuses on new "
    "buckets since April 2023 (Object Ownership BucketOwnerEnforced: ACLs disabled); ACLs are not claimed"
)
IF_MATCH_STAR = (
    "PutObject with If-Match: *; AWS documents If-Match with an ETag value only (PutObject, S3 API Reference)"
)
IF_NONE_MATCH_ETAG = (
    "PutObject with If-None-Match: <ETag>; AWS takes only '*' there (PutObject, S3 API Reference: "
    "'Expects the * (asterisk) character')"
)

# Individual tests, by name: (kind, why).
TESTS: dict[str, tuple[str, str]] = {
    "test_multipart_get_part": (
        RGW_ONLY,
        "partNumber past the last part: RGW 400 InvalidPart, AWS 416 InvalidPartNumber",
    ),
    "test_multipart_single_get_part": (
        RGW_ONLY,
        "partNumber past the last part: RGW 400 InvalidPart, AWS 416 InvalidPartNumber",
    ),
    "test_non_multipart_get_part": (
        RGW_ONLY,
        "partNumber past the last part: RGW 400 InvalidPart, AWS 416 InvalidPartNumber",
    ),
    "test_multipart_resend_first_finishes_last": (
        RGW_ONLY,
        "completes with part 1 listed twice; AWS requires ascending part numbers (InvalidPartOrder)",
    ),
    "test_object_read_unreadable": (
        RGW_ONLY,
        "expects RGW's 400 'Couldn't parse the specified URI.' for a valid UTF-8 key; AWS answers NoSuchKey",
    ),
    "test_sse_kms_no_key": (
        OUTDATED,
        "SSE-KMS without a key id uses the account's aws/s3 key on AWS; RGW refuses it",
    ),
    "test_bucket_policy_another_bucket": (
        RGW_ONLY,
        "a bucket policy naming another bucket's ARN: AWS refuses it (MalformedPolicy: Policy has invalid resource)",
    ),
    "test_bucketv2_policy_another_bucket": (
        RGW_ONLY,
        "a bucket policy naming another bucket's ARN: AWS refuses it (MalformedPolicy: Policy has invalid resource)",
    ),
    "test_get_nonpublicpolicy_principal_bucket_policy_status": (
        RGW_ONLY,
        "principal arn:aws:iam::s3tenant1:root names an RGW tenant, not an AWS account",
    ),
    "test_bucket_get_location": (RGW_ONLY, "skips itself unless an RGW zonegroup api_name is configured"),
    "test_bucket_policy_put_obj_s3_incorrect_algo_sse_s3": (
        OUTDATED,
        "x-amz-server-side-encryption: AES192 is refused by S3's model validation (400 InvalidArgument) before the policy",
    ),
    "test_atomic_dual_write_1mb": (
        CLIENT,
        "issues a second PutObject from inside the first one's body read(); urllib3-future (botocore's HTTP layer here) then fails the first with 'Trying to send data from a closed connection', against moto too",
    ),
    "test_atomic_dual_write_4mb": (
        CLIENT,
        "issues a second PutObject from inside the first one's body read(); urllib3-future (botocore's HTTP layer here) then fails the first with 'Trying to send data from a closed connection', against moto too",
    ),
    "test_atomic_dual_write_8mb": (
        CLIENT,
        "issues a second PutObject from inside the first one's body read(); urllib3-future (botocore's HTTP layer here) then fails the first with 'Trying to send data from a closed connection', against moto too",
    ),
    "test_object_create_bad_contentlength_empty": (
        CLIENT,
        "Content-Length '' is malformed HTTP: the server answers 400 and closes (tests/s3/test_s3_connections.py), the client reports the close",
    ),
    "test_bucket_create_bad_contentlength_empty": (
        CLIENT,
        "Content-Length '' is malformed HTTP: the server answers 400 and closes (tests/s3/test_s3_connections.py), the client reports the close",
    ),
    "test_object_create_bad_contentlength_negative": (
        CLIENT,
        "Content-Length -1 is malformed HTTP: the server answers 400 and closes (tests/s3/test_s3_connections.py), the client reports the close",
    ),
    "test_bucket_create_bad_contentlength_negative": (
        CLIENT,
        "Content-Length -1 is malformed HTTP: the server answers 400 and closes (tests/s3/test_s3_connections.py), the client reports the close",
    ),
    "test_object_create_bad_contentlength_none": (
        CLIENT,
        "botocore sets Content-Length after the test removes it (the test's own TODO)",
    ),
    "test_object_create_bad_authorization_empty": (
        CLIENT,
        "botocore signs after the test blanks Authorization, so a valid request is sent (the test's own TODO)",
    ),
    "test_object_create_bad_authorization_none": (
        CLIENT,
        "botocore signs after the test removes Authorization, so a valid request is sent (the test's own TODO)",
    ),
    "test_bucket_create_bad_authorization_empty": (
        CLIENT,
        "botocore signs after the test blanks Authorization, so a valid request is sent (the test's own TODO)",
    ),
    "test_bucket_create_bad_authorization_none": (
        CLIENT,
        "botocore signs after the test removes Authorization, so a valid request is sent (the test's own TODO)",
    ),
    "test_object_checksum_crc64nvme": (NOT_CLAIMED, "CRC64NVME checksums"),
    "test_multipart_use_cksum_helper_crc64nvme": (NOT_CLAIMED, "CRC64NVME checksums"),
    "test_multipart_use_cksum_helper_crc32": (
        NOT_CLAIMED,
        "FULL_OBJECT multipart checksums (COMPOSITE ones are) and GetObjectAttributes",
    ),
    "test_multipart_use_cksum_helper_crc32c": (
        NOT_CLAIMED,
        "FULL_OBJECT multipart checksums (COMPOSITE ones are) and GetObjectAttributes",
    ),
    "test_multipart_use_cksum_helper_sha1": (NOT_CLAIMED, "GetObjectAttributes"),
    "test_multipart_use_cksum_helper_sha256": (NOT_CLAIMED, "GetObjectAttributes"),
    "test_bucket_list_return_data": (NOT_CLAIMED, "ACLs (GetObjectAcl)"),
    "test_object_copy_not_owned_object_bucket": (NOT_CLAIMED, "ACLs (GetObjectAcl)"),
    "test_bucket_create_special_key_names": (NOT_CLAIMED, "ACLs (PutObjectAcl)"),
    "test_bucket_list_objects_anonymous": (
        NOT_CLAIMED,
        "ACLs (PutBucketAcl public-read); anonymous reads under a bucket policy are tested in tests/s3/test_s3_anonymous.py",
    ),
    "test_bucket_listv2_objects_anonymous": (
        NOT_CLAIMED,
        "ACLs (PutBucketAcl public-read); anonymous reads under a bucket policy are tested in tests/s3/test_s3_anonymous.py",
    ),
    "test_expected_bucket_owner": (NOT_CLAIMED, "ACLs (PutBucketAcl public-read-write)"),
    "test_list_multipart_upload_owner": (NOT_CLAIMED, "ACLs (PutBucketAcl to grant another account)"),
    "test_100_continue": (
        NOT_CLAIMED,
        "ACLs (PutBucketAcl public-read-write); Expect: 100-continue itself is tested in tests/s3/test_s3_connections.py",
    ),
    "test_object_delete_key_bucket_gone": (OUTDATED, PUBLIC_READ_SETUP),
    **dict.fromkeys(
        (
            "test_object_raw_get", "test_object_raw_get_bucket_gone", "test_object_raw_get_object_gone",
            "test_object_raw_authenticated", "test_object_raw_authenticated_bucket_gone",
            "test_object_raw_authenticated_object_gone", "test_object_raw_response_headers",
            "test_object_raw_get_x_amz_expires_not_expired", "test_object_raw_get_x_amz_expires_out_range_zero",
            "test_object_raw_get_x_amz_expires_out_max_range", "test_object_raw_get_x_amz_expires_out_positive_range",
        ),
        (OUTDATED, PUBLIC_READ_SETUP),
    ),
    "test_object_raw_get_x_amz_expires_not_expired_tenant": (RGW_ONLY, "an RGW tenant's client"),
    "test_block_public_policy_with_principal": (
        RGW_ONLY,
        "principal arn:aws:iam::s3tenant1:root names an RGW tenant, not an AWS account (AWS: MalformedPolicy)",
    ),
    "test_put_object_ifmatch_overwrite_existed_good": (RGW_ONLY, IF_MATCH_STAR),
    "test_atomic_conditional_write_1mb": (RGW_ONLY, IF_MATCH_STAR),
    "test_put_object_ifnonmatch_good": (RGW_ONLY, IF_NONE_MATCH_ETAG),
    "test_put_object_ifnonmatch_failed": (RGW_ONLY, IF_NONE_MATCH_ETAG),
    **dict.fromkeys(
        ("test_delete_object_if_match", "test_delete_objects_if_match"),
        (
            RGW_ONLY,
            "expects 204 for If-Match on a missing key, where AWS's conditional deletes answer 404 "
            "(conditional-deletes.html; tests/s3/test_s3_conditional_deletes.py checks the rest)",
        ),
    ),
    "test_atomic_dual_conditional_write_1mb": (
        RGW_ONLY,
        "expects 412 for an If-Match write overtaken mid-upload; AWS documents 409 ConditionalRequestConflict "
        "for a conflicting operation during the upload (PutObject, S3 API Reference)",
    ),
    "test_atomic_write_bucket_gone": (
        RGW_ONLY,
        "a bucket deleted while an upload into it runs: marked fails_on_aws and fails_on_rgw by s3-tests, "
        "and AWS documents no answer for it (mailcrate answers NoSuchBucket and keeps nothing)",
    ),
    "test_list_buckets_anonymous": (RGW_ONLY, "expects an empty ListBuckets for an anonymous caller; AWS answers 403 AccessDenied"),
}  # fmt: skip
# s3-tests marks these fails_on_aws, but what they check is what AWS documents today, and they are
# in claimed features, so they are selected (the marker predates the feature on AWS).
AWS_TODAY: dict[str, str] = {
    # Conditional writes (AWS since 2024): If-Match with the object's ETag overwrites, If-Match on
    # a missing key is 404 NoSuchKey, If-None-Match: * writes only a new key and is 412 on an
    # existing one (https://docs.aws.amazon.com/AmazonS3/latest/userguide/conditional-writes.html).
    r"test_put_object_ifmatch_good$": "conditional writes",
    r"test_put_object_ifmatch_nonexisted_failed$": "conditional writes",
    r"test_put_object_ifnonmatch_nonexisted_good$": "conditional writes",
    r"test_put_object_ifnonmatch_overwrite_existed_failed$": "conditional writes",
    # Copies to and from an object put without SSE headers: marked for AWS encrypting every new
    # object with SSE-S3 (since January 2023), but the test asserts nothing of the unencrypted
    # side, only that the copy succeeds, carries the other side's SSE headers and the same bytes
    # (https://docs.aws.amazon.com/AmazonS3/latest/userguide/default-encryption-faq.html).
    # Bucket names: AWS's naming rules as they are today (3-63 characters; letters, digits, dots
    # and hyphens; begins and ends with a letter or digit; no adjacent periods, no period next to
    # a hyphen, not an IP address: bucketnamingrules.html). s3-tests marks them for the legacy
    # us-east-1 rules and virtual-hosted addressing, most with its own note "Should now pass on AWS".
    r"test_bucket_create_naming_(good_long_6[012]|dns_(underscore|long|dash_at_end|dot_dot|dot_dash|dash_dot)|bad_ip|bad_starts_nonalpha)$": "bucket names",
    r"test_bucket_list_long_name$": "bucket names",
    r"test_copy(_part)?_enc\[(unencrypted-(unencrypted|sse-s3|sse-kms)|(sse-s3|sse-kms)-unencrypted)-": "copies",
}
# New buckets block public policies and are encrypted with SSE-S3 on AWS since 2023; tests
# written before that put public policies on fresh buckets or expect no default encryption.
NEWER_DEFAULTS = {
    "test_bucket_policy", "test_bucketv2_policy", "test_bucket_policy_multipart",
    "test_set_get_del_bucket_policy", "test_bucket_policy_upload_part_copy",
    "test_multipart_upload_on_a_bucket_with_policy", "test_head_object_404_with_policy_prefix",
    "test_bucket_policy_set_condition_operator_end_with_IfExists",
    "test_get_bucket_policy_status", "test_get_bucket_encryption_s3", "test_get_bucket_encryption_kms",
    "test_delete_bucket_encryption_s3", "test_delete_bucket_encryption_kms",
}  # fmt: skip
# Markers of features mailcrate does not claim, and of expectations AWS itself fails.
MARKERS: dict[str, tuple[str, str]] = {
    "fails_on_aws": (RGW_ONLY, "marked fails_on_aws by s3-tests"),
    "auth_aws2": (NOT_CLAIMED, "SigV2"),
    **{m: (NOT_CLAIMED, "versioning") for m in ("versioning", "delete_marker")},
    **{m: (NOT_CLAIMED, "lifecycle") for m in ("lifecycle", "lifecycle_expiration", "lifecycle_transition")},
    **{m: (NOT_CLAIMED, "object lock") for m in ("object_lock",)},
    **{m: (NOT_CLAIMED, "tagging") for m in ("tagging",)},
    **{m: (NOT_CLAIMED, "website hosting") for m in ("s3website", "s3website_routing_rules", "s3website_redirect_location")},
    **{m: (NOT_CLAIMED, "bucket logging") for m in ("bucket_logging", "bucket_logging_cleanup", "fails_without_logging_rollover", "target_by_bucket")},
    **{m: (NOT_CLAIMED, "storage classes and cloud tiering") for m in ("storage_class", "cloud_transition", "cloud_restore")},
    **{m: (NOT_CLAIMED, "RGW extensions (append, S3 Select, SNS)") for m in ("appendobject", "s3select", "sns")},
    **{m: (NOT_CLAIMED, "IAM/STS through S3 (tested in tests/iam, tests/sts)") for m in (
        "iam_account", "iam_cross_account", "iam_role", "iam_tenant", "iam_user", "user_policy", "role_policy",
        "session_policy", "group", "group_policy", "abac_test", "webidentity_test", "test_of_sts")},
    "object_ownership": (NOT_CLAIMED, "object ownership (ACLs)"),
}  # fmt: skip
# Words in a test's name that name an unclaimed feature (checked after the markers).
WORDS: dict[str, str] = {
    "acl": "ACLs", "grant": "ACLs", "access_bucket": "ACLs (canned ACL matrix)", "anon_put": "ACLs (public-read-write)",
    "owner_enforced": "object ownership (ACLs)", "ownership": "object ownership (ACLs)",
    "cors": "CORS", "sse_c": "SSE-C", "sse-c": "SSE-C", "conflict_c_": "SSE-C", "encrypted_transfer": "SSE-C",
    "post_object": "browser POST uploads", "torrent": "torrents", "website": "website hosting",
    "version": "versioning", "current": "versioning (current-version conditional writes)",
    "tag": "tagging", "lifecycle": "lifecycle", "lc_": "lifecycle", "lock": "object lock", "logging": "bucket logging",
    "restore": "storage classes and cloud tiering", "read_through": "storage classes and cloud tiering",
    "cloud": "storage classes and cloud tiering", "storage_class": "storage classes and cloud tiering",
    "object_attributes": "GetObjectAttributes", "usage": "RGW usage statistics", "bucket_head_extended": "RGW usage statistics",
    "ratelimit": "RGW rate limits", "append": "RGW append", "select": "S3 Select", "unordered": "RGW unordered listing",
    "tenant": "RGW tenants", "sts": "STS through S3", "iam": "IAM through S3", "role": "IAM roles through S3",
    "payer": "requester pays", "requestpayment": "requester pays", "notification": "event notifications",
    "replication": "replication", "inventory": "inventory", "analytics": "analytics", "metrics": "metrics",
    "intelligent": "storage classes and cloud tiering", "accelerate": "transfer acceleration",
}  # fmt: skip


def reason(test: str, markers: set[str]) -> str | None:
    """Why ``test`` (an id) is excluded, or None when it is selected."""
    name = test.split("::", 1)[1]
    base = name.split("[", 1)[0]
    if base in TESTS:
        kind, why = TESTS[base]
        return f"{kind}: {why}"
    if any(re.match(pattern, name) for pattern in AWS_TODAY):
        return None
    if base in NEWER_DEFAULTS:
        return f"{OUTDATED}: new buckets block public policies and have SSE-S3 default encryption (AWS, 2023)"
    for marker, (kind, why) in MARKERS.items():
        if marker in markers:
            return f"{kind}: {why}"
    for word, feature in WORDS.items():
        # at the start of one of the name's words: "tag" is tagging, not the "etag" of
        # test_object_write_check_etag; "lock" is not the "block" of a public access block
        if re.search(rf"(?:^|[_\[-]){re.escape(word)}", name):
            return f"{NOT_CLAIMED}: {feature}"
    return None


def main() -> int:
    selected, excluded = [], []
    for line in Path(sys.argv[1]).read_text().splitlines():
        test, _, marks = line.partition("\t")
        why = reason(test, set(filter(None, marks.split(","))))
        if why is None:
            selected.append(test)
        else:
            excluded.append(f"{test}  # {why}")
    header = "# Generated by python -m tests.s3tests.select; see tests/s3tests/README.md\n"
    (HERE / "selection.txt").write_text(header + "\n".join(selected) + "\n")
    (HERE / "excluded.txt").write_text(header + "\n".join(excluded) + "\n")
    print(f"{len(selected)} selected, {len(excluded)} excluded")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
