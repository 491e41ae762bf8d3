#!/usr/bin/env bash
# Paired CPU-path benchmark: sluice vs Meta's official Python and Node SDKs.
#
# The same workload in every implementation (bench/sdk/README.md): build N Purchase
# events from the normative deterministic generator, normalize + SHA-256 the personal
# data, serialize request bodies of 1,000 events, send nothing. sluice runs it through
# crates/sluice-bench (`cpu-path`), the SDKs through bench/sdk/workload.{py,js}.
#
# Runs alternate A B C A B C ... (sluice, python-sdk, node-sdk) for R rounds after W
# warm-up rounds; each run is a whole process, timed from outside (wall clock around
# the process, CPU time from wait4, peak RSS from /usr/bin/time). Prints a table of
# medians (min-max) and the paired per-round ratios, and appends every run to
# bench/out/*.jsonl.
#
# usage: bench/cpu-path.sh [options]
#   -r, --rounds R     measured rounds (default 3)
#   -n, --events N     events per run (default 100000)
#   -w, --warmup W     warm-up rounds, not counted (default 1)
#   --only LIST        comma-separated subset of sluice,python-sdk,node-sdk
#   --mode M           sluice mode: fields (default) or user-data
#   --quick            smoke run: 2000 events, 1 round, no warm-up
#   --compare K        also compare sluice's first K events with both SDKs' output
#                      (hashes per field, documented differences); K=0 skips (default)
#   --no-verify        skip the generator check (cpu-path --verify)
# Environment: SDK_BENCH_SEED / SDK_BENCH_BATCH pass through to all three.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
rounds=3 events=100000 warmup=1 only="sluice,python-sdk,node-sdk" mode=fields
compare=0 verify=1
while [[ $# -gt 0 ]]; do
  case "$1" in
    -r|--rounds) rounds="$2"; shift 2 ;;
    -n|--events) events="$2"; shift 2 ;;
    -w|--warmup) warmup="$2"; shift 2 ;;
    --only) only="$2"; shift 2 ;;
    --mode) mode="$2"; shift 2 ;;
    --quick) events=2000 rounds=1 warmup=0; shift ;;
    --compare) compare="$2"; shift 2 ;;
    --no-verify) verify=0; shift ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "cpu-path.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done

# The `dist` profile (Cargo.toml): release plus fat LTO and one codegen unit, the
# build we recommend for production.
echo "building sluice-bench (profile dist) ..." >&2
(cd "$root" && cargo build --quiet --profile dist -p sluice-bench --bin cpu-path)
bin="${CARGO_TARGET_DIR:-$root/target}/dist/cpu-path"
"$root/bench/sdk/setup.sh" >&2
if [[ "$verify" == 1 ]]; then
  env -u SDK_BENCH_SEED -u SDK_BENCH_EVENTS "$bin" --verify >&2
fi

out_dir="$root/bench/out"
mkdir -p "$out_dir"
stamp="$(date -u +%Y%m%dT%H%M%SZ)"

if [[ "$compare" -gt 0 ]]; then
  py_dump="$out_dir/sdk-events-python.jsonl" node_dump="$out_dir/sdk-events-node.jsonl"
  "$root/bench/.venv/bin/python" "$root/bench/sdk/workload.py" --dump-events "$compare" > "$py_dump"
  node "$root/bench/sdk/workload.js" --dump-events "$compare" > "$node_dump"
  for dump in "$py_dump" "$node_dump"; do
    echo "== sluice (mode $mode) vs $(basename "$dump" .jsonl | sed 's/sdk-events-//') SDK"
    "$bin" --mode "$mode" --compare-sdk "$dump"
  done
fi

export CPU_PATH_BIN="$bin" CPU_PATH_ROOT="$root" CPU_PATH_ROUNDS="$rounds" \
  CPU_PATH_EVENTS="$events" CPU_PATH_WARMUP="$warmup" CPU_PATH_ONLY="$only" \
  CPU_PATH_MODE="$mode" CPU_PATH_OUT="$out_dir/cpu-path-$stamp.jsonl"
exec python3 - <<'PY'
import json, os, platform, statistics, subprocess, sys, tempfile, time

env = os.environ
root, binary = env["CPU_PATH_ROOT"], env["CPU_PATH_BIN"]
rounds, events, warmup = int(env["CPU_PATH_ROUNDS"]), int(env["CPU_PATH_EVENTS"]), int(env["CPU_PATH_WARMUP"])
only = [x for x in env["CPU_PATH_ONLY"].split(",") if x]
mode, out_path = env["CPU_PATH_MODE"], env["CPU_PATH_OUT"]

commands = {
    "sluice": [binary, str(events), "--mode", mode],
    "python-sdk": [f"{root}/bench/.venv/bin/python", f"{root}/bench/sdk/workload.py", str(events)],
    "node-sdk": ["node", f"{root}/bench/sdk/workload.js", str(events)],
}
for name in only:
    if name not in commands:
        sys.exit(f"cpu-path.sh: unknown implementation {name!r}")
child_env = {k: v for k, v in env.items() if not k.startswith("CPU_PATH_")}
child_env.pop("SDK_BENCH_DIGEST", None)  # digests cost time: never in timing runs
child_env.pop("SDK_BENCH_EVENTS", None)

