#!/usr/bin/env bash
# Several instances: records/s through HTTP with one `custos serve` and with three, all on one
# PostgreSQL database and one key store on PostgreSQL (the audit log's appends/s beside it: with
# three instances, three writers append to the one log).
#
#   bench/instances.sh                  # 3000 records, 32 callers per run
#   N=6000 C=64 bench/instances.sh
#
# Needs PostgreSQL (CUSTOS_TEST_POSTGRES_URL, default postgres://postgres@127.0.0.1:5432/test)
# and psql. Files are not involved, so the object store is one local directory.
set -euo pipefail

N=${N:-3000}
C=${C:-32}
root="$(cd "$(dirname "$0")/.." && pwd)"
target="${CARGO_TARGET_DIR:-$root/target}"
admin_url="${CUSTOS_TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/test}"
server_url="${admin_url%/*}"
cd "$root"

echo "building release binaries..." >&2
cargo build --release --quiet -p custos --bin custos --example records_load || exit 2
custos="$target/release/custos"
load="$target/release/examples/records_load"

work="$(mktemp -d)"
suffix="$$"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  for db in "bench_data_$suffix" "bench_keys_$suffix"; do
    psql "$admin_url" -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true
  done
  rm -rf "$work"
}
trap cleanup EXIT
psql "$admin_url" -qc "CREATE DATABASE bench_data_$suffix" || exit 2
psql "$admin_url" -qc "CREATE DATABASE bench_keys_$suffix" || exit 2

export CUSTOS_DATABASE="$server_url/bench_data_$suffix"
export CUSTOS_KEYS="$server_url/bench_keys_$suffix"
export CUSTOS_OBJECTS="file:$work/objects"
export CUSTOS_ROOT_KEY="$(head -c 32 /dev/urandom | base64)"
export CUSTOS_ADMIN_TOKEN="bench-admin-token-0123456789"
export CUSTOS_LOG=warn

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

start() { # name -> prints base URL
  local port; port=$(free_port)
  mkdir -p "$work/$1"
  "$custos" --data "$work/$1" serve --listen "127.0.0.1:$port" >"$work/$1.log" 2>&1 &
  pids+=($!)
  for _ in $(seq 100); do
    curl -fs "http://127.0.0.1:$port/readyz" >/dev/null 2>&1 && { echo "http://127.0.0.1:$port"; return; }
    sleep 0.1
  done
  echo "instance $1 did not come up; its log:" >&2; cat "$work/$1.log" >&2; exit 2
}

org_and_key() { # base -> "ORG KEY"
  local org key
  org=$(curl -fs -H "Authorization: Bearer $CUSTOS_ADMIN_TOKEN" -H 'content-type: application/json' \
    -d '{"name":"bench"}' "$1/v1/orgs" | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
  key=$(curl -fs -H "Authorization: Bearer $CUSTOS_ADMIN_TOKEN" -H 'content-type: application/json' \
    -d '{"name":"bench","roles":["member"]}' "$1/v1/orgs/$org/members" \
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["api_key"])')
  echo "$org $key"
}

run() { # label bases...
  local label=$1; shift
  local bases; bases=$(IFS=,; echo "$*")
  read -r org key < <(org_and_key "$1")
  "$load" "$bases" "$CUSTOS_ADMIN_TOKEN" "$org" "$key" --n "$N" --c "$C" | sed "s/^/$label /"
}

one=$(start a)
run "one instance:   " "$one"
two=$(start b)
three=$(start c)
run "three instances:" "$one" "$two" "$three"
