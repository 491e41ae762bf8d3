#!/usr/bin/env bash
# A/B two gateway builds with run.sh, alternating (A B A B ...), each run with
# its own bare-parse rounds so every sluice figure has a same-sitting ratio.
#
#   bash bench/load/compare.sh /tmp/sluice-base /tmp/sluice-fix [PAIRS]
#
# Shorter phases than a full run.sh by default (override with the same
# environment knobs): PHASES="ingest rate e2e" ROUNDS=2 DURATION=10
# RATE_DURATION=10 E2E_DURATION=20. Needs sluice-loadgen and bare-parse
# built (cargo build --release -p sluice-loadgen); results go to
# bench/load/out/compare-<timestamp>/{A,B}-<n>/ and a table on stdout.
set -euo pipefail

A=${1:?usage: compare.sh SLUICE_BIN_A SLUICE_BIN_B [PAIRS]}
B=${2:?usage: compare.sh SLUICE_BIN_A SLUICE_BIN_B [PAIRS]}
PAIRS=${3:-2}
HERE=$(cd "$(dirname "$0")" && pwd)
OUT=${OUT:-$HERE/out/compare-$(date +%Y%m%d-%H%M%S)}
mkdir -p "$OUT"
export SKIP_BUILD=1
export PHASES=${PHASES:-"ingest rate e2e"} ROUNDS=${ROUNDS:-2} DURATION=${DURATION:-10}
export RATE_DURATION=${RATE_DURATION:-10} E2E_DURATION=${E2E_DURATION:-20} WARMUP=${WARMUP:-2}

for ((i = 1; i <= PAIRS; i++)); do
    for side in A B; do
        bin=$A
        [[ $side == B ]] && bin=$B
        echo "== $side-$i: $bin" >&2
        SLUICE_BIN=$bin OUT="$OUT/$side-$i" bash "$HERE/run.sh" >/dev/null 2>>"$OUT/stderr.txt"
    done
done

{
    echo "| run | sluice req/s (median of rounds) | bare req/s | sluice/bare (median) | p99 ms at half rate | e2e accepted ev/s | e2e delivered ev/s |"
    echo "|---|---|---|---|---|---|---|"
} | tee "$OUT/table.md"
for dir in "$OUT"/[AB]-*; do
    runs=$dir/runs.jsonl
    med() { jq -r "select(.label | startswith(\"$1\")) | .rps" "$runs" | sort -n | awk '{a[NR] = $1} END {print a[int((NR + 1) / 2)]}'; }
    s=$(med sluice-r)
    b=$(med bare-r)
    ratio=$(grep -o 'Median paired ratio sluice/bare: \*\*[.0-9]*' "$dir/summary.md" | grep -o '[.0-9]*$' || echo -)
    p99=$(jq -r 'select(.label == "sluice-half-rate") | .p99_ms' "$runs" || true)
    e2e=$(jq -r 'select(.label | startswith("e2e")) | .eps_accepted' "$runs")
    deliv=$(grep -A4 "^## End to end" "$dir/summary.md" | tail -1 | awk -F'|' '{print $7}' | tr -d ' ' || true)
    echo "| $(basename "$dir") | ${s:--} | ${b:--} | ${ratio:--} | ${p99:--} | ${e2e:--} | ${deliv:--} |"
done | tee -a "$OUT/table.md"
