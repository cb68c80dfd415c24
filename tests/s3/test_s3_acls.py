"""ACLs are refused as AWS refuses them on a bucket with ACLs disabled (Object Ownership
``BucketOwnerEnforced``, every new bucket's default since April 2023), instead of being accepted and
ignored: "All S3 PUT requests must either specify the bucket-owner-full-control canned ACL or not
specify an ACL" (400 AccessControlListNotSupported), and a CreateBucket ACL granting anyone but
the owner is 400 InvalidBucketAclWithObjectOwnership
(https://docs.aws.amazon.com/AmazonS3/latest/userguide/object-ownership-error-responses.html).
"""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.s3.support import code_of, status_of


def test_object_acls_other_than_owner_full_control_are_refused(s3: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="src", Body=b"s")
    refused = [
        lambda: s3.put_object(Bucket=bucket, Key="k", Body=b"x", ACL="public-read"),
        lambda: s3.put_object(Bucket=bucket, Key="k", Body=b"x", GrantRead='uri="http://acs.amazonaws.com/groups/global/AllUsers"'),
        lambda: s3.copy_object(Bucket=bucket, Key="k", CopySource={"Bucket": bucket, "Key": "src"}, ACL="public-read"),
        lambda: s3.create_multipart_upload(Bucket=bucket, Key="k", ACL="authenticated-read"),
    ]  # fmt: skip
    for call in refused:
        with pytest.raises(ClientError) as exc:
            call()
        assert (status_of(exc), code_of(exc)) == (400, "AccessControlListNotSupported")
    assert [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]] == ["src"]
    assert s3.list_multipart_uploads(Bucket=bucket).get("Uploads") is None
    # the one ACL a bucket with ACLs disabled takes
    s3.put_object(Bucket=bucket, Key="k", Body=b"x", ACL="bucket-owner-full-control")
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"x"


def test_bucket_acls_and_ownership(s3: Any, bucket: str) -> None:
    for kwargs, expected in (
        ({"ACL": "public-read"}, (400, "InvalidBucketAclWithObjectOwnership")),
        ({"GrantRead": 'uri="http://acs.amazonaws.com/groups/global/AllUsers"'}, (400, "InvalidBucketAclWithObjectOwnership")),
        ({"ObjectOwnership": "ObjectWriter"}, (501, "NotImplemented")),
    ):  # fmt: skip
        with pytest.raises(ClientError) as exc:
            s3.create_bucket(Bucket=f"{bucket}-x", **kwargs)
        assert (status_of(exc), code_of(exc)) == expected
        with pytest.raises(ClientError):  # nothing was made
            s3.head_bucket(Bucket=f"{bucket}-x")
    s3.create_bucket(Bucket=f"{bucket}-p", ACL="private", ObjectOwnership="BucketOwnerEnforced")
    s3.head_bucket(Bucket=f"{bucket}-p")
