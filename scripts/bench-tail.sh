#!/usr/bin/env bash
# Tail-sampling benchmarks (docs/BENCHMARKS.md, "Tail sampling").
#
#   scripts/bench-tail.sh ingest   spans per writer CPU-second, tail on vs off
#   scripts/bench-tail.sh open     memory per open trace; RSS with 1M open
#                                  traces under the default 256 MiB bound
#
# ingest: one release binary; a fresh embedded `strand serve` per run whose
# configs differ only by `[sampling.tail] enabled`, alternating on, off,
# off, on, …; each run is driven by `strand loadgen` (gRPC, full speed) for
# BENCH_LOAD_SECS. After the load, an "on" run waits until no trace waits,
# so the decisions' CPU is counted. Figures: accepted spans per server
# CPU-second and per writer CPU-second (the `hot-writer-*` threads, from
# /proc/PID/task/*/stat).
# open: nothing is due for 10 minutes, so every trace stays open; loadgen
# sends BENCH_OPEN_SPANS spans (2-span traces: --depth 1 --fanout 1). Run 1
# with a 16 GiB bound measures RSS growth per open trace; run 2 sends 1M
# traces under the default bound and reports RSS, waiting traces and early
# decisions.
# Appends JSON lines to $BENCH_OUT/tail.jsonl.
#   STRAND_BIN         binary (default: cargo build --release, copied to WORK)
#   BENCH_WORK         scratch directory (default /tmp/bench15)
#   BENCH_LOAD_SECS    seconds per ingest run (default 20)
#   BENCH_PAIRS        on/off pairs (default 3)
#   BENCH_OPEN_SPANS   spans of the unbounded open run (default 400000)
set -euo pipefail
MODE=${1:-}
cd "$(dirname "$0")/.."
ROOT=$PWD
if [ "$MODE" != ingest ] && [ "$MODE" != open ]; then
  echo "usage: $0 ingest|open" >&2
  exit 2
fi
WORK=${BENCH_WORK:-/tmp/bench15}
OUT=${BENCH_OUT:-$ROOT/docs/bench}
LOAD_SECS=${BENCH_LOAD_SECS:-20}
PAIRS=${BENCH_PAIRS:-3}
OPEN_SPANS=${BENCH_OPEN_SPANS:-400000}
GRPC=25317 HTTP=25318 QUERY=37686
mkdir -p "$WORK" "$OUT"
if [ -n "${STRAND_BIN:-}" ]; then
  BIN=$(realpath "$STRAND_BIN")
else
  flock /tmp/cargo.lock cargo build --release --bin strand
  cp target/release/strand "$WORK/strand"
  BIN=$WORK/strand
fi
TICK=$(getconf CLK_TCK)
COMMIT=$(git rev-parse --short HEAD)
SERVER=""
cleanup() {
  if [ -n "$SERVER" ]; then kill "$SERVER" 2>/dev/null || true; wait "$SERVER" 2>/dev/null || true; fi
}
trap cleanup EXIT

config() { # config on|off [tail keys]
  local enabled=true
  [ "$1" = off ] && enabled=false
  cat <<TOML
[ingest]
grpc_addr = "127.0.0.1:$GRPC"
http_addr = "127.0.0.1:$HTTP"
zipkin_addr = ""

[query]
addr = "127.0.0.1:$QUERY"

[storage]
dir = "$WORK/data"

[sampling.tail]
enabled = $enabled
${2:-}

[[sampling.tail.policies]]
name = "errors"
type = "status_code"
status_codes = ["ERROR"]

[[sampling.tail.policies]]
name = "slow"
type = "latency"
threshold_ms = 1000

[[sampling.tail.policies]]
name = "baseline"
type = "probabilistic"
sampling_percentage = 1.0
TOML
}

