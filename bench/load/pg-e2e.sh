#!/usr/bin/env bash
# End-to-end durable ingest on one node, PostgreSQL store against SQLite, in
# one sitting: `sluice serve` (release build) delivering to `sluice emulate`,
# batched requests from sluice-loadgen, backends alternating each round.
#
#   bash bench/load/pg-e2e.sh                # 2 rounds x 30 s per backend
#   ROUNDS=3 DURATION=60 bash bench/load/pg-e2e.sh
#
# Knobs: ROUNDS=2 DURATION=30 BATCH=100 CONNS=8 GEN_THREADS=2 SKIP_BUILD=1 BIN=dir
# PG_URL (default postgres://postgres@127.0.0.1:5432/test?sslmode=disable).
# Each PostgreSQL run gets a fresh schema, dropped afterwards; each SQLite run a
# fresh data dir. Prints one JSON line per run and a summary table.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"
ROUNDS=${ROUNDS:-2}
DURATION=${DURATION:-30}
BATCH=${BATCH:-100}
CONNS=${CONNS:-8}
GEN_THREADS=${GEN_THREADS:-2}
PG_URL=${PG_URL:-postgres://postgres@127.0.0.1:5432/test?sslmode=disable}
EMU_PORT=${EMU_PORT:-4391}
SLUICE_PORT=${SLUICE_PORT:-8381}
BIN=${BIN:-$ROOT/target/release}
TMP=$(mktemp -d "${TMPDIR:-/tmp}/sluice-pg-e2e.XXXXXX")
PIDS=()
SCHEMAS=()

cleanup() {
    local pid schema
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    sleep 0.5
    for pid in "${PIDS[@]}"; do kill -9 "$pid" 2>/dev/null || true; done
    for schema in "${SCHEMAS[@]}"; do
        psql "$PG_URL" -qc "SET statement_timeout = 0; DROP SCHEMA IF EXISTS $schema CASCADE" \
            >/dev/null 2>&1 || true
    done
    rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if [[ "${SKIP_BUILD:-0}" != 1 ]]; then
    cargo build --release -q -p sluice -p sluice-loadgen
fi

# shellcheck source=bench/load/lib.sh
source "$ROOT/bench/load/lib.sh"
for p in "$EMU_PORT" "$SLUICE_PORT"; do
    port_free "$p" || { echo "port $p is in use; set EMU_PORT/SLUICE_PORT" >&2; exit 1; }
done

"$BIN/sluice" emulate --listen "127.0.0.1:$EMU_PORT" --max-events 10000 >"$TMP/emulate.log" 2>&1 &
PIDS+=($!)
wait_http "http://127.0.0.1:$EMU_PORT/_emulator/stats" 20

# run BACKEND ROUND -> one JSON line
run() {
    local backend=$1 round=$2 store_args=()
    if [[ $backend == postgres ]]; then
        local schema="sluice_bench_e2e_$$_$round"
        SCHEMAS+=("$schema")
        store_args=(--store "$PG_URL")
        export SLUICE_STORE__SCHEMA=$schema
    else
        unset SLUICE_STORE__SCHEMA
    fi
    SLUICE_LOG=warn "$BIN/sluice" serve --listen "127.0.0.1:$SLUICE_PORT" \
        --data-dir "$TMP/data-$backend-$round" --graph-url "http://127.0.0.1:$EMU_PORT" \
        "${store_args[@]}" >"$TMP/serve-$backend-$round.log" 2>&1 &
    local pid=$!
    PIDS+=("$pid")
    wait_http "http://127.0.0.1:$SLUICE_PORT/healthz" 30
    kill -0 "$pid" || { echo "sluice serve ($backend) exited:" >&2; cat "$TMP/serve-$backend-$round.log" >&2; exit 1; }
    local d0 t0 line d1 t1 drained=no i
    d0=$(emu_events)
    t0=$(date +%s.%N)
    line=$("$BIN/sluice-loadgen" --url "http://127.0.0.1:$SLUICE_PORT/v1/events" \
        --label "e2e-$backend" -t "$GEN_THREADS" -c "$CONNS" -d "$DURATION" --warmup 2 \
        --batch "$BATCH" --timeout 30 2>>"$TMP/loadgen.stderr")
    for ((i = 0; i < 120; i++)); do
        [[ "$(queue_depth)" == 0 ]] && { drained=yes; break; }
        sleep 1
    done
    d1=$(emu_events)
    t1=$(date +%s.%N)
    kill "$pid"
    wait "$pid" 2>/dev/null || true
    # run() runs in a command substitution, so its schema is dropped here:
    # the SCHEMAS list it added to does not reach the parent's clean-up.
    if [[ $backend == postgres ]]; then
        psql "$PG_URL" -qc "SET statement_timeout = 0; DROP SCHEMA IF EXISTS $schema CASCADE" \
            >/dev/null 2>&1 || true
    fi
    jq -c --arg b "$backend" --argjson r "$round" --arg drained "$drained" \
        --argjson delivered "$((d1 - d0))" \
        --argjson secs "$(echo "$t1 - $t0" | bc)" \
        '{backend: $b, round: $r, eps_accepted, p50_ms, p99_ms, delivered: $delivered,
          delivered_per_s_incl_drain: ($delivered / $secs | floor), drained: $drained}' <<<"$line"
}

echo "pg-e2e: $ROUNDS rounds x ${DURATION}s per backend, batches of $BATCH, $CONNS connections;" \
    "load average $(cut -d' ' -f1-3 /proc/loadavg)" >&2
RESULTS=()
for ((r = 0; r < ROUNDS; r++)); do
    if ((r % 2 == 0)); then order=(sqlite postgres); else order=(postgres sqlite); fi
    for b in "${order[@]}"; do
        line=$(run "$b" "$r")
        echo "$line"
        RESULTS+=("$line")
    done
done
echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
printf '%s\n' "${RESULTS[@]}" | jq -rs '
  group_by(.backend)[] |
  "\(.[0].backend): accepted ev/s per round \([.[].eps_accepted | floor] | join(" / ")), p99 ms \([.[].p99_ms] | join(" / ")), drained \([.[].drained] | join(" / "))"'
