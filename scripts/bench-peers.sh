#!/usr/bin/env bash
# strand side by side with Jaeger v2 (in-memory store and Badger) on this
# machine, in one run: the same `strand loadgen` load (OTLP/gRPC, full
# speed) into each, alternating targets round by round, then the same query
# load (`loadgen --mode query`: trace by id and `service=X&limit=20`
# search through the Jaeger HTTP API both serve). Per run: accepted spans/s,
# spans per server CPU-second (utime + stime from /proc), trace-by-id and
# search latency, peak RSS (VmHWM). Prints a markdown table with strand's
# ratio to each peer, appends JSON lines to $BENCH_OUT/peers.jsonl and
# plots the run to $BENCH_OUT/peers.png (matplotlib, scripts/requirements.txt).
#
#   STRAND_BIN        release strand (default: cargo build --release)
#   JAEGER_BIN        Jaeger v2 all-in-one (default: built once from its Go
#                     module, v1.76.0, into target/peers/jaeger)
#   BENCH_SPANS       spans per ingest run (default 2000000)
#   BENCH_CONNS       loadgen connections (default 4)
#   BENCH_QUERY_SECS  seconds of query load per run (default 20)
#   BENCH_ROUNDS      rounds of strand, jaeger-memory, jaeger-badger (default 2)
#   BENCH_TARGETS     subset, e.g. "strand jaeger-memory" (default all three)
# All three listen on the same ports (OTLP 4317, Jaeger API 16686), so they
# run one at a time; stop anything else on those ports first.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
OUT=${BENCH_OUT:-$ROOT/docs/bench}
SPANS=${BENCH_SPANS:-2000000}
CONNS=${BENCH_CONNS:-4}
QSECS=${BENCH_QUERY_SECS:-20}
ROUNDS=${BENCH_ROUNDS:-2}
TARGETS=${BENCH_TARGETS:-strand jaeger-memory jaeger-badger}
WORK=$(mktemp -d /tmp/bench-peers.XXXX)
mkdir -p "$OUT"
PID=""
cleanup() { [ -n "$PID" ] && kill "$PID" 2>/dev/null; wait 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT

BIN=${STRAND_BIN:-}
if [ -z "$BIN" ]; then
  cargo build --release --quiet --bin strand
  BIN="$WORK/strand"; cp target/release/strand "$BIN"
fi
JAEGER=${JAEGER_BIN:-$ROOT/target/peers/jaeger}
if [ ! -x "$JAEGER" ]; then
  echo "building Jaeger v2 from its Go module (once; ~5 min on 2 cores)"
  mkdir -p "$ROOT/target/peers/build"
  (cd "$ROOT/target/peers/build" && { [ -f go.mod ] || go mod init peers >/dev/null; } \
    && go get -tool github.com/jaegertracing/jaeger/cmd/jaeger@v1.76.0 \
    && go build -o "$JAEGER" github.com/jaegertracing/jaeger/cmd/jaeger)
fi

# Jaeger v2 configs: OTLP in, one store, the query API on :16686. The
# memory store's trace cap is raised so it keeps the whole run.
jaeger_config() { # STORE_YAML
  cat <<YAML
service:
  extensions: [jaeger_storage, jaeger_query, healthcheckv2]
  pipelines:
    traces:
      receivers: [otlp]
      processors: [batch]
      exporters: [jaeger_storage_exporter]
  telemetry:
    metrics:
      level: none
extensions:
  healthcheckv2:
    use_v2: true
    http:
  jaeger_query:
    storage:
      traces: store
  jaeger_storage:
    backends:
      store:
$1
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: 127.0.0.1:4317
      http:
        endpoint: 127.0.0.1:4318
processors:
  batch:
exporters:
  jaeger_storage_exporter:
    trace_storage: store
YAML
}

start() { # TARGET DIR -> sets PID
  local t=$1 d=$2
  mkdir -p "$d"
  case $t in
    strand)
      printf '[ingest]\ngrpc_addr = "127.0.0.1:4317"\nhttp_addr = "127.0.0.1:4318"\nzipkin_addr = ""\n[query]\naddr = "127.0.0.1:16686"\n[storage]\ndir = "%s/data"\n' "$d" > "$d/strand.toml"
      "$BIN" serve --config "$d/strand.toml" > "$d/log" 2>&1 &
      ;;
    jaeger-memory)
      jaeger_config "        memory:
          max_traces: 10000000" > "$d/jaeger.yaml"
      "$JAEGER" --config "$d/jaeger.yaml" > "$d/log" 2>&1 &
      ;;
    jaeger-badger)
      jaeger_config "        badger:
          directories:
            keys: $d/badger
            values: $d/badger
          ephemeral: false" > "$d/jaeger.yaml"
      "$JAEGER" --config "$d/jaeger.yaml" > "$d/log" 2>&1 &
      ;;
  esac
  PID=$!
  for _ in $(seq 300); do
    curl -sf 127.0.0.1:16686/api/services >/dev/null 2>&1 && return 0
    sleep 0.2
  done
  echo "$t did not come up:" >&2; tail -20 "$d/log" >&2; exit 1
}

ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
TICK=$(getconf CLK_TCK)
RESULTS="$WORK/results.jsonl"; : > "$RESULTS"
for round in $(seq "$ROUNDS"); do
  for t in $TARGETS; do
    d="$WORK/$t-$round"
    start "$t" "$d"
    c0=$(ticks "$PID")
    "$BIN" loadgen --grpc-url http://127.0.0.1:4317 --query-url http://127.0.0.1:16686 \
      --connections "$CONNS" --batch 500 --spans "$SPANS" --lag-samples 0 --json --quiet > "$d/ingest.json"
    c1=$(ticks "$PID")
    # The query load needs the last batches searchable: wait until a
    # search of some service answers (Jaeger batches before it stores).
    for _ in $(seq 100); do
      curl -s '127.0.0.1:16686/api/traces?service=frontend&limit=1&lookback=1h' | grep -q traceID && break
      sleep 0.2
    done
    "$BIN" loadgen --mode query --query-url http://127.0.0.1:16686 --connections 1 \
      --duration "${QSECS}s" --json --quiet > "$d/query.json"
    hwm=$(awk '/VmHWM/ {print $2}' "/proc/$PID/status")
    kill "$PID"; wait "$PID" 2>/dev/null || true; PID=""
    python3 - "$d" "$t" "$round" "$c0" "$c1" "$TICK" "$hwm" >> "$RESULTS" <<'PY'
