"""Embedded Amazon S3: buckets, objects, multipart uploads, SSE-S3/SSE-KMS at rest."""
