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

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent

NOT_CLAIMED = "not claimed"
RGW_ONLY = "RGW-only expectation"
OUTDATED = "outdated AWS expectation"
CLIENT = "test client limitation"

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
        "FULL_OBJECT multipart checksums (COMPOSITE ones are)",
    ),
    "test_multipart_use_cksum_helper_crc32c": (
        NOT_CLAIMED,
        "FULL_OBJECT multipart checksums (COMPOSITE ones are)",
    ),
    "test_multipart_use_cksum_helper_sha1": (NOT_CLAIMED, "GetObjectAttributes"),
    "test_multipart_use_cksum_helper_sha256": (NOT_CLAIMED, "GetObjectAttributes"),
    "test_bucket_list_return_data": (NOT_CLAIMED, "ACLs (GetObjectAcl)"),
    "test_object_copy_not_owned_object_bucket": (NOT_CLAIMED, "ACLs (GetObjectAcl)"),
    "test_bucket_create_special_key_names": (NOT_CLAIMED, "ACLs (PutObjectAcl)"),
    "test_bucket_list_objects_anonymous": (
        NOT_CLAIMED,
        "ACLs (PutBucketAcl public-read) and anonymous requests",
    ),
    "test_bucket_listv2_objects_anonymous": (
        NOT_CLAIMED,
        "ACLs (PutBucketAcl public-read) and anonymous requests",
    ),
    "test_expected_bucket_owner": (NOT_CLAIMED, "ACLs (PutBucketAcl public-read-write)"),
    "test_list_multipart_upload_owner": (NOT_CLAIMED, "ACLs (PutBucketAcl to grant another account)"),
    "test_100_continue": (
        NOT_CLAIMED,
        "ACLs (PutBucketAcl public-read-write); Expect: 100-continue itself is tested in tests/s3/test_s3_connections.py",
    ),
    "test_object_delete_key_bucket_gone": (NOT_CLAIMED, "ACLs (public-read setup) and anonymous requests"),
}
# New buckets block public policies and are encrypted with SSE-S3 on AWS since 2023; tests
# written before that put public policies on fresh buckets or expect no default encryption.
NEWER_DEFAULTS = {
    "test_bucket_policy", "test_bucketv2_policy", "test_bucket_policy_multipart",
    "test_set_get_del_bucket_policy", "test_bucket_policy_upload_part_copy",
    "test_multipart_upload_on_a_bucket_with_policy", "test_head_object_404_with_policy_prefix",
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
    "raw": "ACLs with anonymous requests", "owner_enforced": "object ownership (ACLs)", "ownership": "object ownership (ACLs)",
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
    if base in NEWER_DEFAULTS:
        return f"{OUTDATED}: new buckets block public policies and have SSE-S3 default encryption (AWS, 2023)"
    for marker, (kind, why) in MARKERS.items():
        if marker in markers:
            return f"{kind}: {why}"
    for word, feature in WORDS.items():
        if word in name:
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
