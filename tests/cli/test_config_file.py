"""``--config FILE`` / ``MAILCRATE_CONFIG``: the settings table in TOML, with precedence
flag > environment > file > default and the same validation messages as the flags."""

from __future__ import annotations

import http.client
import os
import re
import signal
import socket
import subprocess
from pathlib import Path

from click.testing import CliRunner

from mailcrate.cli.main import cli
from tests.cli.support import MAILCRATE, no_aws_env, run

_LISTEN = re.compile(r"mailcrate listening on http://127\.0\.0\.1:(\d+) \(data dir (.+)\)")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _serve_announces(*args: str, env: dict[str, str], cwd: Path) -> tuple[int, Path]:
    """Start ``mailcrate serve``, read the port and data directory it announces, stop it."""
    process = subprocess.Popen([*MAILCRATE, "serve", *args], cwd=cwd, env=env, text=True,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        match = _LISTEN.search(line)
        assert match, line + (process.stderr.read() if process.poll() is not None and process.stderr else "")
        port = int(match[1])
        # An answer means uvicorn serves (and has its SIGTERM handler): a clean stop then.
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        connection.request("GET", "/health")
        assert connection.getresponse().status == 200
        connection.close()
        return port, Path(match[2])
    finally:
        process.send_signal(signal.SIGTERM)
        process.communicate(timeout=30)
        assert process.returncode == 0


def test_precedence_flag_env_file_default(tmp_path: Path) -> None:
    etc, elsewhere = tmp_path / "etc", tmp_path / "cwd"
    etc.mkdir()
    elsewhere.mkdir()
    file_port, env_port, flag_port = _free_port(), _free_port(), _free_port()
    config = etc / "mailcrate.toml"
    config.write_text(
        f'# relative paths are relative to this file\ndata-dir = "data"\nport = {file_port}\n'
        'export-workers = 0\nlog-level = "warning"\n'
    )
    env = no_aws_env(HOME=str(tmp_path / "home"))
    assert run("init", "--config", str(config), env=env, cwd=elsewhere).returncode == 0
    assert (etc / "data" / "master.key").is_file()

    assert _serve_announces("--config", str(config), env=env, cwd=elsewhere) == (file_port, etc / "data")
    with_env = {**env, "MAILCRATE_PORT": str(env_port)}
    assert _serve_announces("--config", str(config), env=with_env, cwd=elsewhere)[0] == env_port
    flagged = _serve_announces("--config", str(config), "--port", str(flag_port), env=with_env, cwd=elsewhere)
    assert flagged[0] == flag_port
    # MAILCRATE_CONFIG names the file as --config does.
    by_env = {**env, "MAILCRATE_CONFIG": str(config)}
    assert _serve_announces(env=by_env, cwd=elsewhere) == (file_port, etc / "data")
    # A key the file leaves out keeps its default: data-dir under HOME.
    config.write_text("export-workers = 0\n")
    made = run("init", "--config", str(config), env=env, cwd=elsewhere)
    assert made.returncode == 0, made.stderr
    assert (tmp_path / "home" / ".local/share/mailcrate/master.key").is_file()


def _serve(*args: str, home: Path) -> tuple[int, str]:
    """``mailcrate serve`` in-process (click's runner): these all stop at validation."""
    unset = {k: None for k in os.environ if k.startswith("MAILCRATE_")}
    result = CliRunner().invoke(cli, ["serve", *args], env={**unset, "HOME": str(home)})
    return result.exit_code, result.output


def test_file_values_are_validated_with_the_flags_messages(tmp_path: Path) -> None:
    config = tmp_path / "mailcrate.toml"
    data = ("--data-dir", str(tmp_path / "data"))
    cases = {
        "port = 70000\n": "port must be 0-65535 (0: any free port), got 70000",
        "export-part-size-mib = 4\n": "export-part-size-mib must be 5-5120 (S3's part size limits)",
        'tls-cert = "server.pem"\n': "tls-cert and tls-key go together",
        'log-level = "loud"\n': "unknown log level 'loud'",
    }
    for text, message in cases.items():
        config.write_text(text)
        name, value = text.split(" = ")
        for args in (("--config", str(config)), (f"--{name}", value.strip().strip('"'))):
            code, output = _serve(*data, *args, home=tmp_path)
            assert code == 2 and message in output, (text, args, output)
    for text, message in {
        'port = "x"\n': f"{config}: port: 'x' is not a valid integer.",
        "prot = 1\n": f"{config}: unknown setting 'prot'",
        "export_workers = 1\n": "unknown setting 'export_workers' (did you mean export-workers?)",
        "port = [1]\n": f"{config}: port must be a single value",
        "[serve]\nport = 1\n": f"{config}: [serve]: the file has no sections",
        "port = \n": f"{config} is not valid TOML",
    }.items():
        config.write_text(text)
        code, output = _serve(*data, "--config", str(config), home=tmp_path)
        assert code == 2 and message in output.replace("\n", " "), (text, output)
    code, output = _serve(*data, "--config", str(tmp_path / "nope.toml"), home=tmp_path)
    assert code == 2 and "nope.toml: no such configuration file" in output
