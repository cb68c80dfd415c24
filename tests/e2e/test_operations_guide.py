"""What docs/operations.md tells an operator to do, done: the systemd units verify, the sample
settings file is valid, and the backup procedure (stop, tar without master.key, master.key kept
apart) restores a data directory that serves the same organizations, objects and keys - and is
refused, not re-keyed, while master.key is missing."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from mailcrate.config import Settings
from mailcrate.config_file import load_config_file
from tests.cli.support import no_aws_env, run
from tests.support.mailcrate_server import MailcrateServer

ROOT = Path(__file__).resolve().parents[2]
GUIDE = (ROOT / "docs" / "operations.md").read_text(encoding="utf-8")


def test_systemd_units_verify(tmp_path: Path) -> None:
    """``systemd-analyze verify`` (syntax, directives, the executable); only the installation path
    of the sample units is this test's venv."""
    mailcrate = str(Path(sys.prefix) / "bin" / "mailcrate")
    for name in ("mailcrate.service", "mailcrate-worker.service"):
        unit = (ROOT / "deploy" / name).read_text()
        assert "ExecStart=/opt/mailcrate/.venv/bin/mailcrate " in unit and f"deploy/{name}" in GUIDE
        (tmp_path / name).write_text(unit.replace("/opt/mailcrate/.venv/bin/mailcrate", mailcrate))
        done = subprocess.run(
            ["systemd-analyze", "verify", str(tmp_path / name)], capture_output=True, text=True
        )
        assert done.returncode == 0 and not done.stderr.strip(), done.stderr


def test_sample_settings_file_is_valid() -> None:
    values = load_config_file(ROOT / "deploy" / "mailcrate.toml")
    settings = Settings(**values)
    assert settings.tls_cert == "/var/lib/mailcrate/tls/server.pem" and settings.port == 443
    assert str(settings.data_dir) == "/var/lib/mailcrate"


def test_backup_and_restore_as_documented(tmp_path: Path) -> None:
    assert "--exclude=mailcrate/master.key mailcrate" in GUIDE
    lib = tmp_path / "var-lib"
    server = MailcrateServer.launch(lib / "mailcrate")
    try:
        org = server.client("workmail").create_organization(Alias="backedup")["OrganizationId"]
        kms = server.client("kms")
        key = kms.create_key()["KeyMetadata"]["KeyId"]
        sealed = kms.encrypt(KeyId=key, Plaintext=b"kept secret")["CiphertextBlob"]
        s3 = server.client("s3")
        s3.create_bucket(Bucket="kept")
        s3.put_object(Bucket="kept", Key="a/b.txt", Body=b"object body " * 1000)
    finally:
        assert server.stop() == 0  # systemctl stop
    archive = tmp_path / "backup.tar.gz"
    subprocess.run(["tar", "-C", str(lib), "-czf", str(archive), "--exclude=mailcrate/master.key", "mailcrate"],
                   check=True)  # fmt: skip
    kept_key = tmp_path / "offline-master.key"
    shutil.copy2(lib / "mailcrate" / "master.key", kept_key)

    restored_lib = tmp_path / "restored"
    restored_lib.mkdir()
    subprocess.run(["tar", "-C", str(restored_lib), "-xzf", str(archive)], check=True)
    data = restored_lib / "mailcrate"
    assert not (data / "master.key").exists()
    # Without master.key: refused, and no new key is made that could open nothing.
    for command in ("init", "serve"):
        refused = run(command, "--data-dir", str(data), "--port", "0", env=no_aws_env()) if command == "serve" \
            else run(command, "--data-dir", str(data), env=no_aws_env())  # fmt: skip
        assert refused.returncode == 1 and "Traceback" not in refused.stderr, refused.stderr
        assert "master.key" in refused.stderr and not (data / "master.key").exists(), refused.stderr
    shutil.copy2(kept_key, data / "master.key")
    restored = MailcrateServer(data_dir=data).start()
    try:
        orgs = restored.client("workmail").list_organizations()["OrganizationSummaries"]
        assert [o["OrganizationId"] for o in orgs] == [org]
        assert restored.client("kms").decrypt(CiphertextBlob=sealed)["Plaintext"] == b"kept secret"
        body = restored.client("s3").get_object(Bucket="kept", Key="a/b.txt")["Body"].read()
        assert body == b"object body " * 1000
    finally:
        assert restored.stop() == 0
