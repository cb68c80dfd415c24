"""Run Ceph's s3-tests (vendored under ``vendor/``, MIT, see ``vendor/SOURCE``) against an S3
endpoint: a real ``mailcrate serve`` (two accounts, main and alt, made with ``mailcrate init``
and ``mailcrate account create``) or moto's server, for comparison.

The suite runs in its own pytest process with its own ``pytest.ini`` (its markers and fixtures
are not ours) and reports through a JUnit XML file. ``selection.txt`` lists the tests of the
features mailcrate claims, ``excluded.txt`` each test left out of that selection with its
reason; :func:`run` returns each selected test's outcome.

``python -m tests.s3tests.runner [--target mailcrate|moto|both] [-k EXPR] [--collect]``
"""

from __future__ import annotations

import argparse
import configparser
import os
import socket
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import boto3

HERE = Path(__file__).resolve().parent
VENDOR = HERE / "vendor"
SELECTION = HERE / "selection.txt"
EXCLUDED = HERE / "excluded.txt"
REGION = "us-east-1"
MAIN = ("111122223333", "AKIAS3TESTSMAIN00001", "s3tests/main/secret/key/0000000000000000")
ALT = ("444455556666", "AKIAS3TESTSALT000001", "s3tests/alt/secret/key/00000000000000000")
# moto's fixed canonical user id (moto/s3/models.py OWNER): what its listings name as Owner.
MOTO_OWNER = "75aa57f09aa0c8caeab4f8c24e99d10f8e7faeebf76c078efc7c6caea54ba06a"


@dataclass(frozen=True)
class Target:
    """An S3 endpoint and the two identities s3-tests needs on it."""

    name: str
    endpoint: str
    main: tuple[str, str, str]  # user id (as listings name the owner), access key, secret
    alt: tuple[str, str, str]
    kms_key_id: str | None


def selection() -> list[str]:
    """The selected test ids (``file::name``), in file order."""
    return [
        line.strip()
        for line in SELECTION.read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]


def exclusions() -> dict[str, str]:
    """Each excluded test id with its reason (``id  # reason`` lines)."""
    out = {}
    for line in EXCLUDED.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            test, _, reason = line.partition("#")
            out[test.strip()] = reason.strip()
    return out


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _mailcrate(*args: str) -> list[str]:
    return [sys.executable, "-m", "mailcrate.cli.main", *args]


@contextmanager
def mailcrate_target(workdir: Path) -> Iterator[Target]:
    """A fresh ``mailcrate serve``: main via ``init``, alt via ``account create``, a KMS key of
    main's for the SSE-KMS tests."""
    data = workdir / "mailcrate-data"
    for command, (user, key, secret) in ((["init"], MAIN), (["account", "create"], ALT)):
        subprocess.run(
            _mailcrate(
                *command, "--data-dir", str(data), "--account-id", user, "--access-key-id", key,
                "--secret-access-key", secret,
            ),
            check=True,
            capture_output=True,
        )  # fmt: skip
    port = _free_port()
    log = open(workdir / "mailcrate-serve.log", "w")  # noqa: SIM115 - closed below
    process = subprocess.Popen(
        _mailcrate("serve", "--data-dir", str(data), "--port", str(port), "--log-level", "warning"),
        stdout=subprocess.DEVNULL,
        stderr=log,
    )
    try:
        endpoint = f"http://127.0.0.1:{port}"
        _wait(endpoint, process)
        yield Target("mailcrate", endpoint, MAIN, ALT, _kms_key(endpoint, MAIN[1], MAIN[2]))
    finally:
        process.terminate()
        process.wait(30)
        log.close()


@contextmanager
def moto_target(workdir: Path) -> Iterator[Target]:
    """moto's server (``moto_server``), which takes any key; both identities are moto's one owner."""
    port = _free_port()
    log = open(workdir / "moto.log", "w")  # noqa: SIM115 - closed below
    process = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-p", str(port), "-H", "127.0.0.1"], stdout=log, stderr=log
    )
    try:
        endpoint = f"http://127.0.0.1:{port}"
        _wait(endpoint, process)
        kms_key = _kms_key(endpoint, "moto", "moto")
        yield Target(
            "moto",
            endpoint,
            (MOTO_OWNER, "AKIAMOTOMAIN00000001", "moto-main"),
            (MOTO_OWNER, "AKIAMOTOALT000000001", "moto-alt"),
            kms_key,
        )
    finally:
        process.terminate()
        process.wait(30)
        log.close()


def _kms_key(endpoint: str, key: str, secret: str) -> str:
    """A new KMS key's ARN (S3 names an SSE-KMS object's key by its ARN, and the tests compare)."""
    kms = boto3.client(
        "kms", endpoint_url=endpoint, region_name=REGION, aws_access_key_id=key, aws_secret_access_key=secret
    )
    return str(kms.create_key(Description="s3-tests")["KeyMetadata"]["Arn"])


def _wait(endpoint: str, process: subprocess.Popen[bytes], timeout: float = 60.0) -> None:
    host, port = endpoint.rsplit("/", 1)[1].split(":")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server at {endpoint} exited ({process.returncode})")
        try:
            socket.create_connection((host, int(port)), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"the server at {endpoint} did not listen in time")