import json, sys
d, t, rnd, c0, c1, tick, hwm = sys.argv[1:]
ing = json.load(open(f"{d}/ingest.json"))
q = json.load(open(f"{d}/query.json"))["query"]
cpu = (float(c1) - float(c0)) / float(tick)
print(json.dumps({
    "target": t, "round": int(rnd),
    "spans": ing["spans_accepted"], "failed": ing["spans_failed"],
    "spans_per_sec": ing["accepted_spans_per_sec"],
    "spans_per_cpu_sec": ing["spans_accepted"] / cpu if cpu > 0 else None,
    "trace_by_id_p50_ms": q["trace_by_id_ms"]["p50"], "trace_by_id_p99_ms": q["trace_by_id_ms"]["p99"],
    "search_p50_ms": q["search_ms"]["p50"], "search_p99_ms": q["search_ms"]["p99"],
    "query_errors": q["errors"], "peak_rss_mib": int(hwm) / 1024,
}))
PY
    tail -1 "$RESULTS"
  done
done
cat "$RESULTS" >> "$OUT/peers.jsonl"

python3 - "$RESULTS" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
targets = list(dict.fromkeys(r["target"] for r in rows))
figs = [("ingest, spans/s", "spans_per_sec", True), ("spans per server CPU-second", "spans_per_cpu_sec", True),
        ("trace by id, p50 ms", "trace_by_id_p50_ms", False), ("trace by id, p99 ms", "trace_by_id_p99_ms", False),
        ("search, p50 ms", "search_p50_ms", False), ("search, p99 ms", "search_p99_ms", False),
        ("peak RSS, MiB", "peak_rss_mib", False)]
def span(t, k):
    v = [r[k] for r in rows if r["target"] == t and r[k] is not None]
    return (min(v), max(v), sum(v) / len(v)) if v else None
fmt = lambda x: f"{x:.3g}" if x < 100 else f"{x:,.0f}"
print("| figure | " + " | ".join(targets) + " | " + " | ".join(f"strand vs {t}" for t in targets if t != "strand") + " |")
print("|---" * (1 + len(targets) + len(targets) - 1) + "|")
for name, k, higher in figs:
    cells = []
    for t in targets:
        s = span(t, k)
        cells.append("–" if s is None else (fmt(s[0]) if s[0] == s[1] else f"{fmt(s[0])}–{fmt(s[1])}"))
    ratios = []
    me = span("strand", k)
    for t in targets:
        if t == "strand":
            continue
        o = span(t, k)
        if me is None or o is None or min(me[2], o[2]) <= 0:
            ratios.append("–")
        else:
            r = me[2] / o[2] if higher else o[2] / me[2]
            ratios.append(f"{r:.2f}× {'better' if r >= 1 else 'worse'}")
    print(f"| {name} | " + " | ".join(cells) + " | " + " | ".join(ratios) + " |")
PY

python3 - "$RESULTS" "$OUT/peers.png" <<'PY'
import json, sys
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
rows = [json.loads(l) for l in open(sys.argv[1])]
targets = list(dict.fromkeys(r["target"] for r in rows))
figs = [("spans per CPU-s (k)", "spans_per_cpu_sec", 1e-3), ("trace by id p50 (ms)", "trace_by_id_p50_ms", 1),
        ("search p50 (ms)", "search_p50_ms", 1), ("peak RSS (GiB)", "peak_rss_mib", 1 / 1024)]
fig, axes = plt.subplots(1, len(figs), figsize=(4 * len(figs), 3.2))
for ax, (name, k, scale) in zip(axes, figs):
    means = []
    for t in targets:
        v = [r[k] for r in rows if r["target"] == t and r[k] is not None]
        means.append(sum(v) / len(v) * scale if v else 0)
    ax.bar(targets, means, color=["#2a7" if t == "strand" else "#888" for t in targets])
    ax.set_title(name, fontsize=10)
    ax.tick_params(axis="x", labelrotation=20, labelsize=8)
fig.tight_layout()
fig.savefig(sys.argv[2], dpi=110)
print("plot:", sys.argv[2])
PY
