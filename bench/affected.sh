#!/usr/bin/env bash
# An incident's affected subjects over a large audit log: time and peak memory of
# `GET /v1/incidents/{id}/affected`'s computation (`Custos::incident_affected`).
#
#   bench/affected.sh                       # 10,000,000 events, 3 runs per scope
#   AFFECTED_N=1000000 AFFECTED_RUNS=1 bench/affected.sh
#
# Runs the example `crates/custos-core/examples/affected_bench.rs` (release build): once to
# generate a deployment whose log holds N events (60% disclosing: reads, reveals, downloads,
# exports by 1,000 members of two orgs over 100,000 subjects; the rest writes, sign-ins, LLM
# calls), then once per run and scope in a fresh process: `actor` (an incident naming one
# member) and `all` (every actor: every disclosing event in the log is counted). Prints a
# table of medians (and min/max) of seconds and peak RSS.
#
# Targets: under 10 s and under 200 MB for N = 10,000,000, every scope. Exit status: 0 if
# every target is met, 1 if one is missed, 2 on setup errors.
#
# Environment:
#   AFFECTED_N         events to generate (default 10000000)
#   AFFECTED_RUNS      runs per scope (default 3)
#   AFFECTED_DIR       keep the generated deployment here and reuse it when it holds at least
#                      N events (default: a new temp dir, removed at the end)
#   AFFECTED_BIN       use this binary instead of building
#   CARGO_TARGET_DIR   where cargo builds (default <repo>/target)

set -euo pipefail

N=${AFFECTED_N:-10000000}
RUNS=${AFFECTED_RUNS:-3}
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
MAX_SECONDS=10
MAX_MB=200

say() { printf '%s\n' "$*" >&2; }
die() { say "affected: $*"; exit 2; }

if [[ -n ${AFFECTED_BIN:-} ]]; then
    BIN=$AFFECTED_BIN
else
    (cd "$ROOT" && cargo build --release --quiet -p custos-core --example affected_bench) ||
        die "cargo build failed"
    BIN=$TARGET/release/examples/affected_bench
fi
[[ -x $BIN ]] || die "no binary at $BIN"

if [[ -n ${AFFECTED_DIR:-} ]]; then
    DATA=$AFFECTED_DIR
else
    DATA=$(mktemp -d -t custos-affected-XXXXXX)
    trap 'rm -rf "$DATA"' EXIT
fi

if [[ ! -f $DATA/generated ]] || (($(cat "$DATA/generated") < N)); then
    rm -rf "$DATA" && mkdir -p "$DATA"
    say "generating $N audit events in $DATA"
    "$BIN" generate "$DATA" "$N" >"$DATA/generate.out" || die "generation failed"
    grep '^RESULT' "$DATA/generate.out" >&2
    echo "$N" >"$DATA/generated"
fi

# median / min / max of numbers on stdin
stats() { sort -g | awk '{v[NR]=$1} END {m=(NR%2)?v[(NR+1)/2]:(v[NR/2]+v[NR/2+1])/2; printf "%s %s %s\n", m, v[1], v[NR]}'; }
field() { sed -n "s/.* $1=\([^ ]*\).*/\1/p"; }

missed=0
printf '| scope | events | subjects | records | seconds (median, min-max) | peak RSS MB (median, min-max) |\n'
printf '| --- | --- | --- | --- | --- | --- |\n'
for scope in actor all; do
    out=$(for _ in $(seq "$RUNS"); do "$BIN" measure "$DATA" "$scope" | grep '^RESULT'; done) ||
        die "measuring $scope failed"
    read -r s_med s_min s_max < <(field seconds <<<"$out" | stats)
    read -r m_med m_min m_max < <(field peak_rss_mb <<<"$out" | stats)
    first=$(head -1 <<<"$out")
    printf '| %s | %s | %s | %s | %s (%s-%s) | %s (%s-%s) |\n' "$scope" \
        "$(field events <<<"$first")" "$(field subjects <<<"$first")" \
        "$(field records <<<"$first")" "$s_med" "$s_min" "$s_max" "$m_med" "$m_min" "$m_max"
    if awk -v s="$s_med" -v m="$m_med" -v ms="$MAX_SECONDS" -v mm="$MAX_MB" \
        'BEGIN {exit !(s >= ms || m >= mm)}'; then
        missed=1
    fi
done
if ((missed)); then
    say "affected: a target (< ${MAX_SECONDS} s, < ${MAX_MB} MB) was missed"
    exit 1
fi
say "affected: every scope under ${MAX_SECONDS} s and ${MAX_MB} MB"
