#!/usr/bin/env bash
# Installs the pinned OpenID provider (oidc-provider, see package-lock.json) into DIR:
#
#   tools/oidc-provider/install.sh DIR        (tests use DIR = target/oidc-provider)
#
# DIR gets package.json, package-lock.json and server.mjs copied from here and node_modules/
# from `npm ci`, so the repository tree stays clean. Start the provider with
#   node DIR/server.mjs
# Idempotent: npm ci is skipped when DIR/node_modules/oidc-provider already has the pinned
# version and the lock file is unchanged; server.mjs is always refreshed. Safe to run
# concurrently (flock on DIR.lock). Exits non-zero with a message when node/npm are missing
# or the install fails.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
if [ $# -ne 1 ] || [ -z "$1" ]; then
  echo "usage: $0 DIR   (e.g. target/oidc-provider)" >&2
  exit 2
fi
dir="$1"

die() {
  echo "oidc-provider install: $*" >&2
  exit 1
}

command -v node >/dev/null 2>&1 || die "node is not installed (Node.js 20+ needed; apt-get install -y nodejs npm)"
command -v npm >/dev/null 2>&1 || die "npm is not installed (apt-get install -y npm)"
node_major="$(node -p 'process.versions.node.split(".")[0]')"
[ "$node_major" -ge 20 ] || die "node $(node --version) is too old: oidc-provider 9 needs Node.js 20 or later"

pinned="$(node -e '
  const lock = require(process.argv[1]);
  const v = lock.packages && lock.packages["node_modules/oidc-provider"];
  if (!v) process.exit(1);
  process.stdout.write(v.version);
' "$here/package-lock.json")" || die "cannot read the pinned oidc-provider version from $here/package-lock.json"

mkdir -p "$dir"
dir="$(cd "$dir" && pwd)"
exec 9>"$dir.lock"
flock 9

installed="$(node -e '
  try { process.stdout.write(require(process.argv[1]).version); } catch { }
' "$dir/node_modules/oidc-provider/package.json")"

if [ "$installed" = "$pinned" ] && cmp -s "$here/package-lock.json" "$dir/package-lock.json"; then
  echo "oidc-provider install: oidc-provider $pinned already in $dir/node_modules" >&2
else
  cp "$here/package.json" "$here/package-lock.json" "$dir/"
  echo "oidc-provider install: npm ci (oidc-provider $pinned) in $dir" >&2
  (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error >&2) \
    || die "npm ci failed in $dir (is the npm registry reachable?)"
  installed="$(node -e 'process.stdout.write(require(process.argv[1]).version)' \
    "$dir/node_modules/oidc-provider/package.json")"
  [ "$installed" = "$pinned" ] || die "installed oidc-provider $installed, expected $pinned"
fi

# Refresh the server script every time (cheap, and picks up edits to server.mjs).
cp "$here/server.mjs" "$dir/server.mjs.tmp"
mv "$dir/server.mjs.tmp" "$dir/server.mjs"
flock -u 9
echo "oidc-provider install: ready: node $dir/server.mjs" >&2
