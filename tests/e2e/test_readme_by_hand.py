"""The README's "Try it by hand" blocks, extracted from README.md and run as written by bash in a
fresh directory: the venv activated by the block itself (the test's PATH does not have it), awscli
installed by it, both policy files written by its heredocs, the key created before the policy
that names it, HTTPS with the CA from ``mailcrate init --tls``. Only ``MAILCRATE_PORT``, which the
block reads, points it at a free port. Then the second block - ``mailcrate export setup`` finds
everything the by-hand steps made fine, and the README's ``export start`` completes."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
from pathlib import Path

from tests.cli.support import no_aws_env
from tests.servers.net import port_open

ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def readme_blocks() -> list[str]:
    """The ```sh blocks of the README's "Try it by hand" section, in order."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text[text.index("## Try it by hand") :]
    section = section[: section.index("\n## ", 1)]
    return re.findall(r"^```sh\n(.*?)^```$", section, re.S | re.M)


def test_readme_by_hand_blocks_run_as_written(tmp_path: Path) -> None:
    by_hand, with_mailcrate = readme_blocks()
    assert "cat > trust.json <<EOF" in by_hand and "cat > policy.json <<EOF" in by_hand
    assert by_hand.index("kms create-key") < by_hand.index("policy.json")
    (tmp_path / ".venv").symlink_to(Path(sys.prefix))  # the venv the README's first command makes
    (tmp_path / "by-hand.sh").write_text(by_hand)
    (tmp_path / "with-mailcrate.sh").write_text(with_mailcrate)
    port = _free_port()
    venv_bin = str(Path(sys.prefix) / "bin")
    path = os.pathsep.join(p for p in os.environ.get("PATH", "").split(os.pathsep) if p != venv_bin)
    env = no_aws_env(
        HOME=str(tmp_path), PATH=path, MAILCRATE_PORT=str(port), PIP_DISABLE_PIP_VERSION_CHECK="1"
    )
    env.pop("AWS_DEFAULT_REGION")  # `mailcrate init` sets it, as for a new user
    # Each block sourced as pasted; stop at the first failing command, and stop the server after.
    script = (
        "set -eo pipefail; trap 'kill $(jobs -p) 2>/dev/null; wait' EXIT\n"
        ". ./by-hand.sh\necho '--- by hand done'\n. ./with-mailcrate.sh\n"
    )
    done = subprocess.run(["bash", "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=300)  # fmt: skip
    out = done.stdout + done.stderr
    assert done.returncode == 0, out[-4000:] + (tmp_path / "serve.log").read_text()[-2000:]
    by_hand_out, mailcrate_out = done.stdout.split("--- by hand done\n")
    job = re.search(r'"S3Path": "exports/([0-9a-f-]{36})\.zip"', by_hand_out)
    assert job and '"State": "COMPLETED"' in by_hand_out, by_hand_out
    assert re.search(rf"OK {job[1]}\.zip and {job[1]}\.json: 1 items, \d+ bytes", by_hand_out), by_hand_out
    for check in ("KMS key", "S3 bucket", "IAM role", "role permission policy"):
        assert re.search(rf"^{check}\s+already fine\s", mailcrate_out, re.M), mailcrate_out
    assert "WRONG" not in mailcrate_out and "created" not in mailcrate_out
    assert re.search(r"job [0-9a-f-]{36} COMPLETED", done.stderr), done.stderr  # export start --wait
    assert len(re.findall(r"\bCOMPLETED\s+100%", mailcrate_out)) == 2  # the list: both jobs
    assert "https://127.0.0.1" in mailcrate_out  # served over TLS, trusted through AWS_CA_BUNDLE
    assert "Traceback" not in out + (tmp_path / "serve.log").read_text()
    assert not port_open("127.0.0.1", port), "the block's server was left running"
