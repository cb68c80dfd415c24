#!/usr/bin/env bash
# Install everything the test suite needs on a fresh Debian/Ubuntu machine:
#   system packages: dovecot-imapd (IMAP source tests), isync (mbsync baseline), postgresql
#   (scale-out tests), zip/unzip, p7zip-full and libarchive-tools (archive checks), systemd (systemd-analyze verify of deploy/);
#   Python: a venv at .venv with mailcrate[test].
# Package post-install scripts must not start daemons on the default ports: tests start their own.
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

need=()
command -v dovecot >/dev/null 2>&1 || need+=(dovecot-imapd)
command -v mbsync >/dev/null 2>&1 || need+=(isync)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need+=(postgresql)
command -v zip >/dev/null 2>&1 || need+=(zip)
command -v unzip >/dev/null 2>&1 || need+=(unzip)
command -v 7z >/dev/null 2>&1 || need+=(p7zip-full)  # 7z t: the archive checks' other readers
command -v bsdtar >/dev/null 2>&1 || need+=(libarchive-tools)  # bsdtar: a streaming zip reader
command -v tmux >/dev/null 2>&1 || need+=(tmux)
command -v systemd-analyze >/dev/null 2>&1 || need+=(systemd)  # checks deploy/*.service
if [ ${#need[@]} -gt 0 ]; then
  made_policy=0
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
    $SUDO chmod +x /usr/sbin/policy-rc.d
    made_policy=1
  fi
  $SUDO apt-get update -q >/dev/null
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${need[@]}" >/dev/null
  if [ "$made_policy" = 1 ]; then $SUDO rm -f /usr/sbin/policy-rc.d; fi
fi
# Dovecot refuses to deliver mail as root; tests run it with this unprivileged owner.
id vmail >/dev/null 2>&1 || $SUDO useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin vmail

PY="${PYTHON:-python3}"
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --disable-pip-version-check --upgrade pip setuptools wheel
.venv/bin/python -m pip install -q --disable-pip-version-check -e '.[test]'
