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
"${sudo[@]}" apt-get update -qq >&2
"${sudo[@]}" apt-get install -y -qq --no-install-recommends poppler-utils >&2
have_tools
