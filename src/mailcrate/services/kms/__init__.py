"""Embedded AWS KMS (``TrentService``): keys, aliases and envelope encryption for S3."""