TIME = "/usr/bin/time" if os.access("/usr/bin/time", os.X_OK) else None

def run(name):
    """One whole process: wall clock around it, CPU time from wait4, peak RSS from
    /usr/bin/time. (wait4's ru_maxrss alone would not do: a child started from this
    Python driver inherits the driver's high-water mark at exec, ~15 MiB, which hides
    a smaller footprint. time(1) forks from a ~2 MiB process.)"""
    with tempfile.TemporaryFile() as err, tempfile.NamedTemporaryFile("r") as tfile:
        cmd = ([TIME, "-f", "%M", "-o", tfile.name] if TIME else []) + commands[name]
        t0 = time.perf_counter()
        p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err, env=child_env)
        out = p.stdout.read()
        _, status, ru = os.wait4(p.pid, 0)
        wall = time.perf_counter() - t0
        p.returncode = os.waitstatus_to_exitcode(status)
        p.stdout.close()
        if p.returncode != 0:
            err.seek(0)
            sys.exit(f"{name} failed ({p.returncode}): {err.read().decode(errors='replace')[-2000:]}")
        rss_kb = int(tfile.read().split()[-1]) if TIME else ru.ru_maxrss
    inner = json.loads(out.decode().strip().splitlines()[-1])
    if inner.get("events") != events:
        sys.exit(f"{name}: reported {inner.get('events')} events, expected {events}")
    return {"impl": name, "wall_s": wall, "cpu_s": ru.ru_utime + ru.ru_stime,
            "max_rss_kb": rss_kb, "inner": inner}

load = lambda: " ".join(f"{x:.1f}" for x in os.getloadavg())
print(f"cpu-path: {events} events, {rounds} round(s) after {warmup} warm-up, order {' '.join(only)}, "
      f"sluice mode {mode}; load avg {load()}", file=sys.stderr)
runs = []
with open(out_path, "a") as log:
    for r in range(-warmup, rounds):
        for name in only:
            rec = run(name)
            rec["round"] = r
            rec["warmup"] = r < 0
            log.write(json.dumps(rec) + "\n")
            log.flush()
            tag = "warm-up" if r < 0 else f"round {r + 1}"
            print(f"  {tag:<8} {name:<11} wall {rec['wall_s']:8.3f} s  cpu {rec['cpu_s']:7.3f} s  "
                  f"rss {rec['max_rss_kb'] / 1024:6.1f} MiB", file=sys.stderr)
            if r >= 0:
                runs.append(rec)

def med(xs): return statistics.median(xs)
def fmt_range(xs, f): return f"{f(min(xs))}-{f(max(xs))}"
by = {name: [x for x in runs if x["impl"] == name] for name in only}
print(f"\nCPU path, {events:,} events per run, {rounds} round(s) (A B C alternating), "
      f"load avg {load()} at the end; {platform.node()}, {os.cpu_count()} vCPU; runs in {out_path}")
print("\n| impl | wall s, median (min-max) | events/s (median wall) | CPU s, median (min-max) "
      "| peak RSS MiB, max | B/event | hashes/event |")
print("| --- | --- | --- | --- | --- | --- | --- |")
for name, xs in by.items():
    walls, cpus = [x["wall_s"] for x in xs], [x["cpu_s"] for x in xs]
    rss = max(x["max_rss_kb"] for x in xs) / 1024
    b = xs[0]["inner"]["bytes"] / events
    hashes = xs[0]["inner"].get("hashes_per_event", 8)
    print(f"| {name} | {med(walls):.3f} ({fmt_range(walls, lambda v: f'{v:.3f}')}) "
          f"| {events / med(walls):,.0f} | {med(cpus):.3f} ({fmt_range(cpus, lambda v: f'{v:.3f}')}) "
          f"| {rss:.1f} | {b:,.0f} | {hashes} |")

if "sluice" in by:
    xs = by["sluice"]
    inner_s = med([x["inner"]["seconds"] for x in xs])
    startup = med([x["inner"].get("startup_seconds", 0.0) for x in xs])
    print(f"\nsluice in-process (median): {inner_s:.3f} s, of which start-up {startup:.3f} s "
          f"(phone metadata); after start-up {events / max(inner_s - startup, 1e-9):,.0f} events/s")
    base = {x["round"]: x for x in by["sluice"]}
    targets = {"python-sdk": 40.0, "node-sdk": 14.0}
    print("\n| ratio (same round, wall) | median | min-max | CPU-time ratio, median | target | met |")
    print("| --- | --- | --- | --- | --- | --- |")
    for name in [n for n in only if n != "sluice"]:
        pairs = [(x, base[x["round"]]) for x in by[name] if x["round"] in base]
        wr = [a["wall_s"] / s["wall_s"] for a, s in pairs]
        cr = [a["cpu_s"] / s["cpu_s"] for a, s in pairs]
        t = targets.get(name)
        print(f"| {name} / sluice | {med(wr):.1f}x | {min(wr):.1f}-{max(wr):.1f}x | {med(cr):.1f}x "
              f"| >= {t:.0f}x | {'yes' if med(wr) >= t else 'no'} |")
    rss = max(x["max_rss_kb"] for x in by["sluice"]) / 1024
    print(f"\nsluice peak RSS {rss:.1f} MiB (target <= 10 MiB: {'yes' if rss <= 10 else 'no'})")
PY
