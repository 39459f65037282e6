#!/usr/bin/env bash
# Smoke test of the OIDC test provider with curl alone (cookie jar, redirects not followed):
#
#   tools/oidc-provider/smoke.sh [DIR]        (DIR default: target/oidc-provider)
#
# Installs into DIR (install.sh), starts `node DIR/server.mjs` on a free port, then runs the
# authorization code flow with PKCE S256 + state + nonce for a client whose redirect URI is
# http://127.0.0.1:9/cb (never followed: the code is read from the Location header), checks
# the ID token, code replay, a wrong code_verifier, single sign-on through the provider's
# session cookie, client_secret_post, userinfo and key rotation. Exits 0 only if all held.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
dir="${1:-$root/target/oidc-provider}"

command -v curl >/dev/null || { echo "smoke: curl is not installed" >&2; exit 1; }
"$here/install.sh" "$dir"
dir="$(cd "$dir" && pwd)"

work="$(mktemp -d)"
server_pid=""
cleanup() {
  if [ -n "$server_pid" ]; then kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

passed=0
failed=0
ok() { passed=$((passed + 1)); echo "ok   - $*"; }
bad() { failed=$((failed + 1)); echo "FAIL - $*"; }
check() { # check DESCRIPTION COMMAND...
  local what="$1"; shift
  if "$@"; then ok "$what"; else bad "$what"; fi
}
finish() {
  echo "$passed passed, $failed failed"
  if [ "$failed" -ne 0 ] || [ "${1:-}" = "abort" ]; then
    echo "--- server stderr (last 40 lines) ---"; tail -n 40 "$work/server.err" || true
    exit 1
  fi
  exit 0
}

# JSON helpers (node is there: the provider needs it).
jget() { # jget FILE JS-EXPRESSION-ON-o  -> prints the value (strings raw, others as JSON)
  node -e '
    const fs = require("fs");
    const o = JSON.parse(fs.readFileSync(process.argv[1], "utf8"));
    const v = (new Function("o", "return (" + process.argv[2] + ")"))(o);
    if (v === undefined) process.exit(3);
    process.stdout.write(typeof v === "string" ? v : JSON.stringify(v));
  ' -- "$1" "$2"
}
jwt_part() { # jwt_part JWT 0|1  -> decoded JSON of the header or payload
  node -e 'process.stdout.write(Buffer.from(process.argv[1].split(".")[+process.argv[2]], "base64url").toString("utf8"))' -- "$1" "$2"
}
query_param() { # query_param URL NAME
  node -e 'const v = new URL(process.argv[1]).searchParams.get(process.argv[2]); if (v === null) process.exit(3); process.stdout.write(v)' -- "$1" "$2"
}
random_b64url() { node -e 'process.stdout.write(require("crypto").randomBytes(+process.argv[1]).toString("base64url"))' -- "$1"; }
s256() { node -e 'process.stdout.write(require("crypto").createHash("sha256").update(process.argv[1]).digest("base64url"))' -- "$1"; }
urlenc() { node -e 'process.stdout.write(encodeURIComponent(process.argv[1]))' -- "$1"; }

client_id="smoke-client"
client_secret="smoke-secret-$(random_b64url 9)"
redirect_uri="http://127.0.0.1:9/cb"
jar="$work/cookies.txt"

# --- start the server -------------------------------------------------------------------------
clients="[{\"client_id\":\"$client_id\",\"client_secret\":\"$client_secret\",\"redirect_uris\":[\"$redirect_uri\"]},
  {\"client_id\":\"smoke-es256\",\"client_secret\":\"$client_secret\",\"redirect_uris\":[\"$redirect_uri\"],\"id_token_signed_response_alg\":\"ES256\"}]"
PORT=0 CLIENTS="$clients" node "$dir/server.mjs" >"$work/server.out" 2>"$work/server.err" &
server_pid=$!
for _ in $(seq 1 300); do
  [ -s "$work/server.out" ] && break
  kill -0 "$server_pid" 2>/dev/null || break
  sleep 0.1
done
if ! [ -s "$work/server.out" ]; then bad "server printed its ready line"; finish abort; fi
ready_line="$(head -n 1 "$work/server.out")"
echo "server ready line: $ready_line"
issuer="$(jget "$work/server.out" 'o.issuer')"
port="$(jget "$work/server.out" 'o.port')"
check "ready line is {issuer, port} with issuer http://localhost:PORT" \
  test "$issuer" = "http://localhost:$port"

# --- discovery -----------------------------------------------------------------------------------
curl -sS -f "$issuer/.well-known/openid-configuration" -o "$work/discovery.json"
auth_ep="$(jget "$work/discovery.json" 'o.authorization_endpoint')"
token_ep="$(jget "$work/discovery.json" 'o.token_endpoint')"
jwks_uri="$(jget "$work/discovery.json" 'o.jwks_uri')"
userinfo_ep="$(jget "$work/discovery.json" 'o.userinfo_endpoint')"
check "discovery: issuer matches, code flow, S256 only, basic+post, RS256 ID tokens" \
  test "$(jget "$work/discovery.json" '[o.issuer, o.response_types_supported, o.code_challenge_methods_supported, o.token_endpoint_auth_methods_supported.slice().sort(), o.id_token_signing_alg_values_supported.includes("RS256")]')" \
  = "[\"$issuer\",[\"code\"],[\"S256\"],[\"client_secret_basic\",\"client_secret_post\"],true]"

# --- helpers for the flow ------------------------------------------------------------------------
# get URL -> sets $status and $location (absolute, from the Location header; not followed)
get() {
  local out
  out="$(curl -sS -o "$work/body" -c "$jar" -b "$jar" -w '%{http_code} %{redirect_url}' "$1")"
  status="${out%% *}"
  location="${out#* }"
}
# authorize [SCOPE]: starts a flow with fresh state/nonce/verifier; sets $state $nonce $verifier
authorize() {
  state="$(random_b64url 12)"; nonce="$(random_b64url 12)"; verifier="$(random_b64url 48)"
  local challenge; challenge="$(s256 "$verifier")"
  get "$auth_ep?response_type=code&client_id=$client_id&redirect_uri=$(urlenc "$redirect_uri")&scope=$(urlenc "${1:-openid email profile}")&state=$state&nonce=$nonce&code_challenge=$challenge&code_challenge_method=S256"
}
# token CODE VERIFIER basic|post -> token response in $work/token.json, HTTP status in $status
token() {
  local auth=(-u "$client_id:$client_secret")
  [ "$3" = post ] && auth=(--data-urlencode "client_id=$client_id" --data-urlencode "client_secret=$client_secret")
  status="$(curl -sS -o "$work/token.json" -w '%{http_code}' "${auth[@]}" \
    --data-urlencode grant_type=authorization_code --data-urlencode "code=$1" \
    --data-urlencode "redirect_uri=$redirect_uri" --data-urlencode "code_verifier=$2" "$token_ep")"
}
# callback_ok: $location is the redirect URI with our state, the issuer and a code; sets $code
callback_ok() {
  case "$location" in "$redirect_uri?"*) ;; *) return 1 ;; esac
  [ "$(query_param "$location" state)" = "$state" ] || return 1
  [ "$(query_param "$location" iss)" = "$issuer" ] || return 1
  code="$(query_param "$location" code)" || return 1
}

