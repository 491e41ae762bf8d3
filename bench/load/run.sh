#!/usr/bin/env bash
# Gateway load test: `sluice serve` (durable SQLite queue) delivering to
# `sluice emulate`, compared in the same run with `bare-parse` (an axum
# endpoint that only reads and parses the same body).
#
#   bash bench/load/run.sh                 # everything (~15-25 min on the 2-vCPU box)
#   PHASES="ingest rate" bash bench/load/run.sh
#
# Phases (each bounded in time, all processes killed on exit):
#   ingest   ROUNDS x (bare-parse, then sluice), single-event requests, closed
#            loop, CONNS connections, DURATION s each: req/s, p50/p99, ratio.
#   rate     sluice at half of its best closed-loop rate (fixed-rate,
#            latency from the schedule): p50/p99.
#   idle     RSS of sluice once its queue is empty and it has been idle.
#   e2e      batched requests (E2E_BATCH events each) for E2E_DURATION s:
#            events/s accepted, events/s delivered to the emulator, RSS.
#   backlog  emulator answers 503; enqueue BACKLOG_EVENTS (bounded by
#            BACKLOG_MAX_S); clear the fault; drain for at most DRAIN_MAX_S,
#            sampling queue depth, delivered events and RSS.
#
# Knobs (environment): ROUNDS=3 DURATION=15 WARMUP=3 CONNS=64 GEN_THREADS=2
# RATE_DURATION=20 RATE_RPS= (fixed rate instead of half the best) E2E_DURATION=60 E2E_BATCH=100 E2E_CONNS=8
# BACKLOG_EVENTS=2000000 BACKLOG_MAX_S=420 DRAIN_MAX_S=600 AFTER_IDLE_S=15 (idle wait after the drain)
# BATCH_SIZE=1000 LINGER_MS=100 CONCURRENCY=4 SYNCHRONOUS=full
# SKIP_BUILD=1 (use the binaries already built) KEEP=1 (keep the temp dir)
# SLUICE_BIN=path (the gateway binary to test; default the one just built)
# TMPDIR=/dev/shm (puts the queue on tmpfs: a diagnostic, not durable)
# OUT=dir (results; default bench/load/out/<timestamp>)
#
# Results: $OUT/*.jsonl (one JSON line per load run), $OUT/samples-*.tsv
# (time, RSS, queue depth, delivered), $OUT/summary.md (the tables).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"

ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-15}
WARMUP=${WARMUP:-3}
CONNS=${CONNS:-64}
GEN_THREADS=${GEN_THREADS:-2}
RATE_DURATION=${RATE_DURATION:-20}
E2E_DURATION=${E2E_DURATION:-60}
E2E_BATCH=${E2E_BATCH:-100}
E2E_CONNS=${E2E_CONNS:-8}
BACKLOG_EVENTS=${BACKLOG_EVENTS:-2000000}
BACKLOG_MAX_S=${BACKLOG_MAX_S:-420}
DRAIN_MAX_S=${DRAIN_MAX_S:-600}
BATCH_SIZE=${BATCH_SIZE:-1000}
LINGER_MS=${LINGER_MS:-100}
CONCURRENCY=${CONCURRENCY:-4}
SYNCHRONOUS=${SYNCHRONOUS:-full}
PHASES=${PHASES:-"ingest rate idle e2e backlog"}
EMU_PORT=${EMU_PORT:-4191}
SLUICE_PORT=${SLUICE_PORT:-8181}
BARE_PORT=${BARE_PORT:-8191}
PIXEL=1234567890123456

OUT=${OUT:-$ROOT/bench/load/out/$(date +%Y%m%d-%H%M%S)}
mkdir -p "$OUT"
TMP=$(mktemp -d "${TMPDIR:-/tmp}/sluice-load.XXXXXX")
PIDS=()

cleanup() {
    local pid
    for pid in "${PIDS[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    sleep 0.5
    for pid in "${PIDS[@]}"; do
        kill -9 "$pid" 2>/dev/null || true
    done
    if [[ "${KEEP:-0}" != 1 ]]; then
        rm -rf "$TMP"
    else
        echo "kept $TMP" >&2
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

log() { printf '[%(%H:%M:%S)T] %s\n' -1 "$*" | tee -a "$OUT/log.txt" >&2; }
has_phase() { [[ " $PHASES " == *" $1 "* ]]; }

# --- tools ------------------------------------------------------------------
if ! command -v jq >/dev/null 2>&1; then
    log "installing jq"
    apt-get update -qq && apt-get install -y -qq jq >/dev/null
fi
command -v curl >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq curl >/dev/null; }

