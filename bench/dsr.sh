#!/usr/bin/env bash
# Data subject request figures: erasure latency (10 and N records), anonymize and aggregate
# time for N records, and export throughput and peak RSS for N records (JSON, CSV, PDF).
#
#   bench/dsr.sh                 # N = 100000, 3 runs per case, medians in the table
#   DSR_N=20000 DSR_RUNS=1 bench/dsr.sh
#
# Runs the example `crates/custos-core/examples/dsr_bench.rs` (release build) once per case;
# each case builds its own deployment in a temporary directory (SQLite store, local KMS,
# SQLite key store, objects on disk), loads the records through `Custos::create_records`, and
# prints `RESULT key=value ...` lines that this script gathers into a table (median, min, max
# over the runs). The full output of every case is kept in $DSR_LOG_DIR.
#
# Targets: erasure "unreadable" (the `delete` key slots destroyed) < 50 ms; export peak RSS
# < 100 MB (10^6 bytes). Exit status: 0 if every target is met, 1 if one is missed, 2 on
# setup errors.
#
# Environment:
#   DSR_N             records per subject for the large cases (default 100000)
#   DSR_RUNS          runs (subjects) per case (default 3)
#   DSR_CASES         which cases (default "erase-small erase anonymize aggregate export")
#   DSR_BIN           use this binary instead of building
#   CARGO_TARGET_DIR  where cargo builds (default <repo>/target)
#   CUSTOS_BENCH_DIR  where the temporary deployments go (default the system temp dir)
#   DSR_LOG_DIR       where each case's output goes (default a new temp dir)

set -euo pipefail

N=${DSR_N:-100000}
RUNS=${DSR_RUNS:-3}
CASES=${DSR_CASES:-"erase-small erase anonymize aggregate export"}
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
LOGS=${DSR_LOG_DIR:-$(mktemp -d -t custos-dsr-XXXXXX)}
mkdir -p "$LOGS"

say() { printf '%s\n' "$*" >&2; }
die() { say "dsr: $*"; exit 2; }

if [[ -n ${DSR_BIN:-} ]]; then
    BIN=$DSR_BIN
else
    command -v cargo >/dev/null || die "cargo not found; set DSR_BIN"
    say "building the example (release)..."
    (cd "$ROOT" && CARGO_TARGET_DIR=$TARGET cargo build --release -q -p custos-core \
        --example dsr_bench) || die "build failed"
    BIN=$TARGET/release/examples/dsr_bench
fi
[[ -x $BIN ]] || die "no binary at $BIN"

run_case() {
    local name=$1; shift
    say "== $name: dsr_bench $* --runs $RUNS"
    "$BIN" "$@" --runs "$RUNS" | tee "$LOGS/$name.log" >&2 || die "case $name failed (see $LOGS/$name.log)"
}

for c in $CASES; do
    case $c in
        erase-small) run_case "$c" erase 10 ;;
        erase) run_case "$c" erase "$N" ;;
        anonymize) run_case "$c" anonymize "$N" ;;
        aggregate) run_case "$c" aggregate "$N" ;;
        export) run_case "$c" export "$N" ;;
        *) die "unknown case $c" ;;
    esac
done

# One row per (case, records, format, metric): median, min, max over the runs, target, verdict.
cat "$LOGS"/*.log | grep '^RESULT ' | awk '
function median(list,    v, n, i, j, t) {
    n = split(list, v, " ")
    for (i = 2; i <= n; i++) for (j = i; j > 1 && v[j-1] + 0 > v[j] + 0; j--) {
        t = v[j]; v[j] = v[j-1]; v[j-1] = t
    }
    lo = v[1]; hi = v[n]
    return (n % 2) ? v[(n + 1) / 2] : (v[n/2] + v[n/2 + 1]) / 2
}
{
    delete kv
    for (i = 2; i <= NF; i++) { split($i, p, "="); kv[p[1]] = p[2] }
    label = kv["case"] (kv["format"] != "" ? " " kv["format"] : "")
    metrics = (kv["case"] == "export") ? "records_per_s peak_rss_mb secs" \
        : (kv["case"] == "erase") ? "keys_destroyed_ms total_ms" : "total_ms dispose_ms records_per_s"
    m = split(metrics, names, " ")
    for (k = 1; k <= m; k++) {
        key = label SUBSEP kv["n"] SUBSEP names[k]
        if (!(key in vals)) order[++rows] = key
        vals[key] = vals[key] " " kv[names[k]]
        runs[key]++
    }
}
END {
    printf "%-12s %8s %-18s %12s %12s %12s %5s  %-10s %s\n", \
        "case", "records", "metric", "median", "min", "max", "runs", "target", "met"
    bad = 0
    for (r = 1; r <= rows; r++) {
        split(order[r], f, SUBSEP)
        med = median(vals[order[r]])
        target = ""; met = ""
        if (f[3] == "keys_destroyed_ms") { target = "< 50 ms"; met = (med < 50) ? "yes" : "NO" }
        if (f[3] == "peak_rss_mb" && f[1] == "export json") {
            target = "< 100 MB"; met = (med < 100) ? "yes" : "NO"
        }
        if (met == "NO") bad = 1
        printf "%-12s %8s %-18s %12.2f %12.2f %12.2f %5d  %-10s %s\n", \
            f[1], f[2], f[3], med, lo, hi, runs[order[r]], target, met
    }
    exit bad
}' && status=0 || status=$?
say "logs: $LOGS"
exit $status
