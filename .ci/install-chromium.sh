#!/usr/bin/env bash
# Install Debian's chromium (used headless by test/cli/report.test.ts) only when it is missing.
# CI calls this before `npm test`; running it on a machine that has chromium does nothing.
set -euo pipefail

BIN="${BPFSIM_CHROMIUM:-/usr/bin/chromium}"
if [ -x "$BIN" ]; then
  echo "install-chromium: $BIN present; nothing to do"
  exit 0
fi

SUDO=""
if [ "$(id -u)" != "0" ]; then
  if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    SUDO="sudo -n"
  else
    echo "install-chromium: $BIN is missing and this user cannot run apt-get (not root, no passwordless sudo)" >&2
    exit 1
  fi
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "install-chromium: $BIN is missing and apt-get is not available (not a Debian-like system)" >&2
  exit 1
fi

echo "install-chromium: installing Debian's chromium package"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
$SUDO apt-get install -y -q chromium
if [ ! -x "$BIN" ]; then
  echo "install-chromium: apt-get finished but $BIN is still missing" >&2
  exit 1
fi
echo "install-chromium: installed $BIN"
