#!/usr/bin/env bash
# Refused credentials must stay cheap: valid callers' records/s through one `custos serve`
# (SQLite, the embedded default) alone, then during a flood of requests with unknown API keys
# at 1,000/s from another loopback address. The flood's failures are audited in batches and
# its source is limited after 100 failures a minute.
#
#   bench/auth-flood.sh                 # 10 s per phase, 1,000 bad requests/s, 16 callers
#   SECS=20 RATE=2000 C=32 bench/auth-flood.sh
#   SOURCES=100 bench/auth-flood.sh     # the flood spread over 100 addresses: every bad key is
#                                       # evaluated and audited (no source reaches its limit)
set -euo pipefail

SECS=${SECS:-10}
RATE=${RATE:-1000}
C=${C:-16}
SOURCES=${SOURCES:-1}
root="$(cd "$(dirname "$0")/.." && pwd)"
target="${CARGO_TARGET_DIR:-$root/target}"
cd "$root"

echo "building release binaries..." >&2
cargo build --release --quiet -p custos --bin custos --example auth_flood || exit 2
custos="$target/release/custos"
load="$target/release/examples/auth_flood"

work="$(mktemp -d)"
pid=""
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
export CUSTOS_ADMIN_TOKEN="bench-admin-token-0123456789" CUSTOS_LOG=warn
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$custos" --data "$work/data" serve --listen "127.0.0.1:$port" >"$work/serve.log" 2>&1 &
pid=$!
base="http://127.0.0.1:$port"
for _ in $(seq 100); do curl -fs "$base/readyz" >/dev/null 2>&1 && break; sleep 0.1; done
org=$(curl -fs -H "Authorization: Bearer $CUSTOS_ADMIN_TOKEN" -H 'content-type: application/json' \
  -d '{"name":"bench"}' "$base/v1/orgs" | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
key=$(curl -fs -H "Authorization: Bearer $CUSTOS_ADMIN_TOKEN" -H 'content-type: application/json' \
  -d '{"name":"bench","roles":["member"]}' "$base/v1/orgs/$org/members" \
  | python3 -c 'import json,sys; print(json.load(sys.stdin)["api_key"])')
"$load" "$base" "$org" "$key" --secs "$SECS" --rate "$RATE" --c "$C" --sources "$SOURCES"
curl -fs "$base/metrics" | grep -E '^custos_auth_' || true
