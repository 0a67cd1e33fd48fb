#!/usr/bin/env bash
# Regenerates the capacity figures of docs/BENCHMARKS.md:
#   1. criterion benches (release): OTLP decode ceiling, decode+convert,
#      Parquet export throughput and bytes/span;
#   2. `strand loadgen` against release `strand serve` deployments on this
#      machine: embedded (gRPC and HTTP, 1/2/4 connections, then query load
#      idle and under ingest), and with --kafka / --es the Kafka roles
#      (ingest, writer, query) and the Elasticsearch tier. Each run records
#      the CPU seconds the strand processes used, so throughput is also
#      reported per core-second of server CPU;
#   3. bytes/span per tier (sealed hot segments, Kafka log, Elasticsearch);
#   4. writes docs/bench/capacity.json and plots it (scripts/capacity-plot.py).
# Usage: scripts/bench.sh [--quick] [--no-criterion] [--no-serve] [--no-embedded] [--kafka] [--es]
#        scripts/bench.sh --peers   strand side by side with Jaeger v2 (memory
#                                   and Badger): scripts/bench-peers.sh
#   --quick         criterion --quick and shorter loadgen runs
#   BENCH_LOAD_SECS seconds per loadgen run (default 20, 8 with --quick)
#   --no-criterion  keep the criterion figures of the existing capacity.json
#   --no-serve      benches only
#   --no-embedded   skip the embedded deployment (with --kafka / --es)
#   --kafka, --es   also measure those deployments (starts the services with
#                   scripts/kafka.sh / scripts/elasticsearch.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${1:-}" = --peers ]; then exec scripts/bench-peers.sh; fi
ROOT=$PWD
OUT=${BENCH_OUT:-$ROOT/docs/bench}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
QUICK=""; SERVE=1; CRITERION=1; EMBEDDED=1; KAFKA=0; ES=0; LOAD_SECS=${BENCH_LOAD_SECS:-20}
for a in "$@"; do
  case $a in
    --quick) QUICK="--quick"; LOAD_SECS=${BENCH_LOAD_SECS:-8} ;;
    --no-serve) SERVE=0 ;;
    --no-criterion) CRITERION=0 ;;
    --no-embedded) EMBEDDED=0 ;;
    --kafka) KAFKA=1 ;;
    --es) ES=1 ;;
    *) echo "unknown argument $a" >&2; exit 2 ;;
  esac
done
mkdir -p "$OUT"
# shellcheck source=scripts/bench-lib.sh
source "$ROOT/scripts/bench-lib.sh"
WORK=$(mktemp -d)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

BENCH_SECS=0
if [ "$CRITERION" = 1 ]; then
  echo "== criterion benches (release) =="
  START=$(date +%s)
  cargo bench --bench ingest -- $QUICK 2>&1 | tee "$WORK/ingest.txt"
  cargo bench --bench export -- $QUICK 2>&1 | tee "$WORK/export.txt"
  BENCH_SECS=$(( $(date +%s) - START ))
fi
touch "$WORK/export.txt"

LOADGEN_JSON="$WORK/loadgen.jsonl"
TIERS_JSON="$WORK/tiers.jsonl"
: > "$LOADGEN_JSON"; : > "$TIERS_JSON"
TICK=$(getconf CLK_TCK)
STAMP=$(date +%s)