# --- 1: full login through the interaction shortcut ------------------------------------------------
authorize
check "authorization request redirects (303) to the interaction route" \
  test "$status ${location%/*}/" = "303 $issuer/interaction/"
interaction_url="$location"
get "$interaction_url"
check "interaction without ?sub= answers 400" test "$status" = 400
get "$interaction_url?sub=alice&amr=pwd,otp"
check "interaction ?sub=alice&amr=pwd,otp redirects (303) back into the flow (resume)" \
  test "$status ${location%/*}/" = "303 $auth_ep/"
get "$location"
check "resume redirects to $redirect_uri with the code, our state and iss (not followed)" \
  eval 'test "$status" = 303 && callback_ok'
code1="$code"; verifier1="$verifier"; nonce1="$nonce"

token "$code1" "$verifier1" basic
check "code exchanged with client_secret_basic + code_verifier (200)" test "$status" = 200
id_token="$(jget "$work/token.json" 'o.id_token')"
access_token="$(jget "$work/token.json" 'o.access_token')"
jwt_part "$id_token" 0 >"$work/idt.header.json"
jwt_part "$id_token" 1 >"$work/idt.payload.json"
echo "ID token header:  $(cat "$work/idt.header.json")"
echo "ID token payload: $(cat "$work/idt.payload.json")"
check "ID token: sub=alice, amr=[pwd,otp], our nonce, email=alice@example.test" \
  test "$(jget "$work/idt.payload.json" '[o.sub, o.amr, o.nonce, o.email]')" \
  = "[\"alice\",[\"pwd\",\"otp\"],\"$nonce1\",\"alice@example.test\"]"
