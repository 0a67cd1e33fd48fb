#!/usr/bin/env bash
# Span-metrics benchmarks (docs/BENCHMARKS.md, "Span metrics").
#
#   scripts/bench-spanmetrics.sh ingest   ingest cost, span metrics on vs off
#   scripts/bench-spanmetrics.sh query    the 24 h Monitor view (criterion,
#                                         benches/spanmetrics.rs)
#
# ingest: one release binary; a fresh embedded `strand serve` per run whose
# config differs only by `[span_metrics] enabled`, alternating on, off, off,
# on, … so drift on a shared machine hits both arms; each run is driven by
# `strand loadgen` (gRPC, full speed) for BENCH_LOAD_SECS, and the figure is
# accepted spans per server CPU-second (utime + stime of /proc/PID/stat
# before and after the load). Prints one line per run, the on/off ratio per
# pair and the mean, and appends JSON lines to $BENCH_OUT/spanmetrics.jsonl.
#   STRAND_BIN         binary (default: cargo build --release, copied to WORK)
#   BENCH_WORK         scratch directory (default /tmp/bench14)
#   BENCH_LOAD_SECS    seconds per run (default 20)
#   BENCH_PAIRS        on/off pairs (default 4)
#   BENCH_STRAND_TOML  extra TOML appended after [storage] (default none)
set -euo pipefail
MODE=${1:-}
cd "$(dirname "$0")/.."
ROOT=$PWD

if [ "$MODE" = query ]; then
  exec flock /tmp/cargo.lock cargo bench --bench spanmetrics -- "${@:2}"
fi
if [ "$MODE" != ingest ]; then
  echo "usage: $0 ingest|query" >&2
  exit 2
fi

WORK=${BENCH_WORK:-/tmp/bench14}
OUT=${BENCH_OUT:-$ROOT/docs/bench}
LOAD_SECS=${BENCH_LOAD_SECS:-20}
PAIRS=${BENCH_PAIRS:-4}
EXTRA=${BENCH_STRAND_TOML:-}
GRPC=24317 HTTP=24318 QUERY=36686
mkdir -p "$WORK" "$OUT"
if [ -n "${STRAND_BIN:-}" ]; then
  BIN=$(realpath "$STRAND_BIN")
else
  flock /tmp/cargo.lock cargo build --release --bin strand
  cp target/release/strand "$WORK/strand"
  BIN=$WORK/strand
fi
TICK=$(getconf CLK_TCK)
SERVER=""
cleanup() {
  if [ -n "$SERVER" ]; then kill "$SERVER" 2>/dev/null || true; wait "$SERVER" 2>/dev/null || true; fi
}
trap cleanup EXIT

config() { # config on|off: the whole config of one run
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
$EXTRA

[span_metrics]
enabled = $enabled
TOML
}

# shellcheck source=scripts/bench-lib.sh
source "$ROOT/scripts/bench-lib.sh"

LINES="$WORK/lines.jsonl"; : > "$LINES"
run() { # run PAIR on|off
  local pair=$1 mode=$2 before after
  rm -rf "$WORK/data"
  config "$mode" > "$WORK/$mode.toml"
  serve_on "$WORK/$mode.toml" "$WORK/serve-$pair-$mode.log" "$QUERY"
  before=$(cpu_ticks "$SERVER")
  "$BIN" loadgen --grpc-url "http://127.0.0.1:$GRPC" --query-url "http://127.0.0.1:$QUERY" \
    --duration "${LOAD_SECS}s" --lag-samples 0 --json --quiet > "$WORK/one.json"
  after=$(cpu_ticks "$SERVER")
  # Sanity: with metrics on the store answers; off, the API says 501.
  local status
  status=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$QUERY/api/metrics/minstep")
  kill "$SERVER"; wait "$SERVER" 2>/dev/null || true; SERVER=""
  python3 - "$WORK/one.json" "$pair" "$mode" "$before" "$after" "$TICK" "$status" "$LINES" <<'PY'
import json, sys
lg = json.load(open(sys.argv[1]))
pair, mode = int(sys.argv[2]), sys.argv[3]
before, after, tick, status = map(int, sys.argv[4:8])
cpu = (after - before) / tick
d = {"pair": pair, "span_metrics": mode, "spans_accepted": lg["spans_accepted"],
     "accepted_spans_per_sec": lg["accepted_spans_per_sec"], "server_cpu_secs": cpu,
     "spans_per_server_cpu_sec": lg["spans_accepted"] / max(cpu, 1e-9), "minstep_status": status}
open(sys.argv[8], "a").write(json.dumps(d) + "\n")
print(f"pair {pair} {mode:>3}: {d['accepted_spans_per_sec']:.0f} spans/s, cpu {cpu:.2f} s, "
      f"{d['spans_per_server_cpu_sec']:.0f} spans per CPU-second (minstep {status})", flush=True)
PY
}

echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
for p in $(seq 1 "$PAIRS"); do
  if [ $((p % 2)) = 1 ]; then run "$p" on; run "$p" off; else run "$p" off; run "$p" on; fi
done
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"

python3 - "$LINES" "$OUT/spanmetrics.jsonl" "$LOAD_SECS" "$(git rev-parse --short HEAD)" <<'PY'
import datetime, json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
by = {}
for r in rows:
    by.setdefault(r["pair"], {})[r["span_metrics"]] = r["spans_per_server_cpu_sec"]
ratios = []
for p in sorted(by):
    on, off = by[p]["on"], by[p]["off"]
    ratios.append(on / off)
    print(f"pair {p}: on {on:.0f} / off {off:.0f} = {on / off:.3f}")
on = statistics.mean(v["on"] for v in by.values())
off = statistics.mean(v["off"] for v in by.values())
print(f"mean of ratios {statistics.mean(ratios):.3f}, median {statistics.median(ratios):.3f}; "
      f"mean on / mean off {on / off:.3f} ({on:.0f} vs {off:.0f}); overhead {(1 - on / off) * 100:.1f} %")
with open(sys.argv[2], "a") as f:
    meta = {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "commit": sys.argv[4], "load_secs": int(sys.argv[3])}
    for r in rows:
        f.write(json.dumps({**meta, **r}) + "\n")
PY
