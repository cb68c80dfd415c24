"""Tests for mailcrate.export (archive format: zip writer, names, manifest, verifier)."""
