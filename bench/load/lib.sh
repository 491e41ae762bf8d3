# Shell helpers shared by the load scripts (sourced, not run).
# emu_events, metric and queue_depth read $EMU_PORT / $SLUICE_PORT.

# Whether nothing listens on 127.0.0.1:$1.
port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# Waits (at most $2 s) until $1 answers 2xx.
wait_http() {
    local i
    for ((i = 0; i < $2 * 10; i++)); do
        curl -sf -o /dev/null "$1" && return 0
        sleep 0.1
    done
    echo "timeout waiting for $1" >&2
    return 1
}

# Events the emulator has accepted so far.
emu_events() { curl -sf "http://127.0.0.1:$EMU_PORT/_emulator/stats" | jq -r '.events'; }

# A gateway metric's value, summed over its label sets.
metric() {
    curl -sf "http://127.0.0.1:$SLUICE_PORT/metrics" |
        awk -v m="$1" '$1 == m || index($1, m "{") == 1 {s += $2} END {printf "%d\n", s}'
}

# Events queued in the gateway (all pixels).
queue_depth() { metric sluice_queue_depth; }