# cpu_ticks (scripts/bench-lib.sh) for ROLE=PID pairs, as "ROLE=TICKS ...".
cpu_by_role() {
  local rp
  for rp in "$@"; do echo -n "${rp%%=*}=$(cpu_ticks "${rp#*=}") "; done
}

# load DEPLOYMENT CONNECTIONS "ROLE=PID..." LOADGEN_ARGS...: one loadgen
# run, annotated with the CPU seconds each strand process used meanwhile.
load() {
  local deployment=$1 conns=$2 roles=$3; shift 3
  local before; before=$(cpu_by_role $roles)
  echo "-- $deployment: loadgen --connections $conns $*"
  "$BIN" loadgen --connections "$conns" --json --quiet "$@" > "$WORK/one.json"
  python3 - "$WORK/one.json" "$deployment" "$conns" "$TICK" "$before" "$(cpu_by_role $roles)" \
    >> "$LOADGEN_JSON" <<'PY'
import json, os, sys
d = json.load(open(sys.argv[1]))
d["deployment"], d["connections"], tick = sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
pairs = lambda s: {kv.split("=")[0]: int(kv.split("=")[1]) for kv in s.split()}
before, after = pairs(sys.argv[5]), pairs(sys.argv[6])
d["server_cpu_secs_by_role"] = {r: (after[r] - before[r]) / tick for r in after}
d["server_cpu_secs"] = sum(d["server_cpu_secs_by_role"].values())
if os.environ.get("STORED_SPANS"):
    d["stored_spans"] = int(os.environ["STORED_SPANS"])
if d.get("mode") == "ingest":
    d["spans_per_server_cpu_sec"] = d["spans_accepted"] / max(d["server_cpu_secs"], 1e-9)
print(json.dumps(d))
PY
  tail -n1 "$LOADGEN_JSON"
}

tier() { # tier NAME BYTES SPANS NOTE
  python3 -c 'import json,sys; b,s=int(sys.argv[2]),int(sys.argv[3]); print(json.dumps({"tier":sys.argv[1],"bytes":b,"spans":s,"bytes_per_span":b/max(s,1),"note":sys.argv[4]}))' \
    "$1" "$2" "$3" "$4" | tee -a "$TIERS_JSON"
}

accepted_since() { # total spans_accepted of loadgen lines after line N
  tail -n +"$(( $1 + 1 ))" "$LOADGEN_JSON" | python3 -c 'import json,sys; print(sum(json.loads(l).get("spans_accepted",0) for l in sys.stdin if l.strip()))'
}

if [ "$SERVE" = 1 ]; then
  cargo build --release --bin strand
  BIN=$CARGO_TARGET_DIR/release/strand

  if [ "$EMBEDDED" = 1 ]; then
    echo "== embedded: strand serve (hot store only) =="
    EMB=$(start_node embedded all 24317 "" ""); PIDS+=("$EMB")
    for proto in grpc http; do
      for conns in 1 2 4; do
        load embedded "$conns" "all=$EMB" --protocol "$proto" --duration "${LOAD_SECS}s" \
          --grpc-url http://127.0.0.1:24317 --http-url http://127.0.0.1:24318 --query-url http://127.0.0.1:24319
        if [ "$proto$conns" = grpc1 ]; then
          # Query latency with a first, smaller store.
          STORED_SPANS=$(accepted_since 0) load embedded-query-idle 4 "all=$EMB" --mode query \
            --duration "${LOAD_SECS}s" --query-url http://127.0.0.1:24319
        fi
      done
    done
    STORED=$(accepted_since 0)
    echo "-- query load, idle, $STORED spans stored"
    STORED_SPANS=$STORED load embedded-query-idle 4 "all=$EMB" --mode query --duration "${LOAD_SECS}s" --query-url http://127.0.0.1:24319
    echo "-- query load under ingest at 20k spans/s"
    "$BIN" loadgen --rate 20000 --connections 2 --duration "${LOAD_SECS}s" --lag-samples 0 --quiet \
      --grpc-url http://127.0.0.1:24317 > "$WORK/background.txt" 2>&1 &
    BG=$!
    STORED_SPANS=$STORED load embedded-query-under-ingest 4 "all=$EMB" --mode query --duration "${LOAD_SECS}s" --query-url http://127.0.0.1:24319
    wait "$BG" || echo "background ingest failed: $(cat "$WORK/background.txt")" >&2
    # Seal what is left so the sealed figures cover most of the data.
    for _ in $(seq 1 60); do
      [ "$(metric 24319 strand_store_sealed_spans)" -gt 0 ] && break
      sleep 1
    done
    tier hot-sealed "$(metric 24319 strand_store_sealed_bytes)" "$(metric 24319 strand_store_sealed_spans)" \
      "sealed Arrow IPC segments + roaring index + footer, from /metrics"
    stop_node "$EMB"
  fi

  if [ "$KAFKA" = 1 ]; then
    echo "== Kafka roles: ingest -> topic -> writer, query node over the writer =="
    scripts/kafka.sh start
    TOPIC="bench-$STAMP"
    KTOML="
[kafka]
enabled = true
brokers = \"127.0.0.1:9092\"
topic = \"$TOPIC\"
group_id = \"bench-writers-$STAMP\""
    W=$(start_node writer writer 25317 "" "$KTOML"); PIDS+=("$W")
    I=$(start_node ingest ingest 25327 "" "$KTOML"); PIDS+=("$I")
    Q=$(start_node query query 25337 "peers = [\"http://127.0.0.1:25319\"]" "$KTOML"); PIDS+=("$Q")
    FIRST=$(wc -l < "$LOADGEN_JSON")
    for proto in grpc http; do
      for conns in 4 8 16; do
        # Start each run with the writer caught up, so lag is this run's.
        sleep 3
        for _ in $(seq 1 300); do
          [ "$(metric 25319 strand_kafka_consumer_lag)" = 0 ] && break
          sleep 1
        done
        load kafka "$conns" "writer=$W ingest=$I query=$Q" --protocol "$proto" --duration "${LOAD_SECS}s" \
          --grpc-url http://127.0.0.1:25327 --http-url http://127.0.0.1:25328 --query-url http://127.0.0.1:25339
      done
    done
    SENT=$(accepted_since "$FIRST")
    LOGS=$(find "$ROOT/.services/kafka/data" -path "*/$TOPIC-*" -name '*.log' -printf '%s\n' | awk '{s+=$1} END {printf "%.0f\n", s}')
    tier kafka-log "$LOGS" "$SENT" "topic $TOPIC: zstd record batches (*.log files), one replica"
    stop_node "$W" "$I" "$Q"
  fi

  if [ "$ES" = 1 ]; then
    echo "== embedded with the Elasticsearch tier =="
    scripts/elasticsearch.sh start
    PREFIX="bench-$STAMP"
    E=$(start_node es all 26317 "" "
[elasticsearch]
enabled = true
url = \"http://127.0.0.1:9200\"
index_prefix = \"$PREFIX\""); PIDS+=("$E")
    FIRST=$(wc -l < "$LOADGEN_JSON")
    T0=$(date +%s.%N)
    load embedded+es 8 "all=$E" --protocol grpc --duration "${LOAD_SECS}s" \
      --grpc-url http://127.0.0.1:26317 --query-url http://127.0.0.1:26319
    SENT=$(accepted_since "$FIRST")
    count() { curl -fs "http://127.0.0.1:9200/$PREFIX-spans-*/_count" | python3 -c 'import json,sys; print(json.load(sys.stdin)["count"])' 2>/dev/null || echo 0; }
    for _ in $(seq 1 600); do [ "$(count)" -ge "$SENT" ] && break; sleep 1; done
    DRAINED=$(count)
    python3 -c 'import json,sys,time; n=int(sys.argv[1]); s=time.time()-float(sys.argv[2]); print(json.dumps({"deployment":"es-drain","mode":"es","documents":n,"secs":s,"docs_per_sec":n/s}))' \
      "$DRAINED" "$T0" | tee -a "$LOADGEN_JSON"
    curl -fs -XPOST "http://127.0.0.1:9200/$PREFIX-spans-*/_forcemerge?max_num_segments=1" >/dev/null || true
    curl -fs -XPOST "http://127.0.0.1:9200/$PREFIX-spans-*/_refresh" >/dev/null || true
    ESB=$(curl -fs "http://127.0.0.1:9200/_cat/indices/$PREFIX-spans-*?bytes=b&h=store.size" | awk '{s+=$1} END {printf "%.0f\n", s}')
    tier elasticsearch "$ESB" "$DRAINED" "daily indices after force-merge to one segment, no replica"
    stop_node "$E"
  fi
fi

python3 - "$CARGO_TARGET_DIR/criterion" "$WORK" "$OUT/capacity.json" "$BENCH_SECS" "$QUICK" "$CRITERION" <<'PY'
import glob, json, os, platform, re, subprocess, sys, datetime
crit, work, out, bench_secs, quick, fresh = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5], sys.argv[6] == "1"
old = json.load(open(out)) if os.path.exists(out) else {}
benches, sizes = {}, {}
if fresh:
    for bj in glob.glob(os.path.join(crit, "*", "*", "new", "benchmark.json")):
        b = json.load(open(bj))
        est = json.load(open(os.path.join(os.path.dirname(bj), "estimates.json")))
        ns = est["mean"]["point_estimate"]
        elems = (b.get("throughput") or {}).get("Elements")
        if b["group_id"] not in ("ingest", "export") or not elems:
            continue
        benches[b["group_id"] + "/" + b["function_id"]] = {
            "ns_per_iter": ns, "elements": elems, "spans_per_sec": elems / (ns * 1e-9)}
    for line in open(os.path.join(work, "export.txt")):
        m = re.match(r"BYTES_PER_SPAN (\S+) ([0-9.]+)", line)
        if m:
            sizes[m.group(1)] = float(m.group(2))
