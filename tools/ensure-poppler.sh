#!/usr/bin/env bash
# Makes sure poppler-utils (pdftotext, pdftoppm) is installed: the PDF export tests read the
# rendered export back with them.
#
#   tools/ensure-poppler.sh
#
# A no-op when both tools are on PATH. Otherwise installs Debian's poppler-utils with apt-get,
# non-interactively (needs root, as on the project's machines and in CI). Exits non-zero when
# the tools are still missing afterwards.
set -euo pipefail

have_tools() { command -v pdftotext >/dev/null 2>&1 && command -v pdftoppm >/dev/null 2>&1; }

if have_tools; then
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "ensure-poppler: pdftotext/pdftoppm missing and apt-get is not available" >&2
  exit 1
fi
sudo=()
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then sudo=(sudo -n); else
    echo "ensure-poppler: pdftotext/pdftoppm missing and not root (no sudo) to install them" >&2
    exit 1
  fi
fi
# Several test processes may call this at once: one installs while the others wait.
lock="${TMPDIR:-/tmp}/custos-ensure-poppler.lock"
exec 9>"$lock"
flock 9
if have_tools; then
  exit 0
fi
echo "ensure-poppler: installing poppler-utils with apt-get" >&2
export DEBIAN_FRONTEND=noninteractive
# apt's progress goes to a log, shown only when the install fails.
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
if ! { "${sudo[@]}" apt-get update -q && "${sudo[@]}" apt-get install -y -q --no-install-recommends poppler-utils; } >"$log" 2>&1; then
  tail -n 30 "$log" >&2
  echo "ensure-poppler: apt-get could not install poppler-utils" >&2
  exit 1
fi
have_tools