def write_config(target: Target, path: Path) -> None:
    """s3-tests' configuration: main and alt as given; the sections it reads but this selection
    does not use (tenant, IAM) name alt, so its clean-up of them touches nothing else."""
    host, port = target.endpoint.rsplit("/", 1)[1].split(":")
    cfg = configparser.ConfigParser()
    cfg["DEFAULT"] = {"host": host, "port": port, "is_secure": "False", "ssl_verify": "False"}
    cfg["fixtures"] = {"bucket prefix": "s3t-{random}-"}

    def identity(ident: tuple[str, str, str], name: str) -> dict[str, str]:
        user, key, secret = ident
        return {
            "display_name": name,
            "user_id": user,
            "email": f"{name}@example.com",
            "access_key": key,
            "secret_key": secret,
        }

    main = identity(target.main, "main")
    if target.kms_key_id:
        main["kms_keyid"] = target.kms_key_id
        main["kms_keyid2"] = target.kms_key_id
    cfg["s3 main"] = main
    cfg["s3 alt"] = identity(target.alt, "alt")
    cfg["s3 tenant"] = {**identity(target.alt, "alt"), "tenant": "alt"}
    cfg["iam"] = identity(target.alt, "alt")
    for section in ("iam root", "iam alt root"):
        cfg[section] = {k: v for k, v in identity(target.alt, "alt").items() if k != "display_name"}
    with path.open("w") as out:
        cfg.write(out)


def run(target: Target, tests: list[str], workdir: Path, *, collect: bool = False) -> dict[str, str]:
    """Run ``tests`` (ids relative to ``vendor/``) against ``target``; each id's outcome:
    ``passed``, ``failed``, ``error`` or ``skipped``. With ``collect`` only list them."""
    conf = workdir / f"{target.name}.conf"
    write_config(target, conf)
    report = workdir / f"{target.name}.xml"
    env = {
        **os.environ,
        "S3TEST_CONF": str(conf),
        "AWS_DEFAULT_REGION": REGION,
        "AWS_CONFIG_FILE": "/dev/null",
        "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
    }
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL"):
        env.pop(name, None)
    args = [sys.executable, "-m", "pytest", "-c", str(VENDOR / "pytest.ini"), "--rootdir", str(VENDOR)]
    args += ["-p", "no:cacheprovider", "-q", "-o", "junit_family=xunit1", f"--junitxml={report}"]
    if collect:
        args.append("--collect-only")
    ids_file = workdir / "ids.txt"
    ids_file.write_text("\n".join(tests) + "\n")
    proc = subprocess.run([*args, *tests], cwd=VENDOR, env=env, capture_output=True, text=True, timeout=1800)
    if collect:
        return {line: "collected" for line in proc.stdout.splitlines() if "::" in line}
    return _outcomes(report)


def _outcomes(report: Path) -> dict[str, str]:
    out: dict[str, str] = {}
    for case in ET.parse(report).getroot().iter("testcase"):
        file = case.get("file") or (case.get("classname", "").replace(".", "/") + ".py")
        test = f"{file}::{case.get('name')}"
        outcome = "passed"
        for child in case:
            if child.tag in ("failure", "error", "skipped"):
                outcome = {"failure": "failed"}.get(child.tag, child.tag)
                if outcome == "failed" or outcome == "error":
                    message = (child.get("message") or "").splitlines()
                    out[test + "#message"] = message[0][:300] if message else ""
        out[test] = outcome
    return out


def _seconds(report: Path) -> float:
    return sum(float(case.get("time") or 0) for case in ET.parse(report).getroot().iter("testcase"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--target", choices=("mailcrate", "moto", "both"), default="both")
    parser.add_argument("--tests", nargs="*", help="test ids (default: selection.txt)")
    parser.add_argument("--collect", action="store_true")
    parser.add_argument("--show-failures", action="store_true")
    opts = parser.parse_args()
    tests = opts.tests or selection()
    targets = {"mailcrate": mailcrate_target, "moto": moto_target}
    names = ["mailcrate", "moto"] if opts.target == "both" else [opts.target]
    counts = {}
    with tempfile.TemporaryDirectory(prefix="s3tests-") as tmp:
        for name in names:
            workdir = Path(tmp) / name
            workdir.mkdir()
            with targets[name](workdir) as target:
                outcomes = run(target, tests, workdir, collect=opts.collect)
            if opts.collect:
                print("\n".join(outcomes))
                continue
            results = {k: v for k, v in outcomes.items() if "#" not in k}
            passed = sum(1 for v in results.values() if v == "passed")
            counts[name] = passed
            print(
                f"{name}: {passed} of {len(tests)} selected s3-tests passed ({_seconds(workdir / f'{name}.xml'):.0f} s)"
            )
            if opts.show_failures:
                for test, outcome in results.items():
                    if outcome != "passed":
                        print(f"  {outcome:7} {test}  {outcomes.get(test + '#message', '')}")
    if len(counts) == 2:
        print(
            f"s3-tests selection ({len(tests)} tests): mailcrate {counts['mailcrate']}, moto {counts['moto']}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