check "ID token: iss=issuer, aud=client, RS256 with a kid" \
  test "$(jget "$work/idt.payload.json" '[o.iss, o.aud]')$(jget "$work/idt.header.json" '[o.alg, typeof o.kid]')" \
  = "[\"$issuer\",\"$client_id\"][\"RS256\",\"string\"]"
kid_before="$(jget "$work/idt.header.json" 'o.kid')"
curl -sS -f "$jwks_uri" -o "$work/jwks1.json"
check "JWKS serves the ID token's kid ($kid_before), public parts only" \
  test "$(jget "$work/jwks1.json" "[o.keys.some(k => k.kid === '$kid_before'), o.keys.some(k => 'd' in k)]")" = "[true,false]"
check "ID token signature verifies against the JWKS key" node -e '
  const crypto = require("crypto"); const fs = require("fs");
  const [h, p, s] = process.argv[1].split(".");
  const jwk = JSON.parse(fs.readFileSync(process.argv[2], "utf8")).keys.find(k => k.kid === process.argv[3]);
  const ok = crypto.verify("RSA-SHA256", Buffer.from(h + "." + p), crypto.createPublicKey({ key: jwk, format: "jwk" }), Buffer.from(s, "base64url"));
  process.exit(ok ? 0 : 1);
' -- "$id_token" "$work/jwks1.json" "$kid_before"

userinfo="$(curl -sS -H "Authorization: Bearer $access_token" "$userinfo_ep")"
check "userinfo with the access token: sub=alice, email=alice@example.test" \
  test "$(echo "$userinfo" | jget /dev/stdin '[o.sub, o.email]')" = '["alice","alice@example.test"]'

# --- 2: second sign-in rides on the provider's session cookie; wrong verifier; client_secret_post --
authorize
check "second authorization: session cookie signs in directly (303 to the redirect URI, no interaction)" \
  eval 'test "$status" = 303 && callback_ok'
token "$code" "wrong-verifier-$(random_b64url 40)" basic
check "wrong code_verifier refused: HTTP 400 invalid_grant" \
  test "$status $(jget "$work/token.json" 'o.error')" = "400 invalid_grant"
token "$code" "" basic
check "missing code_verifier refused: HTTP 400 invalid_grant" \
  test "$status $(jget "$work/token.json" 'o.error')" = "400 invalid_grant"
token "$code" "$verifier" post
check "same code with the right verifier and client_secret_post (200), nonce of this flow" \
  eval 'test "$status" = 200 && test "$(jwt_part "$(jget "$work/token.json" o.id_token)" 1 | jget /dev/stdin "o.nonce")" = "$nonce"'

# --- replay of the first code ------------------------------------------------------------------------
token "$code1" "$verifier1" basic
check "replayed code refused: HTTP 400 invalid_grant" \
  test "$status $(jget "$work/token.json" 'o.error')" = "400 invalid_grant"
check "the replay also revoked the grant: the first access token is refused at userinfo (401)" \
  test "$(curl -sS -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $access_token" "$userinfo_ep")" = 401

# --- requests without PKCE or with plain PKCE are refused -----------------------------------------
get "$auth_ep?response_type=code&client_id=$client_id&redirect_uri=$(urlenc "$redirect_uri")&scope=openid&state=s1&nonce=n1"
check "authorization request without code_challenge refused (invalid_request to the redirect URI)" \
  eval 'test "$(query_param "$location" error)" = invalid_request'
get "$auth_ep?response_type=code&client_id=$client_id&redirect_uri=$(urlenc "$redirect_uri")&scope=openid&state=s1&nonce=n1&code_challenge=$(random_b64url 32)&code_challenge_method=plain"
check "authorization request with code_challenge_method=plain refused" \
  eval 'test -n "$(query_param "$location" error)"'

