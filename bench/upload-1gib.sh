#!/usr/bin/env bash
# Streams a 1 GiB file through `custos serve` and back, and checks that the server's memory
# stays bounded.
#
#   bench/upload-1gib.sh
#
# What it does: builds the release binary (`cargo build --release -p custos`; if cargo is not
# available it uses an existing target/release/custos), starts `custos serve` on a free
# loopback port with a temporary data directory and CUSTOS_ADMIN_TOKEN, creates an org and a
# member (role `member`) through the HTTP API, uploads 1 GiB of pseudo-random bytes as
#   POST /v1/orgs/{org}/files?category=files&name=big.bin
# with chunked transfer encoding (`curl -T -`, so neither side ever holds the body), downloads it
# again from GET /v1/orgs/{org}/records/{id}/file, compares SHA-256 digests, and reports the
# server's peak RSS (VmHWM from /proc/<pid>/status) and the upload and download rates.
#
# Exit status: 0 if the digests match and peak RSS < RSS limit; 1 otherwise; 2 on setup errors.
#
# Environment:
#   CUSTOS_BIN            use this binary instead of building
#   CARGO_TARGET_DIR      where cargo builds (default <repo>/target)
#   CUSTOS_UPLOAD_BYTES   body size (default 1073741824)
#   CUSTOS_RSS_LIMIT_MB   peak RSS limit in MB of 10^6 bytes (default 100)
#   CUSTOS_KEEP_TMP=1     keep the temporary directory (server log, data) for inspection
#
# Client side: the body is AES-CTR keystream from `openssl enc` (urandom is too slow on small
# VMs to measure the server), hashed with `openssl dgst -sha256` (SHA-NI; coreutils sha256sum is
# ~4x slower here); both fall back to /dev/urandom and sha256sum without openssl. The rates are
# wall-clock over the whole transfer, so they include client-side generation and hashing, which
# compete with the server for CPU on a small machine.

set -euo pipefail

SIZE=${CUSTOS_UPLOAD_BYTES:-1073741824}
RSS_LIMIT_MB=${CUSTOS_RSS_LIMIT_MB:-100}
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

say() { printf '%s\n' "$*" >&2; }
die() { say "upload-1gib: $*"; exit 2; }

for tool in curl head tee mkfifo awk; do
  command -v "$tool" >/dev/null || die "needs $tool"
done

# --- binary -----------------------------------------------------------------------------------
if [[ -n "${CUSTOS_BIN:-}" ]]; then
  BIN=$CUSTOS_BIN
else
  TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
  case $TARGET in /*) ;; *) TARGET=$ROOT/$TARGET ;; esac
  BIN=$TARGET/release/custos
  if command -v cargo >/dev/null; then
    say "building release binary (cargo build --release -p custos) ..."
    (cd "$ROOT" && cargo build --release -p custos --quiet) || die "release build failed"
  elif [[ ! -x $BIN ]]; then
    die "no cargo and no binary at $BIN (set CUSTOS_BIN)"
  fi
fi
[[ -x $BIN ]] || die "binary $BIN is missing"

# --- temp dir, clean-up -----------------------------------------------------------------------
TMP=$(mktemp -d "${TMPDIR:-/tmp}/custos-upload-bench.XXXXXX")
SERVER_PID=
HASH_PID=
cleanup() {
  local status=$?
  if [[ -n $SERVER_PID ]] && kill -0 "$SERVER_PID" 2>/dev/null; then
    kill -TERM "$SERVER_PID" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
  fi
  if [[ -n $HASH_PID ]]; then kill "$HASH_PID" 2>/dev/null || true; fi
  if [[ ${CUSTOS_KEEP_TMP:-0} == 1 ]]; then
    say "kept $TMP"
  else
    rm -rf "$TMP"
  fi
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# --- client-side generator and digest ---------------------------------------------------------
if command -v openssl >/dev/null; then
  generate() { openssl enc -aes-128-ctr -pass pass:custos-upload-bench -pbkdf2 -nosalt \
                 < /dev/zero 2>/dev/null | head -c "$SIZE"; }
  digest() { openssl dgst -sha256 -r | awk '{print $1}'; }
else
  generate() { head -c "$SIZE" /dev/urandom; }
  digest() { sha256sum | awk '{print $1}'; }
fi

now() { date +%s.%N; }

# --- server -----------------------------------------------------------------------------------
free_port() {
  local p
  for _ in $(seq 1 100); do
    p=$(( 20000 + RANDOM % 40000 ))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then echo "$p"; return; fi
  done
  die "no free port found"
}

PORT=$(free_port)
URL=http://127.0.0.1:$PORT
TOKEN=bench-admin-$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')
# cd into the temp dir so a ./custos.toml of the caller is not picked up; drop the caller's
# deployment settings so the server uses only the temp data dir.
cd "$TMP"
env -u CUSTOS_DATABASE -u CUSTOS_OBJECTS -u CUSTOS_KEYS -u CUSTOS_ROOT_KEY \
  CUSTOS_ADMIN_TOKEN="$TOKEN" RUST_LOG="${RUST_LOG:-warn}" \
  "$BIN" --data "$TMP/data" serve --listen "127.0.0.1:$PORT" > "$TMP/server.log" 2>&1 &
SERVER_PID=$!

for _ in $(seq 1 100); do
  if curl -sf "$URL/healthz" >/dev/null 2>&1; then break; fi
  kill -0 "$SERVER_PID" 2>/dev/null || { cat "$TMP/server.log" >&2; die "server exited"; }
  sleep 0.1
done
curl -sf "$URL/healthz" >/dev/null || { cat "$TMP/server.log" >&2; die "server not healthy"; }

hwm_kb() { awk '/^VmHWM:/ {print $2}' "/proc/$SERVER_PID/status"; }
rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$SERVER_PID/status"; }
mb() { awk -v kb="$1" 'BEGIN { printf "%.1f", kb * 1024 / 1e6 }'; }

json_field() { # json_field NAME < JSON (first string value of a top-level-ish key)
  if command -v jq >/dev/null; then jq -r ".$1"; else sed -n "s/.*\"$1\":\"\([^\"]*\)\".*/\1/p"; fi
}

