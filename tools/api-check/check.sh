#!/usr/bin/env bash
# API conformance: serves a fresh Custos, validates its OpenAPI document, fuzzes every
# operation against it with schemathesis (as the admin token, then as an org member), then
# drives the API through a client generated from the document.
#
#   tools/api-check/check.sh [CUSTOS_BINARY] [VENV_DIR]
#
# CUSTOS_BINARY defaults to target/debug/custos (built by `cargo test`); the pinned Python
# tools are installed into VENV_DIR (default target/api-check-venv), created if missing.
# Without python3 (or PyPI) the check is skipped with a loud message, and fails under CI=true.
# CUSTOS_API_CHECK_EXAMPLES bounds the examples per operation (default 50).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
bin="${1:-$root/target/debug/custos}"
venv="${2:-$root/target/api-check-venv}"
examples="${CUSTOS_API_CHECK_EXAMPLES:-50}"

unavailable() {
  if [ "${CI:-}" = "true" ]; then
    echo "api-check: FAIL: $1 (required under CI=true)" >&2
    exit 1
  fi
  echo "api-check: SKIPPED: $1" >&2
  exit 0
}

[ -x "$bin" ] || { echo "api-check: no custos binary at $bin (run cargo test or cargo build first)" >&2; exit 2; }
command -v python3 >/dev/null || unavailable "python3 is not installed"
stamp="$venv/.requirements"
if [ ! -x "$venv/bin/python" ] || ! cmp -s "$here/requirements.txt" "$stamp"; then
  rm -rf "$venv"
  python3 -m venv "$venv" || unavailable "cannot create a virtualenv at $venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$here/requirements.txt" \
    || unavailable "cannot install the pinned tools from PyPI"
  cp "$here/requirements.txt" "$stamp"
fi
# Absolute: schemathesis runs from the temp dir.
venv="$(cd "$venv" && pwd)"
py="$venv/bin/python"

work="$(mktemp -d)"
server_pid=""
cleanup() {
  if [ -n "$server_pid" ]; then kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

token="api-check-$("$py" -c 'import secrets; print(secrets.token_hex(16))')"
port="$("$py" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
base="http://127.0.0.1:$port"
CUSTOS_ADMIN_TOKEN="$token" CUSTOS_LOG=warn "$bin" --data "$work/data" \
  serve --listen "127.0.0.1:$port" --sweep-interval 0 --failures-per-source 100000 \
  >"$work/serve.log" 2>&1 &
server_pid=$!
for _ in $(seq 1 100); do
  if "$py" -c "import urllib.request,sys; urllib.request.urlopen(sys.argv[1], timeout=1)" "$base/healthz" 2>/dev/null; then
    break
  fi
  kill -0 "$server_pid" 2>/dev/null || { cat "$work/serve.log" >&2; echo "api-check: custos serve exited" >&2; exit 1; }
  sleep 0.1
done

"$py" -c "import urllib.request,sys; open(sys.argv[2],'wb').write(urllib.request.urlopen(sys.argv[1]).read())" \
  "$base/openapi.json" "$work/openapi.json"
echo "api-check: validating the OpenAPI document"
"$venv/bin/openapi-spec-validator" "$work/openapi.json"

# An org and a member (owner, so every org route is reachable) for the member run.
read -r member_org member_key < <("$py" "$here/setup.py" "$base" "$token")

# Every check but use_after_free: `DELETE /v1/orgs/{org}` starts a termination (202) and the
# org stays readable as evidence (status `terminating`, then `terminated`) by design.
fuzz() {
  local who="$1" key="$2" config="$3"
  shift 3
  echo "api-check: schemathesis as $who"
  # From the temp dir: schemathesis keeps a cache in the working directory.
  (cd "$work" && "$venv/bin/st" --config-file "$config" run "$work/openapi.json" --url "$base" \
    --header "Authorization: Bearer $key" \
    --checks all \
    --exclude-checks use_after_free \
    --max-examples "$examples" \
    --seed 20261127 \
    --workers 1 \
    --request-timeout 30 \
    --suppress-health-check all \
    --warnings off \
    --no-color \
    --report-dir "$work/report-$who" "$@")
}
fuzz admin "$token" "$here/schemathesis.toml"
# The member (an owner) in its own org; terminating that org would end the run early.
CUSTOS_CHECK_ORG="$member_org" fuzz member "$member_key" "$here/schemathesis-member.toml" \
  --exclude-operation-id terminate_org
# The member run must have reached the core: records were written in its org.
"$py" - "$base" "$token" "$member_org" <<'PY'
import json, sys, urllib.request
base, token, org = sys.argv[1:]
req = urllib.request.Request(
    f"{base}/v1/audit/events?org={org}&action=record.create&limit=1000",
    headers={"Authorization": "Bearer " + token},
)
n = len(json.load(urllib.request.urlopen(req))["items"])
if n == 0:
    sys.exit("api-check: FAIL: the member run created no record (fuzzing never got past 404)")
print(f"api-check: the member run created {n} records")
PY

echo "api-check: a generated client"
"$venv/bin/openapi-python-client" generate --path "$work/openapi.json" \
  --output-path "$work/custos_client" --meta none --overwrite --fail-on-warning \
  --config "$here/client-config.yaml"
PYTHONPATH="$work" "$py" "$here/client_smoke.py" "$base" "$token"

if grep -q "internal error" "$work/serve.log"; then
  grep "internal error" "$work/serve.log" >&2
  echo "api-check: FAIL: the server logged internal errors" >&2
  exit 1
fi
echo "api-check: all checks passed"
