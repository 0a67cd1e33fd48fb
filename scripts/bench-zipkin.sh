#!/usr/bin/env bash
# Zipkin v2 JSON ingest against OTLP/HTTP protobuf in the same run: one
# release `strand serve` (embedded, default config), `strand loadgen` with
# the same generated traces over each protocol in turn (ROUNDS times,
# alternating), and the strand process's CPU seconds during each run, so the
# figure to compare is spans per strand CPU-second.
#   scripts/bench-zipkin.sh            # BENCH_LOAD_SECS=15, ROUNDS=2, 4 connections
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
BIN=${STRAND_BIN:-${CARGO_TARGET_DIR:-$ROOT/target}/release/strand}
SECS=${BENCH_LOAD_SECS:-15}; ROUNDS=${ROUNDS:-2}; CONNS=${CONNS:-4}
# shellcheck source=scripts/bench-lib.sh
source "$ROOT/scripts/bench-lib.sh"
WORK=$(mktemp -d)
PID=""
trap '[ -n "$PID" ] && stop_node "$PID"; rm -rf "$WORK"' EXIT
PID=$(start_node zipkin all 26317 "" "")
TICK=$(getconf CLK_TCK)
for round in $(seq 1 "$ROUNDS"); do
  for proto in http zipkin; do
    before=$(cpu_ticks "$PID")
    "$BIN" loadgen --protocol "$proto" --connections "$CONNS" --duration "${SECS}s" \
      --http-url http://127.0.0.1:26318 --zipkin-url http://127.0.0.1:26320 \
      --query-url http://127.0.0.1:26319 --lag-samples 0 --quiet --json > "$WORK/run.json"
    after=$(cpu_ticks "$PID")
    python3 - "$WORK/run.json" "$round" "$proto" "$before" "$after" "$TICK" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
cpu = (int(sys.argv[5]) - int(sys.argv[4])) / int(sys.argv[6])
print(f"round {sys.argv[2]} {sys.argv[3]:>6}: {d['spans_accepted']:>8} spans in {d['elapsed_secs']:.1f}s "
      f"= {d['accepted_spans_per_sec']:>7.0f} spans/s, strand CPU {cpu:.1f}s "
      f"= {d['spans_accepted'] / max(cpu, 1e-9):>7.0f} spans per strand CPU-second, "
      f"p50 {d['latency_ms']['p50']:.1f} ms, failed {d['spans_failed']}, rejected {d['spans_rejected']}")
PY
  done
done
