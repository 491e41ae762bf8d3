#!/usr/bin/env bash
# Stops a long benchmark before it fills the disk.
#
#   bash bench/load/run.sh & bash bench/load/disk-watchdog.sh $! [MIN_FREE_GB] [PATH]
#
# Every 10 s, checks the free space on the file system of PATH (default: the
# temp dir run.sh puts the queue in, ${TMPDIR:-/tmp}); below MIN_FREE_GB
# (default 10) it sends SIGTERM to PID (run.sh's trap then kills every process
# it started and removes its temp dir) and exits 1. Exits 0 once PID is gone.
# A 10 M event backlog needs ~20 GB (queue rows, ledger, user keys, WAL).
set -euo pipefail

PID=${1:?usage: disk-watchdog.sh PID [MIN_FREE_GB] [PATH]}
MIN_GB=${2:-10}
WATCH=${3:-${TMPDIR:-/tmp}}

while kill -0 "$PID" 2>/dev/null; do
    free_kb=$(df -Pk "$WATCH" | awk 'NR == 2 {print $4}')
    if ((free_kb < MIN_GB * 1024 * 1024)); then
        printf '[%(%H:%M:%S)T] disk-watchdog: %s GB free on %s (< %s GB): stopping pid %s\n' \
            -1 "$((free_kb / 1024 / 1024))" "$WATCH" "$MIN_GB" "$PID" >&2
        kill -TERM "$PID" 2>/dev/null || true
        exit 1
    fi
    sleep 10
done