api() { # api METHOD PATH TOKEN [JSON]
  local method=$1 path=$2 token=$3 body=${4:-}
  curl -sS --fail-with-body -X "$method" "$URL$path" \
    -H "authorization: Bearer $token" -H 'content-type: application/json' \
    ${body:+--data "$body"}
}

ORG=$(api POST /v1/orgs "$TOKEN" '{"name":"upload bench"}' | json_field id)
[[ -n $ORG ]] || die "could not create an org"
KEY=$(api POST "/v1/orgs/$ORG/members" "$TOKEN" '{"name":"uploader","roles":["member"]}' \
  | json_field api_key)
[[ -n $KEY ]] || die "could not create a member"

IDLE_KB=$(hwm_kb)
say "server pid $SERVER_PID on $URL, org $ORG; peak RSS before upload $(mb "$IDLE_KB") MB"
say "load average: $(cut -d' ' -f1-3 /proc/loadavg)"

# --- upload -----------------------------------------------------------------------------------
mkfifo "$TMP/up.fifo"
digest < "$TMP/up.fifo" > "$TMP/up.sha" &
HASH_PID=$!
t0=$(now)
# The generator ends by SIGPIPE when `head` has its bytes, so only tee's and curl's statuses
# count.
set +o pipefail
generate | tee "$TMP/up.fifo" | curl -sS --fail-with-body -X POST -T - \
  -H "authorization: Bearer $KEY" -H 'content-type: application/octet-stream' \
  "$URL/v1/orgs/$ORG/files?category=files&name=big.bin" -o "$TMP/upload.json"
statuses=("${PIPESTATUS[@]}")
set -o pipefail
t1=$(now)
if [[ ${statuses[1]} != 0 || ${statuses[2]} != 0 ]]; then
  cat "$TMP/upload.json" >&2 2>/dev/null || true
  die "upload failed (tee ${statuses[1]}, curl ${statuses[2]})"
fi
wait "$HASH_PID"
HASH_PID=
UP_SHA=$(cat "$TMP/up.sha")
RECORD=$(json_field id < "$TMP/upload.json")
[[ -n $RECORD ]] || { cat "$TMP/upload.json" >&2; die "upload returned no record id"; }
UP_HWM_KB=$(hwm_kb)

# --- download ---------------------------------------------------------------------------------
t2=$(now)
DOWN_SHA=$(curl -sS --fail -H "authorization: Bearer $KEY" \
  "$URL/v1/orgs/$ORG/records/$RECORD/file" | digest)
t3=$(now)
PEAK_KB=$(hwm_kb)
NOW_KB=$(rss_kb)

SEALED=$(find "$TMP/data/objects" -type f -name "$RECORD" -printf '%s\n' 2>/dev/null | head -1)

rate() { awk -v b="$SIZE" -v a="$1" -v z="$2" 'BEGIN { printf "%.1f", b / 1e6 / (z - a) }'; }
secs() { awk -v a="$1" -v z="$2" 'BEGIN { printf "%.2f", z - a }'; }

PEAK_MB=$(mb "$PEAK_KB")
echo "custos 1 GiB upload/download ($SIZE bytes, record $RECORD)"
echo "  upload:   $(secs "$t0" "$t1") s = $(rate "$t0" "$t1") MB/s   (chunked POST, sealed on the fly)"
echo "  download: $(secs "$t2" "$t3") s = $(rate "$t2" "$t3") MB/s   (decrypting GET)"
echo "  sealed object on disk: ${SEALED:-?} bytes"
echo "  sha256 sent:     $UP_SHA"
echo "  sha256 received: $DOWN_SHA"
echo "  server peak RSS (VmHWM): before upload $(mb "$IDLE_KB") MB, after upload $(mb "$UP_HWM_KB") MB, after download $PEAK_MB MB (limit $RSS_LIMIT_MB MB); RSS now $(mb "$NOW_KB") MB"
echo "  load average: $(cut -d' ' -f1-3 /proc/loadavg)"

status=0
if [[ -z $UP_SHA || $UP_SHA != "$DOWN_SHA" ]]; then
  echo "FAIL: digests differ"
  status=1
fi
if awk -v p="$PEAK_MB" -v l="$RSS_LIMIT_MB" 'BEGIN { exit !(p >= l) }'; then
  echo "FAIL: peak RSS $PEAK_MB MB >= $RSS_LIMIT_MB MB"
  status=1
fi
[[ $status == 0 ]] && echo "PASS"
exit "$status"
