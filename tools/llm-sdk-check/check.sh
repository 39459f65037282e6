#!/usr/bin/env bash
# The official OpenAI and Anthropic Python SDKs against the LLM gateway (or the stand-in
# provider directly): three-turn conversations with PII, plain and streamed, and the SDKs'
# own error classes.
#
#   tools/llm-sdk-check/check.sh [VENV_DIR] [errors]
#
# The pinned SDKs are installed into VENV_DIR (default target/llm-sdk-venv), created if missing
# and reinstalled when requirements.txt changes. check.py takes everything else from the
# environment (LLM_OPENAI_BASE, LLM_ANTHROPIC_BASE, LLM_KEY, LLM_STANDIN, ...; see check.py).
# Without python3 (or PyPI) the check is skipped with a loud message, and fails under CI=true.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
venv="${1:-$root/target/llm-sdk-venv}"
shift || true

unavailable() {
  if [ "${CI:-}" = "true" ]; then
    echo "llm-sdk-check: FAIL: $1 (required under CI=true)" >&2
    exit 1
  fi
  echo "llm-sdk-check: SKIPPED: $1" >&2
  exit 0
}

command -v python3 >/dev/null || unavailable "python3 is not installed"
mkdir -p "$(dirname "$venv")"
# Tests may run this check concurrently: the first installs while the others wait.
exec 9>"$venv.lock"
flock 9
stamp="$venv/.requirements"
if [ ! -x "$venv/bin/python" ] || ! cmp -s "$here/requirements.txt" "$stamp"; then
  rm -rf "$venv"
  python3 -m venv "$venv" || unavailable "cannot create a virtualenv at $venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$here/requirements.txt" \
    || unavailable "cannot install the pinned SDKs from PyPI"
  cp "$here/requirements.txt" "$stamp"
fi
flock -u 9

exec "$venv/bin/python" "$here/check.py" "$@"
