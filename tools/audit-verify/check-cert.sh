#!/usr/bin/env bash
# Checks a certificate-of-deletion fixture with both verifiers, the independent Python one and
# `custos cert verify`: the fixture verifies, and every tampered copy is rejected with exit 1 by
# both, naming the same check.
#
#   tools/audit-verify/check-cert.sh DIR VENV_DIR CUSTOS_BIN
#
# DIR holds what `cargo run -p custos-cert --example cert_fixture -- DIR` writes. The verifier's
# Python dependencies are installed into VENV_DIR, created if missing.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
usage="usage: check-cert.sh DIR VENV_DIR CUSTOS_BIN"
# Absolute paths: the CLI runs from a scratch directory.
dir="$(cd "${1:?$usage}" && pwd)"
venv="${2:?$usage}"
custos_arg="${3:?$usage}"
custos="$(cd "$(dirname "$custos_arg")" && pwd)/$(basename "$custos_arg")"
[ -x "$custos" ] || { echo "$custos_arg: not an executable" >&2; exit 2; }

if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$here/requirements.txt"
fi
py="$venv/bin/python"
key="@$dir/verifier-key.txt"
other_key="@$dir/other-verifier-key.txt"
subject_ref="$(cat "$dir/subject-ref.txt")"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

pyverify() { "$py" "$here/verify.py" cert "$@"; }
# The CLI runs outside any deployment: verifying needs no data directory.
cliverify() { (cd "$tmp" && "$custos" cert verify "$@"); }

# Positive checks.
for cert in certificate.json other-certificate.json; do
  pyverify --key "$key" --cert "$dir/$cert"
  cliverify "$dir/$cert" --key "$key"
done
pyverify --key "$key" --cert "$dir/certificate.json" --subject-ref "$subject_ref"
# A certificate issued before typed audit details (its leaf is an encoding-version-1 event)
# still verifies with both, under the same fixture key.
v1_cert="$here/../../crates/custos-cert/tests/golden/certificate-v1.jcs.json"
pyverify --key "$key" --cert "$v1_cert" --subject-ref "$subject_ref"
cliverify "$v1_cert" --key "$key"
pyverify --cert "$dir/certificate.json"
cliverify "$dir/certificate.json" --trust-embedded-key
# Without a key to trust, the CLI refuses to call a certificate verified.
rc=0; out="$(cliverify "$dir/certificate.json" 2>&1)" || rc=$?
if [ "$rc" -ne 1 ] || [[ "$out" != *"self-asserted"* ]]; then
  echo "FAIL: a certificate verified with no key to trust (exit $rc): $out" >&2
  exit 1
fi

# Both verifiers must exit 1 and name `check`.
expect_check() {
  local check="$1" what="$2"; shift 2
  local rc out
  for v in py cli; do
    rc=0
    if [ "$v" = py ]; then
      out="$(pyverify "$@" 2>&1 >/dev/null)" || rc=$?
    else
      out="$(cliverify "${cli_args[@]}" 2>&1 >/dev/null)" || rc=$?
    fi
    if [ "$rc" -ne 1 ] || [[ "$out" != *"certificate invalid: $check: "* ]]; then
      echo "FAIL ($v): $what: expected exit 1 naming $check, got exit $rc: $out" >&2
      exit 1
    fi
  done
  echo "ok: both reject $what ($check)"
}

cli_args=("$dir/certificate.json" --key "$other_key")
expect_check signature "the wrong key" --key "$other_key" --cert "$dir/certificate.json"

"$py" "$here/cert_tamper.py" "$dir" "$tmp/tampered"
n=0
while read -r file check what; do
  cli_args=("$tmp/tampered/$file" --key "$key")
  expect_check "$check" "$what" --key "$key" --cert "$tmp/tampered/$file"
  n=$((n + 1))
done < "$tmp/tampered/cases.txt"

# The subject check needs the deployment's key store in the CLI (covered by its own tests);
# here only the Python verifier, which takes the reference itself.
rc=0
out="$(pyverify --key "$key" --cert "$dir/certificate.json" --subject-ref "${subject_ref}0" 2>&1)" || rc=$?
if [ "$rc" -ne 1 ] || [[ "$out" != *"certificate invalid: subject: "* ]]; then
  echo "FAIL: another subject reference was not rejected (exit $rc): $out" >&2
  exit 1
fi
echo "ok: rejected another subject reference (subject)"

echo "check-cert: $((n + 2)) passed, 0 failed"
