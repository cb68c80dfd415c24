"""Tables of the embedded KMS and S3 services.

KMS key material is stored only sealed with the data directory's master key. S3 object bytes
live in encrypted files under ``data_dir.s3_root`` named by random ids; these tables say which
files make up which object, and hold each object's data key only in encrypted form.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, DateTime, Index, Integer, String, Table, Text

from mailcrate.storage.tables import metadata

kms_keys = Table(
    "kms_keys",
    metadata,
    Column("key_id", String(36), primary_key=True),
    Column("account_id", String(12), nullable=False),
    Column("region", String(32), nullable=False),
    Column("key_spec", String(32), nullable=False),
    Column("key_usage", String(32), nullable=False),
    Column("key_state", String(32), nullable=False),
    Column("description", Text, nullable=False, default=""),
    Column("material_sealed", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("deletion_date", DateTime(timezone=True), nullable=True),
    Column("policy", Text, nullable=True),
    Column("tags", Text, nullable=True),
    Index("ix_kms_keys_account_region", "account_id", "region", "created_at"),
)

kms_aliases = Table(
    "kms_aliases",
    metadata,
    Column("account_id", String(12), primary_key=True),
    Column("region", String(32), primary_key=True),
    Column("alias_name", String(256), primary_key=True),
    Column("key_id", String(36), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

s3_buckets = Table(
    "s3_buckets",
    metadata,
    Column("name", String(63), primary_key=True),
    Column("account_id", String(12), nullable=False),
    Column("region", String(32), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("policy", Text, nullable=True),
    # JSON of the four PublicAccessBlock flags; NULL when no configuration is set.
    Column("public_access_block", Text, nullable=True),
    # JSON of the default-encryption rule (SSEAlgorithm, KMSMasterKeyID, BucketKeyEnabled).
    Column("encryption", Text, nullable=True),
)

s3_objects = Table(
    "s3_objects",
    metadata,
    Column("bucket", String(63), primary_key=True),
    Column("key", String(1024), primary_key=True),
    Column("object_id", String(32), nullable=False, unique=True),
    Column("size", BigInteger, nullable=False),
    Column("etag", String(80), nullable=False),
    Column("last_modified", DateTime(timezone=True), nullable=False),
    # JSON: content headers, user metadata, checksum, SSE details, part sizes.
    Column("attributes", Text, nullable=False),
    # JSON list of [file_id, plaintext_size] segments, in order.
    Column("segments", Text, nullable=False),
    # The object's data key, encrypted by KMS (SSE-KMS) or by the S3-internal key (SSE-S3).
    Column("data_key_blob", Text, nullable=False),
    Index("ix_s3_objects_bucket_key", "bucket", "key"),
)

s3_uploads = Table(
    "s3_uploads",
    metadata,
    Column("upload_id", String(64), primary_key=True),
    Column("bucket", String(63), nullable=False),
    Column("key", String(1024), nullable=False),
    Column("account_id", String(12), nullable=False),
    Column("initiator_arn", String(2048), nullable=False),
    Column("initiated", DateTime(timezone=True), nullable=False),
    Column("attributes", Text, nullable=False),
    Column("data_key_blob", Text, nullable=False),
    Index("ix_s3_uploads_bucket", "bucket", "key", "initiated"),
)

s3_parts = Table(
    "s3_parts",
    metadata,
    Column("upload_id", String(64), primary_key=True),
    Column("part_number", Integer, primary_key=True),
    Column("file_id", String(32), nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("etag", String(80), nullable=False),
    Column("checksum", Text, nullable=True),
    Column("last_modified", DateTime(timezone=True), nullable=False),
)

# Files no object or part references: written but not yet committed (remove_after lies in the
# future, in case the writer crashes), or released by a delete, overwrite or abort (remove now).
s3_garbage = Table(
    "s3_garbage",
    metadata,
    Column("file_id", String(32), primary_key=True),
    Column("remove_after", DateTime(timezone=True), nullable=False),
)
