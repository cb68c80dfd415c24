"""The issue's aws CLI commands, verbatim, against a real ``mailcrate serve``."""

from __future__ import annotations

from pathlib import Path

from tests.support.mailcrate_server import MailcrateServer


def test_issue_commands(server: MailcrateServer, tmp_path: Path) -> None:
    key = server.aws("kms", "create-key")["KeyMetadata"]
    assert key["KeySpec"] == "SYMMETRIC_DEFAULT"
    created = server.aws("s3api", "create-bucket", "--bucket", "my-exports")
    assert created["Location"] == "/my-exports"
    server.aws(
        "s3api",
        "put-public-access-block",
        "--bucket",
        "my-exports",
        "--public-access-block-configuration",
        "BlockPublicAcls=true,IgnorePublicAcls=true,BlockPublicPolicy=true,RestrictPublicBuckets=true",
    )
    pab = server.aws("s3api", "get-public-access-block", "--bucket", "my-exports")
    assert all(pab["PublicAccessBlockConfiguration"].values())

    payload = tmp_path / "upload.zip"
    payload.write_bytes(b"PK\x03\x04" + bytes(range(256)) * 4096)
    result = server.aws(
        "s3",
        "cp",
        str(payload),
        "s3://my-exports/some/prefix/export.zip",
        "--sse",
        "aws:kms",
        "--sse-kms-key-id",
        key["Arn"],
        check=False,
    )
    assert result.returncode == 0, result.stderr
    out = tmp_path / "down"
    out.mkdir()
    result = server.aws("s3", "cp", "s3://my-exports/some/prefix/export.zip", ".", check=False, cwd=out)
    assert result.returncode == 0, result.stderr
    assert (out / "export.zip").read_bytes() == payload.read_bytes()

    listing = server.aws("s3", "ls", "s3://my-exports", "--recursive", check=False)
    assert listing.returncode == 0, listing.stderr
    line = listing.stdout.strip()
    assert line.endswith(f"{payload.stat().st_size} some/prefix/export.zip")

    head = server.aws("s3api", "head-object", "--bucket", "my-exports", "--key", "some/prefix/export.zip")
    assert head["ServerSideEncryption"] == "aws:kms" and head["SSEKMSKeyId"] == key["Arn"]


def test_cli_errors_are_s3_codes(server: MailcrateServer) -> None:
    result = server.aws("s3api", "head-bucket", "--bucket", "no-such-bucket-here", check=False)
    assert result.returncode != 0 and "404" in result.stderr
    result = server.aws(
        "s3api", "get-object", "--bucket", "no-such-bucket-here", "--key", "k", "/dev/null", check=False
    )
    assert "NoSuchBucket" in result.stderr
