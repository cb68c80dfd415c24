"""Pure parts of the admin tool: naming the entry a truncated zip ends in, and the policy checks."""

from __future__ import annotations

import copy
import io
import os
from pathlib import Path

import pytest

from mailcrate.admin.policies import (
    check_permission_policy,
    check_trust_policy,
    permission_policy,
    trust_policy,
)
from mailcrate.admin.salvage import scan_local_entries
from mailcrate.export.zipstream import ZipStreamWriter

ENTRIES = [
    ("mail/Inbox/000001.eml", b"Subject: hi\r\n\r\n" + b"hello " * 5000, None),  # deflated + descriptor
    ("mail/Inbox/000002.eml", os.urandom(300_000), None),  # stored, larger than the probe: descriptor
    ("mail/Inbox/000003.eml", os.urandom(10_000), None),  # stored, sizes in the local header
    ("mail/Archive/000001.eml", os.urandom(200_000), False),  # stored on request
    ("manifest.jsonl", b'{"format":"mailcrate-export/1"}\n', None),
]


@pytest.fixture(scope="module", params=["zip64-local-headers", "size-hints"])
def archive(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, dict[str, tuple[int, int]]]:
    """A zip from the export writer, and each entry's (start, end) byte range; without size
    hints large entries get zip64 local headers (8-byte descriptor sizes), with them not."""
    hints = request.param == "size-hints"
    sink = io.BytesIO()
    spans: dict[str, tuple[int, int]] = {}
    with ZipStreamWriter(sink.write) as zw:
        for name, data, compress in ENTRIES:
            start = zw.bytes_written
            chunks = [data[i : i + 65536] for i in range(0, len(data), 65536)]
            zw.add(name, chunks, date_time=None, compress=compress, size_hint=len(data) if hints else None)
            spans[name] = (start, zw.bytes_written)
    path = tmp_path_factory.mktemp("zip") / "export.zip"
    path.write_bytes(sink.getvalue())
    return path, spans


def test_whole_archive_scans_clean(archive: tuple[Path, dict]) -> None:
    path, _ = archive
    result = scan_local_entries(path)
    assert result.complete == [name for name, _, _ in ENTRIES] and result.bad_entry is None


@pytest.mark.parametrize("name", [name for name, _, _ in ENTRIES])
@pytest.mark.parametrize("where", [0.1, 0.5, 0.99])
def test_truncation_names_the_entry(
    archive: tuple[Path, dict], tmp_path: Path, name: str, where: float
) -> None:
    path, spans = archive
    start, end = spans[name]
    cut = start + 1 + int((end - start - 2) * where)
    truncated = tmp_path / "cut.zip"
    truncated.write_bytes(path.read_bytes()[:cut])
    result = scan_local_entries(truncated)
    names = [n for n, _, _ in ENTRIES]
    before = names[: names.index(name)]
    assert result.complete == before
    if result.bad_entry is None:  # cut inside the local header, before the whole name
        assert cut - start < 30 + len(name.encode()) + 40
        assert (f"after {before[-1]}" if before else "the first entry") in (result.problem or ""), result
    else:
        assert result.bad_entry == name, result


def test_truncation_at_an_entry_boundary(archive: tuple[Path, dict], tmp_path: Path) -> None:
    path, spans = archive
    truncated = tmp_path / "cut.zip"
    truncated.write_bytes(path.read_bytes()[: spans["manifest.jsonl"][0]])
    result = scan_local_entries(truncated)
    assert result.bad_entry is None and "manifest.jsonl" not in result.complete and len(result.complete) == 4


def test_flipped_byte_in_stored_entry(archive: tuple[Path, dict], tmp_path: Path) -> None:
    path, spans = archive
    data = bytearray(path.read_bytes())
    start, end = spans["mail/Inbox/000003.eml"]
    data[(start + end) // 2] ^= 0xFF
    (tmp_path / "bad.zip").write_bytes(data[: spans["manifest.jsonl"][0]])
    result = scan_local_entries(tmp_path / "bad.zip")
    assert result.bad_entry == "mail/Inbox/000003.eml" and "CRC-32" in (result.problem or "")


# ------------------------------------------------------------------------------------ policies

ACCOUNT, BUCKET, PREFIX, REGION = "111122223333", "exports", "S3-PREFIX", "us-east-1"
KEY = f"arn:aws:kms:{REGION}:{ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab"


def test_trust_policy_checks() -> None:
    assert check_trust_policy(trust_policy(ACCOUNT), ACCOUNT) == []
    newer = trust_policy(ACCOUNT)
    newer["Statement"][0]["Condition"]["StringEquals"]["aws:SourceAccount"] = ACCOUNT
    newer["Statement"][0]["Principal"]["Service"] = ["export.workmail.amazonaws.com"]
    assert check_trust_policy(newer, ACCOUNT) == []
    other = trust_policy("999988887777")
    assert "must be the account id" in check_trust_policy(other, ACCOUNT)[0]
    no_condition = trust_policy(ACCOUNT)
    del no_condition["Statement"][0]["Condition"]
    assert "without sts:ExternalId" in check_trust_policy(no_condition, ACCOUNT)[0]
    wrong_service = trust_policy(ACCOUNT)
    wrong_service["Statement"][0]["Principal"] = {"Service": "ec2.amazonaws.com"}
    assert "no statement allows" in check_trust_policy(wrong_service, ACCOUNT)[0]


def test_permission_policy_checks() -> None:
    exact = permission_policy(BUCKET, PREFIX, KEY, REGION)
    assert check_permission_policy(exact, BUCKET, PREFIX, KEY, REGION) == []
    reordered = copy.deepcopy(exact)
    reordered["Statement"].reverse()
    reordered["Statement"][1]["Action"].reverse()
    assert check_permission_policy(reordered, BUCKET, PREFIX, KEY, REGION) == []
    missing = copy.deepcopy(exact)
    missing["Statement"][0]["Action"].remove("s3:AbortMultipartUpload")
    assert check_permission_policy(missing, BUCKET, PREFIX, KEY, REGION) == [
        "s3:AbortMultipartUpload is not allowed on arn:aws:s3:::exports and arn:aws:s3:::exports/*"
    ]
    other_prefix = permission_policy(BUCKET, "elsewhere", KEY, REGION)
    problems = check_permission_policy(other_prefix, BUCKET, PREFIX, KEY, REGION)
    assert len(problems) == 2 and all("conditions" in p for p in problems)
    broad = copy.deepcopy(exact)
    broad["Statement"].append({"Effect": "Allow", "Action": "s3:*", "Resource": "*"})
    assert any(
        "grants more than the procedure" in p
        for p in check_permission_policy(broad, BUCKET, PREFIX, KEY, REGION)
    )
    other_key = permission_policy(BUCKET, PREFIX, KEY.replace("1234abcd", "99999999"), REGION)
    assert any(
        "not allowed on the key" in p for p in check_permission_policy(other_key, BUCKET, PREFIX, KEY, REGION)
    )
