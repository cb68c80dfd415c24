"""``mailcrate export download`` of a stored export that does not verify (a real ``mailcrate
serve``): every problem is listed, the command exits 1, and nothing is unpacked."""

from __future__ import annotations

import json
import uuid
import zipfile
from pathlib import Path

from mailcrate.admin.download import log_key_for
from tests.cli.support import run, server_env
from tests.jobs.support import fill_maildir, new_mailbox
from tests.support.mailcrate_server import MailcrateServer

PREFIX = "damaged-exports"


def _download(job_id: str, org: str, to: Path, env: dict[str, str], *more: str) -> tuple[int, dict]:
    result = run("export", "download", job_id, "--organization-id", org, "--to", str(to), "--output", "json",
                 *more, env=env)  # fmt: skip
    assert "Traceback" not in result.stderr, result.stderr
    return result.returncode, json.loads(result.stdout)


def test_damaged_download_lists_every_problem_and_unpacks_nothing(
    server: MailcrateServer, tmp_path: Path
) -> None:
    env = server_env(server)
    mb = new_mailbox(server, "carol")
    fill_maildir(mb.root, {"Inbox": 40, "Archive": 20}, size=3000)
    bucket = "damaged-" + uuid.uuid4().hex[:10]
    setup = run("export", "setup", "--bucket", bucket, "--prefix", PREFIX, "--output", "json", env=env)
    assert setup.returncode == 0, setup.stderr
    keys = json.loads(setup.stdout)
    started = run("export", "start", "--organization-id", mb.organization_id, "--entity-id", mb.user_id,
                  "--bucket", bucket, "--prefix", PREFIX, "--kms-key", keys["kmsKeyArn"],
                  "--role", keys["roleArn"], "--wait", "--output", "json", env=env)  # fmt: skip
    assert started.returncode == 0, started.stderr
    job = json.loads(started.stdout)
    job_id, key = job["JobId"], job["S3Path"]

    code, good = _download(job_id, mb.organization_id, tmp_path / "good", env)
    assert code == 0 and good["verified"] and good["problems"] == [] and good["items"] == 60
    assert good["unpacked"]["restored"] == 60
    whole = (tmp_path / "good" / f"{job_id}.zip").read_bytes()

    # The stored zip cut in the middle of an entry: the download names that entry, the missing
    # manifest and the log that no longer matches, and unpacks nothing (in either format).
    with zipfile.ZipFile(tmp_path / "good" / f"{job_id}.zip") as zf:
        cut = zf.infolist()[30]
    s3 = server.client("s3")
    s3.put_object(Bucket=bucket, Key=key, Body=whole[: cut.header_offset + 30 + len(cut.filename) + 100],
                  ServerSideEncryption="aws:kms", SSEKMSKeyId=keys["kmsKeyArn"])  # fmt: skip
    for fmt in ("maildir", "mbox"):
        to = tmp_path / f"cut-{fmt}"
        code, bad = _download(job_id, mb.organization_id, to, env, "--format", fmt)
        assert code == 1 and not bad["verified"] and "unpacked" not in bad, bad
        found = {(p["entry"], p["message"].split()[0].rstrip(":")) for p in bad["problems"]}
        assert (cut.filename, "truncated") in found and ("manifest.jsonl", "missing") in found, bad
        assert any("sha384Hash" in p["message"] for p in bad["problems"]), bad
        assert not (to / job_id).exists()
        # the same problems, in the same order, as ``export verify`` of the files it downloaded
        verified = run("export", "verify", bad["zip"], "--output", "json", env=env)
        assert verified.returncode == 1
        assert json.loads(verified.stdout)["problems"] == bad["problems"]

    # The zip intact but its log gone: the SHA-384 is unchecked, which fails the download too.
    s3.put_object(Bucket=bucket, Key=key, Body=whole, ServerSideEncryption="aws:kms",
                  SSEKMSKeyId=keys["kmsKeyArn"])  # fmt: skip
    s3.delete_object(Bucket=bucket, Key=log_key_for(key))
    to = tmp_path / "no-log"
    code, bad = _download(job_id, mb.organization_id, to, env)
    assert code == 1 and not bad["verified"] and bad["items"] == 60 and "unpacked" not in bad, bad
    assert [p["entry"] for p in bad["problems"]] == [None], bad
    assert "not found: the zip's SHA-384 is unchecked" in bad["problems"][0]["message"], bad
    assert bad["log"] is None and not (to / job_id).exists()
