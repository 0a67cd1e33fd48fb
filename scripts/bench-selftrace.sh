#!/usr/bin/env bash
# Cost of self-tracing (docs/BENCHMARKS.md, "Self-tracing cost"): fresh
# embedded `strand serve` nodes of one binary, alternately with
# [self_tracing] on (default rate, 2 traces/s) and off, each driven by
# `strand loadgen` (gRPC, full speed) for BENCH_LOAD_SECS; records spans
# accepted and the server's CPU seconds (/proc/PID/stat), so spans per
# server CPU-second, and the on/off ratio per round. Appends JSON lines to
# docs/bench/selftrace.json.
# Usage: scripts/bench-selftrace.sh
#   STRAND_BIN         binary (default: cargo build --release)
#   BENCH_LOAD_SECS    seconds per run (default 15)
#   BENCH_ROUNDS       on/off pairs, order alternating (default 3)
#   BENCH_STRAND_TOML  TOML appended after [storage] (default "fsync = false":
#                      CPU-bound, so the ratio is about CPU)
#   BENCH_CONNECTIONS  loadgen connections (default 4)
set -euo pipefail
CONNECTIONS=${BENCH_CONNECTIONS:-4}
if [ -n "${STRAND_BIN:-}" ]; then STRAND_BIN=$(realpath "$STRAND_BIN"); fi
cd "$(dirname "$0")/.."
ROOT=$PWD
OUT=${BENCH_OUT:-$ROOT/docs/bench}
LOAD_SECS=${BENCH_LOAD_SECS:-15}; ROUNDS=${BENCH_ROUNDS:-3}
EXTRA=${BENCH_STRAND_TOML-fsync = false}
mkdir -p "$OUT"
# shellcheck source=scripts/bench-lib.sh
source "$ROOT/scripts/bench-lib.sh"
if [ -n "${STRAND_BIN:-}" ]; then
  BIN=$STRAND_BIN
else
  flock /tmp/cargo.lock cargo build --release --bin strand
  BIN=$ROOT/target/release/strand
fi
WORK=$(mktemp -d)
SERVER=""
cleanup() {
  if [ -n "$SERVER" ]; then stop_node "$SERVER"; fi
  rm -rf "$WORK"
}
trap cleanup EXIT
PORT=27417
TICK=$(getconf CLK_TCK)
LINES="$WORK/lines.jsonl"; : > "$LINES"

# run ROUND on|off
run() {
  local round=$1 mode=$2 enabled=false name="st-r$1-$2" before after traces
  [ "$mode" = on ] && enabled=true
  SERVER=$(start_node "$name" all "$PORT" "" "$EXTRA
[self_tracing]
enabled = $enabled")
  before=$(cpu_ticks "$SERVER")
  "$BIN" loadgen --protocol grpc --connections "$CONNECTIONS" --lag-samples 0 \
    --duration "${LOAD_SECS}s" --json --quiet \
    --grpc-url "http://127.0.0.1:$PORT" --query-url "http://127.0.0.1:$((PORT + 2))" > "$WORK/one.json"
  after=$(cpu_ticks "$SERVER")
  # Self-traces stored by the end of the run (sanity: on > 0, off = 0).
  traces=$(curl -fs "http://127.0.0.1:$((PORT + 2))/api/traces?service=strand&limit=1500&lookback=1h" \
    | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["data"]))' || echo 0)
  stop_node "$SERVER"; SERVER=""
  rm -rf "${WORK:?}/$name"
  python3 - "$WORK/one.json" "$round" "$mode" "$before" "$after" "$TICK" "$traces" "$LINES" <<'PY'
import json, sys
lg = json.load(open(sys.argv[1]))
round_, mode, before, after, tick, traces, lines = sys.argv[2], sys.argv[3], *map(int, sys.argv[4:8]), sys.argv[8]
cpu = (after - before) / tick
d = {"round": int(round_), "self_tracing": mode, "spans_accepted": lg["spans_accepted"],
     "accepted_spans_per_sec": lg["accepted_spans_per_sec"], "server_cpu_secs": cpu,
     "spans_per_server_cpu_sec": lg["spans_accepted"] / max(cpu, 1e-9), "self_traces": traces}
open(lines, "a").write(json.dumps(d) + "\n")
print(f"round {round_} {mode:>3}: {d['accepted_spans_per_sec']:.0f} spans/s, "
      f"{d['spans_per_server_cpu_sec']:.0f} spans per CPU-second, {traces} self-traces")
PY
}

for r in $(seq 1 "$ROUNDS"); do
  if [ $((r % 2)) = 1 ]; then run "$r" on; run "$r" off; else run "$r" off; run "$r" on; fi
done

python3 - "$LINES" "$OUT/selftrace.json" "$BIN" "$LOAD_SECS" "$EXTRA" <<'PY'
import datetime, json, subprocess, sys
runs = [json.loads(l) for l in open(sys.argv[1])]
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
meta = {"commit": subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip(),
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "nproc": int(subprocess.run(["nproc"], capture_output=True, text=True).stdout), "cpu": cpu,
        "bin": sys.argv[3], "load_secs": int(sys.argv[4]), "strand_toml": sys.argv[5]}
with open(sys.argv[2], "a") as f:
    for r in runs:
        f.write(json.dumps({**meta, **r}) + "\n")
print("\n| round | on: spans/CPU-s | off: spans/CPU-s | on/off |\n| --- | --- | --- | --- |")
ratios = []
for rnd in sorted({r["round"] for r in runs}):
    on = next(r for r in runs if r["round"] == rnd and r["self_tracing"] == "on")
    off = next(r for r in runs if r["round"] == rnd and r["self_tracing"] == "off")
    q = on["spans_per_server_cpu_sec"] / off["spans_per_server_cpu_sec"]
    ratios.append(q)
    print(f"| {rnd} | {on['spans_per_server_cpu_sec']:.0f} | {off['spans_per_server_cpu_sec']:.0f} | {q:.3f} |")
ratios.sort()
mid = len(ratios) // 2
median = ratios[mid] if len(ratios) % 2 else (ratios[mid - 1] + ratios[mid]) / 2
mean = lambda mode: sum(r["spans_per_server_cpu_sec"] for r in runs if r["self_tracing"] == mode) / len(ratios)
print(f"\nmedian on/off ratio {median:.3f} (min {ratios[0]:.3f}, max {ratios[-1]:.3f}); "
      f"mean on / mean off {mean('on') / mean('off'):.3f}")
PY
