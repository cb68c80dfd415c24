"""Embedded IAM: roles, users, inline policies and access keys (the ``query`` protocol)."""