# --- 3: key rotation ---------------------------------------------------------------------------------
curl -sS -f -X POST "$issuer/test/rotate-keys" -o "$work/rotate.json"
echo "rotate-keys answered: $(cat "$work/rotate.json")"
new_kid="$(jget "$work/rotate.json" 'o.kid')"
check "POST /test/rotate-keys answers a new kid" eval 'test -n "$new_kid" && test "$new_kid" != "$kid_before"'
curl -sS -f "$jwks_uri" -o "$work/jwks2.json"
check "JWKS now serves the new kid first and still the previous one" \
  test "$(jget "$work/jwks2.json" "[o.keys.find(k => k.alg === 'RS256').kid, o.keys.some(k => k.kid === '$kid_before')]")" \
  = "[\"$new_kid\",true]"
authorize
check "after rotation (and the revoked grant) the session needs consent only: interaction again" \
  test "$status ${location%/*}/" = "303 $issuer/interaction/"
get "$location?sub=alice"
get "$location"
check "consent via the shortcut, then the code at the redirect URI" eval 'test "$status" = 303 && callback_ok'
token "$code" "$verifier" basic
check "ID token after rotation is signed with the new kid" \
  eval 'test "$status" = 200 && test "$(jwt_part "$(jget "$work/token.json" o.id_token)" 0 | jget /dev/stdin o.kid)" = "$new_kid"'

# --- another client: ES256 ID tokens, another account, acr, default amr, no email scope ------------
client_id="smoke-es256"
authorize openid
get "$location?sub=bob&acr=urn:custos:test:mfa"
get "$location"
check "ES256 client, same cookie jar: bob replaces alice (interaction ?sub=bob&acr=...), code at the redirect URI" \
  eval 'test "$status" = 303 && callback_ok'
token "$code" "$verifier" post
id_token="$(jget "$work/token.json" 'o.id_token')"
jwt_part "$id_token" 0 >"$work/idt.header.json"
jwt_part "$id_token" 1 >"$work/idt.payload.json"
echo "ES256 ID token header:  $(cat "$work/idt.header.json")"
echo "ES256 ID token payload: $(cat "$work/idt.payload.json")"
check "ES256 ID token: alg ES256, kid of the current generation, sub=bob, amr=[pwd] (default), acr, no email without the email scope" \
  test "$(jget "$work/idt.header.json" '[o.alg, o.kid]')$(jget "$work/idt.payload.json" '[o.sub, o.amr, o.acr, "email" in o, o.aud]')" \
  = "[\"ES256\",\"$(jget "$work/rotate.json" 'o.kids.ES256')\"][\"bob\",[\"pwd\"],\"urn:custos:test:mfa\",false,\"smoke-es256\"]"
curl -sS -f "$jwks_uri" -o "$work/jwks2.json"
check "ES256 ID token signature verifies against the JWKS key" node -e '
  const crypto = require("crypto"); const fs = require("fs");
  const [h, p, s] = process.argv[1].split(".");
  const jwk = JSON.parse(fs.readFileSync(process.argv[2], "utf8")).keys.find(k => k.kid === process.argv[3]);
  const ok = crypto.verify("sha256", Buffer.from(h + "." + p), { key: crypto.createPublicKey({ key: jwk, format: "jwk" }), dsaEncoding: "ieee-p1363" }, Buffer.from(s, "base64url"));
  process.exit(ok ? 0 : 1);
' -- "$id_token" "$work/jwks2.json" "$(jget "$work/idt.header.json" 'o.kid')"

curl -sS -f -X POST "$issuer/test/rotate-keys?keep_old=0" -o "$work/rotate2.json"
curl -sS -f "$jwks_uri" -o "$work/jwks3.json"
check "rotate-keys?keep_old=0: JWKS holds only the newest generation" \
  test "$(jget "$work/jwks3.json" "[o.keys.length, o.keys[0].kid === '$(jget "$work/rotate2.json" 'o.kid')', o.keys.some(k => k.kid === '$new_kid')]")" = "[3,true,false]"

# --- stdout stayed one line ---------------------------------------------------------------------------
check "server wrote exactly one line to stdout" test "$(wc -l <"$work/server.out")" = 1
finish