# --- build ------------------------------------------------------------------
BIN=${CARGO_TARGET_DIR:-$ROOT/target}/release
if [[ "${SKIP_BUILD:-0}" != 1 ]]; then
    log "building release binaries (sluice, sluice-loadgen, bare-parse)"
    cargo build --release -q -p sluice -p sluice-loadgen
fi
for b in sluice sluice-loadgen bare-parse; do
    [[ -x "$BIN/$b" ]] || { echo "missing $BIN/$b" >&2; exit 1; }
done
LOADGEN="$BIN/sluice-loadgen"
# The gateway under test (another build can be compared with SLUICE_BIN=...).
SLUICE_BIN=${SLUICE_BIN:-$BIN/sluice}

# --- helpers ----------------------------------------------------------------
# shellcheck source=bench/load/lib.sh
source "$ROOT/bench/load/lib.sh"
rss_kb() { awk '/^VmRSS/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }
anon_kb() { awk '/^RssAnon/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }
hwm_kb() { awk '/^VmHWM/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null || echo 0; }
# Samples "t rss_kb queue_depth emulator_events rss_anon_kb" every $2 s into $1 until killed.
sampler() {
    local file=$1 every=$2
    echo -e "t_s\trss_kb\tqueue_depth\tdelivered\trss_anon_kb" >"$file"
    local t0
    t0=$(date +%s.%N)
    while kill -0 "$SLUICE_PID" 2>/dev/null; do
        printf '%.1f\t%s\t%s\t%s\t%s\n' "$(echo "$(date +%s.%N) - $t0" | bc)" \
            "$(rss_kb "$SLUICE_PID")" "$(queue_depth || echo -1)" "$(emu_events || echo -1)" \
            "$(anon_kb "$SLUICE_PID")" >>"$file"
        sleep "$every"
    done
}
start_sampler() { sampler "$1" "$2" & SAMPLER_PID=$!; PIDS+=("$SAMPLER_PID"); }
stop_sampler() { kill "$SAMPLER_PID" 2>/dev/null || true; wait "$SAMPLER_PID" 2>/dev/null || true; }
# Waits (at most $1 s) for the queue to be empty.
wait_drained() {
    local i
    for ((i = 0; i < $1; i++)); do
        [[ "$(queue_depth)" == 0 ]] && return 0
        sleep 1
    done
    return 1
}
# loadgen label url [args...] -> appends a JSON line to $OUT/runs.jsonl, echoes it.
load() {
    local label=$1 url=$2
    shift 2
    local line
    line=$("$LOADGEN" --url "$url" --label "$label" -t "$GEN_THREADS" "$@" 2>>"$OUT/loadgen.stderr")
    echo "$line" >>"$OUT/runs.jsonl"
    echo "$line"
}
j() { jq -r "$1" <<<"$2"; }

for p in "$EMU_PORT" "$SLUICE_PORT" "$BARE_PORT"; do
    port_free "$p" || { echo "port $p is in use; set EMU_PORT/SLUICE_PORT/BARE_PORT" >&2; exit 1; }
done

# --- start the servers ------------------------------------------------------
log "output: $OUT  temp: $TMP"
"$BIN/sluice" emulate --listen "127.0.0.1:$EMU_PORT" --max-events 10000 >"$TMP/emulate.log" 2>&1 &
EMU_PID=$!
PIDS+=("$EMU_PID")
"$BIN/bare-parse" --listen "127.0.0.1:$BARE_PORT" >"$TMP/bare.log" 2>&1 &
BARE_PID=$!
PIDS+=("$BARE_PID")
SLUICE_LOG=warn \
    SLUICE_DELIVERY__BATCH_SIZE=$BATCH_SIZE \
    SLUICE_DELIVERY__LINGER_MS=$LINGER_MS \
    SLUICE_DELIVERY__CONCURRENCY_PER_PIXEL=$CONCURRENCY \
    SLUICE_DELIVERY__BACKOFF_MAX_MS=5000 \
    SLUICE_STORE__SYNCHRONOUS=$SYNCHRONOUS \
    "$SLUICE_BIN" serve --listen "127.0.0.1:$SLUICE_PORT" --data-dir "$TMP/data" \
    --graph-url "http://127.0.0.1:$EMU_PORT" >"$TMP/serve.log" 2>&1 &
SLUICE_PID=$!
PIDS+=("$SLUICE_PID")
wait_http "http://127.0.0.1:$EMU_PORT/_emulator/stats" 20
wait_http "http://127.0.0.1:$SLUICE_PORT/healthz" 20
for ((i = 0; i < 100; i++)); do
    curl -sf -o /dev/null -X POST -d '{}' "http://127.0.0.1:$BARE_PORT/v1/events" && break
    sleep 0.1
done
sleep 2
RSS_START_KB=$(rss_kb "$SLUICE_PID")
log "sluice pid $SLUICE_PID, RSS at start (idle, empty queue): ${RSS_START_KB} kB"
SLUICE_URL="http://127.0.0.1:$SLUICE_PORT/v1/events"
BARE_URL="http://127.0.0.1:$BARE_PORT/v1/events"

{
    echo "# sluice load run $(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo
    echo "commit $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')$(git -C "$ROOT" diff --quiet 2>/dev/null || echo ' (dirty tree)'),"
    echo "$(nproc) CPUs, load average at start: $(cut -d' ' -f1-3 /proc/loadavg)."
    echo "sluice: $SLUICE_BIN, zero-config, --graph-url emulator, store.synchronous=$SYNCHRONOUS, data dir under $(dirname "$TMP"),"
    echo "delivery batch_size=$BATCH_SIZE linger_ms=$LINGER_MS concurrency_per_pixel=$CONCURRENCY backoff_max_ms=5000."
    echo "Generator: sluice-loadgen, $GEN_THREADS threads, bodies ~1.5 KB (raw PII website Purchase, unique event_id)."
    echo
    echo "RSS at start (idle, empty queue): $((RSS_START_KB / 1024)) MiB"
    echo
} >"$OUT/summary.md"

# --- ingest: bare vs sluice, alternating ------------------------------------
BEST_SLUICE_RPS=0
if has_phase ingest; then
    log "ingest: $ROUNDS rounds x (bare-parse, sluice), $CONNS connections, ${DURATION}s (+${WARMUP}s warm-up)"
    {
        echo "## Single-event ingest (closed loop, $CONNS connections, ${DURATION} s per run)"
        echo
        echo "| round | server | req/s | p50 ms | p99 ms | non-2xx+errors | server CPU (cores) | client CPU (cores) | sluice/bare |"
        echo "|---|---|---|---|---|---|---|---|---|"
    } >>"$OUT/summary.md"
    RATIOS=()
    HWM_INGEST=0
    for ((r = 1; r <= ROUNDS; r++)); do
        c0=$(cpu_ticks "$BARE_PID")
        b=$(load "bare-r$r" "$BARE_URL" -c "$CONNS" -d "$DURATION" --warmup "$WARMUP")
        bcpu=$(echo "scale=2; ($(cpu_ticks "$BARE_PID") - $c0) / 100 / ($DURATION + $WARMUP)" | bc)
        c0=$(cpu_ticks "$SLUICE_PID")
        start_sampler "$OUT/samples-ingest-r$r.tsv" 1
        s=$(load "sluice-r$r" "$SLUICE_URL" -c "$CONNS" -d "$DURATION" --warmup "$WARMUP")
        stop_sampler
        scpu=$(echo "scale=2; ($(cpu_ticks "$SLUICE_PID") - $c0) / 100 / ($DURATION + $WARMUP)" | bc)
        ratio=$(echo "scale=3; $(j .rps "$s") / $(j .rps "$b")" | bc)
        RATIOS+=("$ratio")
        for x in "bare-parse|$b|$bcpu|" "sluice|$s|$scpu|$ratio"; do
            IFS='|' read -r name line cpu rat <<<"$x"
            echo "| $r | $name | $(j .rps "$line") | $(j .p50_ms "$line") | $(j .p99_ms "$line") | $(j '[.non_2xx[]] + [.errors] | add' "$line") | $cpu | $(j .client_cpu_cores "$line") | $rat |" >>"$OUT/summary.md"
        done
        rps=$(j .rps "$s")
        if (($(echo "$rps > $BEST_SLUICE_RPS" | bc))); then BEST_SLUICE_RPS=$rps; fi
        log "round $r: bare $(j .rps "$b") req/s p99 $(j .p99_ms "$b") ms | sluice $rps req/s p99 $(j .p99_ms "$s") ms | ratio $ratio"
        wait_drained 120 || log "queue not drained after 120 s"
    done
    HWM_INGEST=$(hwm_kb "$SLUICE_PID")
    MEDIAN_RATIO=$(printf '%s\n' "${RATIOS[@]}" | sort -n | awk '{a[NR] = $1} END {print a[int((NR + 1) / 2)]}')
    {
        echo
        echo "Median paired ratio sluice/bare: **$MEDIAN_RATIO** (target >= 0.6). Best sluice rate: $BEST_SLUICE_RPS req/s."
        echo "sluice VmHWM after the ingest rounds: $((HWM_INGEST / 1024)) MiB."
        echo
    } >>"$OUT/summary.md"
fi

# --- rate: p99 at half of the best closed-loop rate -------------------------
if has_phase rate; then
    if [[ "$BEST_SLUICE_RPS" == 0 && -z "${RATE_RPS:-}" ]]; then
        s=$(load "sluice-probe" "$SLUICE_URL" -c "$CONNS" -d "$DURATION" --warmup "$WARMUP")
        BEST_SLUICE_RPS=$(j .rps "$s")
        wait_drained 120 || true
    fi
    HALF=${RATE_RPS:-$(echo "$BEST_SLUICE_RPS / 2" | bc)}
    log "rate: sluice at $HALF req/s (half of $BEST_SLUICE_RPS) for ${RATE_DURATION}s"
    start_sampler "$OUT/samples-rate.tsv" 1
    s=$(load "sluice-half-rate" "$SLUICE_URL" -c "$CONNS" -d "$RATE_DURATION" --warmup "$WARMUP" --rate "$HALF")
    stop_sampler
    b=$(load "bare-half-rate" "$BARE_URL" -c "$CONNS" -d "$RATE_DURATION" --warmup "$WARMUP" --rate "$HALF")
    {
        echo "## Latency at half of sluice's best rate ($HALF req/s, fixed rate, latency from the schedule)"
        echo
        echo "| server | achieved req/s | p50 ms | p90 ms | p99 ms | p99.9 ms | max ms | non-2xx+errors |"
        echo "|---|---|---|---|---|---|---|---|"
        for x in "sluice|$s" "bare-parse|$b"; do
            IFS='|' read -r name line <<<"$x"
            echo "| $name | $(j .rps "$line") | $(j .p50_ms "$line") | $(j .p90_ms "$line") | $(j .p99_ms "$line") | $(j .p999_ms "$line") | $(j .max_ms "$line") | $(j '[.non_2xx[]] + [.errors] | add' "$line") |"
        done
        echo
        echo "Target: sluice p99 <= 10 ms at half its maximum rate."
        echo
    } >>"$OUT/summary.md"
    log "half rate: sluice p99 $(j .p99_ms "$s") ms at $(j .rps "$s") req/s"
    wait_drained 120 || true
fi

# --- idle RSS ---------------------------------------------------------------
if has_phase idle; then
    wait_drained 120 || true
    sleep 10
    RSS_IDLE_KB=$(rss_kb "$SLUICE_PID")
    log "idle RSS after load (queue empty, 10 s idle): $RSS_IDLE_KB kB; VmHWM so far $(hwm_kb "$SLUICE_PID") kB"
    {
        echo "## Idle memory"
        echo
        echo "RSS at start: $((RSS_START_KB / 1024)) MiB; after the load above, queue empty and 10 s idle: $((RSS_IDLE_KB / 1024)) MiB; VmHWM so far: $(($(hwm_kb "$SLUICE_PID") / 1024)) MiB (target idle <= 15 MB)."
        echo
    } >>"$OUT/summary.md"
fi

# --- e2e: batched ingest + delivery for E2E_DURATION s ----------------------
if has_phase e2e; then
    log "e2e: batches of $E2E_BATCH events, $E2E_CONNS connections, ${E2E_DURATION}s"
    d0=$(emu_events)
    m0=$(metric sluice_delivered_events_total)
    start_sampler "$OUT/samples-e2e.tsv" 1
    sc0=$(cpu_ticks "$SLUICE_PID")
    ec0=$(cpu_ticks "$EMU_PID")
    t0=$(date +%s.%N)
    s=$(load "e2e-batch$E2E_BATCH" "$SLUICE_URL" -c "$E2E_CONNS" -d "$E2E_DURATION" --warmup 0 --batch "$E2E_BATCH" --timeout 30)
    t1=$(date +%s.%N)
    scpu=$(echo "scale=2; ($(cpu_ticks "$SLUICE_PID") - $sc0) / 100 / ($t1 - $t0)" | bc)
    ecpu=$(echo "scale=2; ($(cpu_ticks "$EMU_PID") - $ec0) / 100 / ($t1 - $t0)" | bc)
    d1=$(emu_events)
    m1=$(metric sluice_delivered_events_total)
    depth=$(queue_depth)
    drained=no
    wait_drained 300 && drained=yes
    t2=$(date +%s.%N)
    d2=$(emu_events)
    stop_sampler
    elapsed=$(echo "$t1 - $t0" | bc)
    deliv_rate=$(echo "($d1 - $d0) / $elapsed" | bc)
    total_rate=$(echo "($d2 - $d0) / ($t2 - $t0)" | bc)
    rss_max=$(awk 'NR > 1 && $2 > m {m = $2} END {print m + 0}' "$OUT/samples-e2e.tsv")
    {
        echo "## End to end: batches of $E2E_BATCH, $E2E_CONNS connections, ${E2E_DURATION} s, delivered to the emulator"
        echo
        echo "| accepted events/s (mean) | accepted, slowest 1 s | accepted, fastest 1 s | p50 ms/request | p99 ms/request | delivered events/s during the load | queue left at the end | drained | delivered events/s incl. catch-up | sluice RSS max (sampled 1/s) |"
        echo "|---|---|---|---|---|---|---|---|---|---|"
        echo "| $(j .eps_accepted "$s") | $(j .eps_min_1s "$s") | $(j .eps_max_1s "$s") | $(j .p50_ms "$s") | $(j .p99_ms "$s") | $deliv_rate | $depth | $drained | $total_rate | $((rss_max / 1024)) MiB |"
        echo
        echo "sluice_delivered_events_total grew by $((m1 - m0)) during the load; the emulator counted $((d1 - d0))."
        echo "CPU during the load: sluice $scpu cores, emulator $ecpu cores, generator $(j .client_cpu_cores "$s") cores. Target: >= 50k events/s sustained for 60 s."
        echo
    } >>"$OUT/summary.md"
    log "e2e: accepted $(j .eps_accepted "$s") ev/s, delivered $deliv_rate ev/s during load, RSS max $rss_max kB"
fi

# --- backlog: build under a 503 fault, then drain ---------------------------
if has_phase backlog; then
    log "backlog: emulator answers 503; enqueueing up to $BACKLOG_EVENTS events (at most ${BACKLOG_MAX_S}s)"
    curl -sf -X POST "http://127.0.0.1:$EMU_PORT/_emulator/faults" \
        -d '{"faults": [{"fault": {"kind": "http_status", "status": 503}}]}' >/dev/null
    start_sampler "$OUT/samples-backlog-fill.tsv" 2
    s=$(load "backlog-fill" "$SLUICE_URL" -c "$E2E_CONNS" -d "$BACKLOG_MAX_S" --warmup 0 --batch "$E2E_BATCH" --max-events "$BACKLOG_EVENTS" --timeout 60)
    stop_sampler
    depth=$(queue_depth)
    fill_hwm=$(hwm_kb "$SLUICE_PID")
    log "backlog: $(j .events_accepted "$s") accepted at $(j .eps_accepted "$s") ev/s; queue depth $depth; RSS $(rss_kb "$SLUICE_PID") kB"
    d0=$(emu_events)
    curl -sf -X DELETE "http://127.0.0.1:$EMU_PORT/_emulator/faults" >/dev/null
    t0=$(date +%s.%N)
    sc0=$(cpu_ticks "$SLUICE_PID")
    ec0=$(cpu_ticks "$EMU_PID")
    start_sampler "$OUT/samples-backlog-drain.tsv" 2
    first_delivery=""
    drained=no
    for ((i = 0; i < DRAIN_MAX_S; i++)); do
        if [[ -z "$first_delivery" && "$(emu_events)" -gt "$d0" ]]; then
            first_delivery=$(printf '%.1f' "$(echo "$(date +%s.%N) - $t0" | bc)")
        fi
        if [[ "$(queue_depth)" == 0 ]]; then
            drained=yes
            break
        fi
        sleep 1
    done
    t1=$(date +%s.%N)
    stop_sampler
    scpu=$(echo "scale=2; ($(cpu_ticks "$SLUICE_PID") - $sc0) / 100 / ($t1 - $t0)" | bc)
    ecpu=$(echo "scale=2; ($(cpu_ticks "$EMU_PID") - $ec0) / 100 / ($t1 - $t0)" | bc)
    d1=$(emu_events)
    left=$(queue_depth)
    elapsed=$(echo "$t1 - $t0" | bc)
    first_delivery=${first_delivery:-n/a}
    if [[ "$first_delivery" != n/a ]]; then
        drain_rate=$(echo "($d1 - $d0) / ($elapsed - $first_delivery)" | bc)
    else
        drain_rate=0
    fi
    f=$OUT/samples-backlog-drain.tsv
    # RSS from the first delivery on (the breaker wait before it is idle time).
    rss_stats=$(awk 'NR == 2 {d0 = $4} NR > 1 && $4 > d0 {n++; r[n] = $2; an[n] = $5} END {
        if (n == 0) {print "n/a"; exit}
        min = r[1]; max = r[1]; for (i = 1; i <= n; i++) {if (r[i] < min) min = r[i]; if (r[i] > max) max = r[i]}
        t = int(n / 3); if (t < 1) t = 1; a = 0; b = 0; aa = 0; ab = 0
        for (i = 1; i <= t; i++) {a += r[i]; aa += an[i]}; for (i = n - t + 1; i <= n; i++) {b += r[i]; ab += an[i]}
        printf "min %d MiB, max %d MiB, mean of first third %d MiB, of last third %d MiB (RssAnon %d -> %d MiB)", min / 1024, max / 1024, a / t / 1024, b / t / 1024, aa / t / 1024, ab / t / 1024}' "$f")
    # Idle after the drain: the store gives its page caches back once it has
    # had no write for 5 s (SqliteOptions::idle_shrink_after).
    AFTER_IDLE_S=${AFTER_IDLE_S:-15}
    sleep "$AFTER_IDLE_S"
    rss_after=$(rss_kb "$SLUICE_PID")
    anon_after=$(anon_kb "$SLUICE_PID")
    {
        echo "## Backlog: built while the emulator answered 503, then drained"
        echo
        echo "| events enqueued | enqueue events/s | queue depth at fault clear | first delivery after clear | delivered | drain events/s (from first delivery) | drained | left | RSS while draining, from the first delivery (sampled 1/2 s) | VmHWM after fill |"
        echo "|---|---|---|---|---|---|---|---|---|---|"
        echo "| $(j .events_accepted "$s") | $(j .eps_accepted "$s") | $depth | ${first_delivery} s | $((d1 - d0)) | $drain_rate | $drained (${elapsed%.*} s) | $left | $rss_stats | $((fill_hwm / 1024)) MiB |"
        echo
        echo "CPU while draining: sluice $scpu cores, emulator $ecpu cores (mean over the drain, breaker wait included)."
        echo "RSS ${AFTER_IDLE_S} s after the drain ended (idle): $rss_after kB (RssAnon $anon_after kB)."
        echo "Target: a backlog of 10 M events drains with flat memory. Samples: samples-backlog-*.tsv."
        echo
    } >>"$OUT/summary.md"
    log "backlog drain: $((d1 - d0)) delivered, $drain_rate ev/s, drained=$drained, $rss_stats; idle after: $rss_after kB"
fi

{
    echo "sluice VmHWM over the whole run: $(($(hwm_kb "$SLUICE_PID") / 1024)) MiB; load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)."
} >>"$OUT/summary.md"
log "done: $OUT/summary.md"
cat "$OUT/summary.md"