# shellcheck source=scripts/bench-lib.sh
source "$ROOT/scripts/bench-lib.sh"
writer_ticks() { # utime + stime of the hot-writer threads
  local pid=$1 sum=0 t
  for t in /proc/"$pid"/task/*; do
    if grep -q '^hot-writer' "$t/comm" 2>/dev/null; then
      sum=$((sum + $(sed 's/.*) //' "$t/stat" | awk '{print $12 + $13}')))
    fi
  done
  echo "$sum"
}
rss_kib() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }
metric() { curl -fs "http://127.0.0.1:$QUERY/metrics" | awk -v n="$1" '$1 == n {print $2}' | head -1; }

start() { # start NAME: serve $WORK/NAME.toml
  rm -rf "$WORK/data"
  serve_on "$WORK/$1.toml" "$WORK/serve-$1.log" "$QUERY"
}
stop() { kill "$SERVER"; wait "$SERVER" 2>/dev/null || true; SERVER=""; }

LINES="$WORK/lines.jsonl"; : > "$LINES"

ingest_run() { # ingest_run PAIR on|off
  local pair=$1 mode=$2 before wbefore after wafter pending
  config "$mode" "decision_wait_ms = 2000
settle_ms = 500" > "$WORK/$mode.toml"
  start "$mode"
  before=$(cpu_ticks "$SERVER"); wbefore=$(writer_ticks "$SERVER")
  "$BIN" loadgen --grpc-url "http://127.0.0.1:$GRPC" --query-url "http://127.0.0.1:$QUERY" \
    --duration "${LOAD_SECS}s" --lag-samples 0 --json --quiet > "$WORK/one.json"
  pending=0
  if [ "$mode" = on ]; then
    for _ in $(seq 1 100); do
      pending=$(metric strand_tail_pending_traces); [ "${pending:-0}" = 0 ] && break
      sleep 0.2
    done
  fi
  after=$(cpu_ticks "$SERVER"); wafter=$(writer_ticks "$SERVER")
  local kept dropped
  kept=$(metric 'strand_tail_traces_total{decision="keep"}'); dropped=$(metric 'strand_tail_traces_total{decision="drop"}')
  stop
  python3 - "$WORK/one.json" "$pair" "$mode" "$before" "$after" "$wbefore" "$wafter" "$TICK" \
    "${kept:-0}" "${dropped:-0}" "${pending:-0}" "$LINES" <<'PY'
import json, sys
lg = json.load(open(sys.argv[1]))
pair, mode = int(sys.argv[2]), sys.argv[3]
b, a, wb, wa, tick, kept, dropped, pending = map(float, sys.argv[4:12])
cpu, wcpu = (a - b) / tick, (wa - wb) / tick
n = lg["spans_accepted"]
d = {"bench": "ingest", "pair": pair, "tail": mode, "spans_accepted": n,
     "accepted_spans_per_sec": lg["accepted_spans_per_sec"], "server_cpu_secs": cpu,
     "writer_cpu_secs": wcpu, "spans_per_server_cpu_sec": n / max(cpu, 1e-9),
     "spans_per_writer_cpu_sec": n / max(wcpu, 1e-9), "traces_kept": kept,
     "traces_dropped": dropped, "still_pending": pending}
open(sys.argv[12], "a").write(json.dumps(d) + "\n")
print(f"pair {pair} {mode:>3}: {d['accepted_spans_per_sec']:.0f} spans/s, server cpu {cpu:.2f} s, "
      f"writer cpu {wcpu:.2f} s: {d['spans_per_server_cpu_sec']:.0f} per server CPU-s, "
      f"{d['spans_per_writer_cpu_sec']:.0f} per writer CPU-s; kept {kept:.0f} dropped {dropped:.0f}", flush=True)
PY
}

open_run() { # open_run NAME SPANS BOUND_BYTES
  local name=$1 spans=$2 bound=$3 rss0 rss1
  config on "decision_wait_ms = 600000
settle_ms = 600000
max_trace_age_ms = 600000
max_pending_bytes = $bound" > "$WORK/$name.toml"
  start "$name"
  rss0=$(rss_kib "$SERVER")
  "$BIN" loadgen --grpc-url "http://127.0.0.1:$GRPC" --query-url "http://127.0.0.1:$QUERY" \
    --depth 1 --fanout 1 --spans "$spans" --lag-samples 0 --json --quiet > "$WORK/one.json"
  rss1=$(rss_kib "$SERVER")
  local traces bytes early
  traces=$(metric strand_tail_pending_traces); bytes=$(metric strand_tail_pending_bytes)
  early=$(metric strand_tail_early_decisions_total)
  stop
  python3 - "$WORK/one.json" "$name" "$bound" "$rss0" "$rss1" "${traces:-0}" "${bytes:-0}" "${early:-0}" "$LINES" <<'PY'
import json, sys
lg = json.load(open(sys.argv[1]))
name = sys.argv[2]
bound, rss0, rss1, traces, pbytes, early = map(float, sys.argv[3:9])
d = {"bench": "open", "run": name, "max_pending_bytes": bound, "spans_accepted": lg["spans_accepted"],
     "spans_per_trace": lg["spans_per_trace"], "avg_span_bytes": lg["avg_span_bytes"],
     "rss_before_mib": rss0 / 1024, "rss_after_mib": rss1 / 1024, "open_traces": traces,
     "pending_bytes_estimate_mib": pbytes / 2**20, "early_decisions": early,
     "rss_bytes_per_open_trace": (rss1 - rss0) * 1024 / max(traces, 1)}
open(sys.argv[9], "a").write(json.dumps(d) + "\n")
print(f"{name}: {lg['spans_accepted']} spans ({lg['spans_per_trace']} per trace), open traces {traces:.0f}, "
      f"early decisions {early:.0f}, RSS {rss0/1024:.0f} -> {rss1/1024:.0f} MiB, "
      f"estimate {pbytes/2**20:.0f} MiB, {d['rss_bytes_per_open_trace']:.0f} RSS bytes per open trace", flush=True)
PY
}

echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
if [ "$MODE" = ingest ]; then
  for p in $(seq 1 "$PAIRS"); do
    if [ $((p % 2)) = 1 ]; then ingest_run "$p" on; ingest_run "$p" off; else ingest_run "$p" off; ingest_run "$p" on; fi
  done
else
  open_run unbounded "$OPEN_SPANS" $((16 << 30))
  open_run bounded-1M 2000000 $((256 << 20))
fi
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"

python3 - "$LINES" "$OUT/tail.jsonl" "$COMMIT" "$MODE" <<'PY'
import datetime, json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
if sys.argv[4] == "ingest":
    by = {}
    for r in rows:
        by.setdefault(r["pair"], {})[r["tail"]] = r
    for key in ("spans_per_server_cpu_sec", "spans_per_writer_cpu_sec"):
        ratios = [by[p]["on"][key] / by[p]["off"][key] for p in sorted(by)]
        print(f"{key}: on/off per pair {', '.join(f'{x:.3f}' for x in ratios)}; "
              f"median {statistics.median(ratios):.3f}")
with open(sys.argv[2], "a") as f:
    meta = {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "commit": sys.argv[3]}
    for r in rows:
        f.write(json.dumps({**meta, **r}) + "\n")
PY
