"""Conditional deletes: If-Match on DeleteObject and an object's ETag in DeleteObjects are kept.

They were ignored, so a client guarding a delete with the ETag it last read deleted whatever was
there. AWS's rules (https://docs.aws.amazon.com/AmazonS3/latest/userguide/conditional-deletes.html):
a matching ETag deletes (204), another ETag is 412 PreconditionFailed and deletes nothing, ``*``
deletes an object that exists, a key that is not there is 404; DeleteObjects reports a failed
precondition per object. The directory-bucket-only conditions (last-modified time, size) are
refused rather than dropped.
"""

from __future__ import annotations

import hashlib
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.s3.support import code_of, status_of


def test_if_match_on_delete_object(s3: Any, bucket: str) -> None:
    etag = s3.put_object(Bucket=bucket, Key="k", Body=b"one")["ETag"]
    with pytest.raises(ClientError) as exc:
        s3.delete_object(Bucket=bucket, Key="k", IfMatch='"' + hashlib.md5(b"two").hexdigest() + '"')
    assert (status_of(exc), code_of(exc)) == (412, "PreconditionFailed")
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"one"  # still there
    assert s3.delete_object(Bucket=bucket, Key="k", IfMatch=etag)["ResponseMetadata"]["HTTPStatusCode"] == 204
    with pytest.raises(ClientError) as exc:  # gone: the condition cannot hold
        s3.delete_object(Bucket=bucket, Key="k", IfMatch="*")
    assert (status_of(exc), code_of(exc)) == (404, "NoSuchKey")
    s3.put_object(Bucket=bucket, Key="k", Body=b"again")
    s3.delete_object(Bucket=bucket, Key="k", IfMatch="*")
    assert "Contents" not in s3.list_objects_v2(Bucket=bucket)
    s3.delete_object(Bucket=bucket, Key="k")  # unconditional: 204 on a missing key, as before


def test_etags_in_delete_objects(s3: Any, bucket: str) -> None:
    etags = {key: s3.put_object(Bucket=bucket, Key=key, Body=key.encode())["ETag"] for key in ("a", "b", "c")}
    answer = s3.delete_objects(
        Bucket=bucket,
        Delete={
            "Objects": [
                {"Key": "a", "ETag": etags["a"]},
                {"Key": "b", "ETag": etags["a"]},  # not b's
                {"Key": "c"},
            ]
        },
    )
    assert sorted(d["Key"] for d in answer["Deleted"]) == ["a", "c"]
    assert [(e["Key"], e["Code"]) for e in answer["Errors"]] == [("b", "PreconditionFailed")]
    assert [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]] == ["b"]


def test_directory_bucket_conditions_are_refused_not_dropped(s3: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="k", Body=b"x")
    with pytest.raises(ClientError) as exc:
        s3.delete_object(Bucket=bucket, Key="k", IfMatchSize=2)
    assert (status_of(exc), code_of(exc)) == (501, "NotImplemented")
    answer = s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": "k", "Size": 2}]})
    assert [e["Code"] for e in answer["Errors"]] == ["NotImplemented"]
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"x"
