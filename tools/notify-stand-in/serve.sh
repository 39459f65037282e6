#!/usr/bin/env bash
# Runs one notification receiver in the foreground for the notification tests:
#
#   tools/notify-stand-in/serve.sh smtp --port PORT --out FILE [--tls-dir DIR]
#   tools/notify-stand-in/serve.sh webhook --port PORT --out FILE --secret whsec_... [--fail-first N]
#
# Both listen on 127.0.0.1 only and append one JSON line per message (or delivery attempt) to
# FILE. aiosmtpd and standardwebhooks are installed from requirements.txt into a venv under the
# repository's target/ directory, created on first use and reused afterwards.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
venv="$root/target/notify-stand-in-venv"
stamp="$venv/.installed-requirements"

mkdir -p "$root/target"
# Tests start several receivers at once: the first installs while the others wait.
exec 9>"$root/target/notify-stand-in-venv.lock"
flock 9
if ! cmp -s "$here/requirements.txt" "$stamp" 2>/dev/null; then
  echo "notify-stand-in: installing aiosmtpd, standardwebhooks and cryptography into $venv (first run only)" >&2
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$here/requirements.txt"
  # Written last, so an interrupted install is redone rather than trusted.
  cp "$here/requirements.txt" "$stamp"
fi
flock -u 9
exec 9>&-

exec "$venv/bin/python" "$here/stand_in.py" "$@"
