#!/usr/bin/env bash
# Makes sure the browser tests can run, and prints the Python that runs them:
#
#   tools/browser-check/ensure.sh TARGET_DIR      (tests use the workspace's target/)
#
# - Debian's chromium at /usr/bin/chromium (apt-get install, as root or with sudo -n);
# - a venv at TARGET_DIR/browser-check-venv with requirements.txt (Playwright, cryptography);
# - axe-core (pinned in package-lock.json) at TARGET_DIR/browser-check/node_modules.
#
# Idempotent and safe to run concurrently (flock). Prints the venv's python on stdout; exits
# non-zero with a message when something cannot be installed.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
if [ $# -ne 1 ] || [ -z "$1" ]; then
  echo "usage: $0 TARGET_DIR" >&2
  exit 2
fi
mkdir -p "$1"
target="$(cd "$1" && pwd)"
die() {
  echo "browser-check: $*" >&2
  exit 1
}

exec 9>"$target/browser-check.lock"
flock 9

if [ ! -x /usr/bin/chromium ]; then
  command -v apt-get >/dev/null 2>&1 || die "/usr/bin/chromium is missing and apt-get is not available"
  sudo=()
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null 2>&1 || die "/usr/bin/chromium is missing and not root (no sudo) to install it"
    sudo=(sudo -n)
  fi
  echo "browser-check: installing Debian's chromium with apt-get (first run only)" >&2
  log="$(mktemp)"
  export DEBIAN_FRONTEND=noninteractive
  if ! { "${sudo[@]}" apt-get update -q && "${sudo[@]}" apt-get install -y -q chromium; } >"$log" 2>&1; then
    tail -n 20 "$log" >&2
    rm -f "$log"
    die "apt-get install chromium failed"
  fi
  rm -f "$log"
fi

venv="$target/browser-check-venv"
stamp="$venv/.installed-requirements"
if ! cmp -s "$here/requirements.txt" "$stamp" 2>/dev/null; then
  echo "browser-check: installing Playwright and cryptography into $venv (first run only)" >&2
  rm -rf "$venv"
  python3 -m venv "$venv" || die "python3 -m venv failed"
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$here/requirements.txt" \
    || die "pip install failed (is PyPI reachable?)"
  # Written last, so an interrupted install is redone rather than trusted.
  cp "$here/requirements.txt" "$stamp"
fi

node_dir="$target/browser-check"
if ! cmp -s "$here/package-lock.json" "$node_dir/package-lock.json" 2>/dev/null \
  || [ ! -f "$node_dir/node_modules/axe-core/axe.min.js" ]; then
  command -v npm >/dev/null 2>&1 || die "npm is not installed (apt-get install -y npm)"
  echo "browser-check: installing axe-core into $node_dir (first run only)" >&2
  mkdir -p "$node_dir"
  cp "$here/package.json" "$here/package-lock.json" "$node_dir/"
  (cd "$node_dir" && npm ci --no-audit --no-fund --loglevel=error >&2) \
    || die "npm ci failed in $node_dir (is the npm registry reachable?)"
fi
flock -u 9
echo "$venv/bin/python"
