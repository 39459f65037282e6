#!/usr/bin/env bash
# Runs a local S3-compatible server (moto) in the foreground for the S3 object store tests.
#
#   tools/s3-stand-in/serve.sh PORT
#
# It listens on 127.0.0.1:PORT only, accepts any credentials and keeps everything in memory, so
# stopping it discards every bucket. moto is installed from requirements.txt into a venv under
# the repository's target/ directory, created on first use and reused afterwards (reinstalled
# when requirements.txt changes).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
port="${1:?usage: serve.sh PORT}"
case "$port" in
  '' | *[!0-9]*) echo "serve.sh: PORT must be a number, got '$port'" >&2; exit 2 ;;
esac
venv="$root/target/s3-stand-in-venv"
stamp="$venv/.installed-requirements"

mkdir -p "$root/target"
# Tests start several servers at once: the lock makes the first one install while the others
# wait, instead of all of them writing into the same venv.
exec 9>"$root/target/s3-stand-in-venv.lock"
flock 9
if ! cmp -s "$here/requirements.txt" "$stamp" 2>/dev/null; then
  echo "s3-stand-in: installing moto into $venv (first run only)" >&2
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$here/requirements.txt"
  # Written last, so an interrupted install is redone rather than trusted.
  cp "$here/requirements.txt" "$stamp"
fi
flock -u 9
exec 9>&-

exec "$venv/bin/moto_server" -H 127.0.0.1 -p "$port"
