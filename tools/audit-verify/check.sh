#!/usr/bin/env bash
# Runs the independent verifier over a fixture directory, then checks that tampered copies fail.
#
#   tools/audit-verify/check.sh DIR [VENV_DIR]
#
# DIR holds what `cargo run -p custos-audit --example fixture -- DIR` writes. The verifier's
# Python dependencies are installed into VENV_DIR (default: DIR/.venv), created if missing.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
dir="${1:?usage: check.sh DIR [VENV_DIR]}"
venv="${2:-$dir/.venv}"

if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$here/requirements.txt"
fi
py="$venv/bin/python"
verify() { "$py" "$here/verify.py" "$@"; }
key="@$dir/verifier-key.txt"

# Positive checks: every artefact verifies.
verify note --key "$key" --note "$dir/checkpoint.txt"
verify note --key "$key" --note "$dir/checkpoint-old.txt"
verify export --key "$key" --note "$dir/checkpoint.txt" --export "$dir/export.jsonl"
verify export --key "$key" --note "$dir/checkpoint-old.txt" --export "$dir/export.jsonl"
shopt -s nullglob
proofs=("$dir"/inclusion-proof-*.json)
[ ${#proofs[@]} -gt 0 ] || { echo "no inclusion proofs in $dir" >&2; exit 2; }
for p in "${proofs[@]}"; do
  verify inclusion --key "$key" --note "$dir/checkpoint.txt" --proof "$p" --export "$dir/export.jsonl"
done
verify consistency --key "$key" --old-note "$dir/checkpoint-old.txt" --note "$dir/checkpoint.txt" \
  --proof "$dir/consistency-proof.json" --export "$dir/export.jsonl"

# Negative checks: each tampered copy must be rejected with exit 1.
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
expect_fail() {
  local what="$1"; shift
  local rc=0
  verify "$@" >/dev/null 2>&1 || rc=$?
  if [ "$rc" -ne 1 ]; then
    echo "FAIL: $what was not rejected (exit $rc)" >&2
    exit 1
  fi
  echo "ok: rejected $what"
}
# An entry's bytes changed: re-encode one event with a different action.
"$py" - "$dir/export.jsonl" "$tmp/export.jsonl" <<'PY'
import base64, json, sys
lines = open(sys.argv[1]).read().splitlines()
obj = json.loads(lines[len(lines) // 3])
leaf = base64.b64decode(obj["leaf"]).replace(b'"org-', b'"orh-', 1)
obj["leaf"] = base64.b64encode(leaf).decode()
lines[len(lines) // 3] = json.dumps(obj)
open(sys.argv[2], "w").write("\n".join(lines) + "\n")
PY
expect_fail "an altered entry" export --key "$key" --note "$dir/checkpoint.txt" --export "$tmp/export.jsonl"
# An entry deleted.
sed '5d' "$dir/export.jsonl" > "$tmp/deleted.jsonl"
expect_fail "a deleted entry" export --key "$key" --note "$dir/checkpoint.txt" --export "$tmp/deleted.jsonl"
# The checkpoint's size changed after signing.
awk 'NR==2{$0=$0+1}1' "$dir/checkpoint.txt" > "$tmp/checkpoint.txt"
expect_fail "an altered checkpoint" note --key "$key" --note "$tmp/checkpoint.txt"
# A proof hash changed.
"$py" - "${proofs[0]}" "$tmp/proof.json" <<'PY'
import base64, json, sys
p = json.load(open(sys.argv[1]))
h = bytearray(base64.b64decode(p["hashes"][0])); h[0] ^= 1
p["hashes"][0] = base64.b64encode(bytes(h)).decode()
json.dump(p, open(sys.argv[2], "w"))
PY
expect_fail "an altered inclusion proof" inclusion --key "$key" --note "$dir/checkpoint.txt" --proof "$tmp/proof.json"
# Consistency proof presented with the checkpoints swapped.
expect_fail "a consistency proof against swapped checkpoints" consistency --key "$key" \
  --old-note "$dir/checkpoint.txt" --note "$dir/checkpoint-old.txt" --proof "$dir/consistency-proof.json"

echo "audit-verify: all checks passed"