else:
    benches, sizes = old.get("benches", {}), old.get("export_bytes_per_span", {})
    bench_secs = old.get("bench_wall_secs", 0)
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "unknown")
rows = lambda f: [json.loads(l) for l in open(os.path.join(work, f)) if l.strip()]
ceiling = benches.get("ingest/decode", {}).get("spans_per_sec")
doc = {
    "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
    "machine": {"nproc": os.cpu_count(), "cpu": cpu, "kernel": platform.release(),
                "loadavg_at_end": open("/proc/loadavg").read().split()[:3]},
    "commit": subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip(),
    "criterion_mode": ("quick" if quick else "full") if fresh else old.get("criterion_mode"),
    "criterion_date": old.get("criterion_date", old.get("date")) if not fresh else None,
    "bench_wall_secs": bench_secs,
    "benches": benches,
    "ratio_to_decode_ceiling": {k: v["spans_per_sec"] / ceiling for k, v in benches.items()} if ceiling else {},
    "export_bytes_per_span": sizes,
    "loadgen": rows("loadgen.jsonl"),
    "tiers": rows("tiers.jsonl"),
}
if fresh:
    doc["criterion_date"] = doc["date"]
json.dump(doc, open(out, "w"), indent=2)
for r in doc["loadgen"]:
    if r.get("mode") == "ingest":
        lag = r.get("lag") or {}
        print(f'{r["deployment"]:>12} {r["protocol"]:>4} x{r["connections"]}: {r["accepted_spans_per_sec"]:>9.0f} spans/s, '
              f'{r.get("spans_per_server_cpu_sec", 0):>9.0f} spans per server CPU-second, lag {lag}')
print("tiers:", [(t["tier"], round(t["bytes_per_span"], 1)) for t in doc["tiers"]])
print("wrote", out)
PY

if python3 -c 'import matplotlib' 2>/dev/null || pip install -q -r scripts/requirements.txt; then
  python3 scripts/capacity-plot.py "$OUT/capacity.json" "$OUT"
fi
