#!/usr/bin/env bash
# Regenerates the capacity figures of docs/BENCHMARKS.md:
#   1. criterion benches (release): OTLP decode ceiling, decode+convert,
#      Parquet export throughput and bytes/span;
#   2. if `strand serve` is available: loadgen against a fresh embedded
#      server (gRPC and HTTP, 1..N connections) and query-mode load;
#   3. writes docs/bench/capacity.json and plots it (scripts/capacity-plot.py).
# Usage: scripts/bench.sh [--quick] [--no-serve]
#   --quick     criterion --quick and shorter loadgen runs
#   --no-serve  benches only
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
OUT=${BENCH_OUT:-$ROOT/docs/bench}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
QUICK=""; SERVE=1; LOAD_SECS=20
for a in "$@"; do
  case $a in
    --quick) QUICK="--quick"; LOAD_SECS=8 ;;
    --no-serve) SERVE=0 ;;
    *) echo "unknown argument $a" >&2; exit 2 ;;
  esac
done
mkdir -p "$OUT"
WORK=$(mktemp -d)
SERVER_PID=""
cleanup() { [ -n "$SERVER_PID" ] && kill "$SERVER_PID" 2>/dev/null; rm -rf "$WORK"; }
trap cleanup EXIT

echo "== criterion benches (release) =="
START=$(date +%s)
cargo bench --bench ingest -- $QUICK 2>&1 | tee "$WORK/ingest.txt"
cargo bench --bench export -- $QUICK 2>&1 | tee "$WORK/export.txt"
BENCH_SECS=$(( $(date +%s) - START ))

LOADGEN_JSON="$WORK/loadgen.jsonl"
: > "$LOADGEN_JSON"
if [ "$SERVE" = 1 ]; then
  cargo build --release --bin strand
  BIN=$CARGO_TARGET_DIR/release/strand
  if "$BIN" serve --help >/dev/null 2>&1 && "$BIN" loadgen --help >/dev/null 2>&1; then
    echo "== loadgen against strand serve =="
    cat > "$WORK/strand.toml" <<TOML
[storage]
dir = "$WORK/data"
TOML
    "$BIN" serve --config "$WORK/strand.toml" > "$WORK/serve.log" 2>&1 &
    SERVER_PID=$!
    for _ in $(seq 1 100); do
      curl -fs http://127.0.0.1:16686/api/services >/dev/null 2>&1 && break
      sleep 0.2
    done
    curl -fs http://127.0.0.1:16686/api/services >/dev/null || { echo "strand serve did not come up; see $WORK/serve.log" >&2; cat "$WORK/serve.log" >&2; exit 1; }
    for proto in grpc http; do
      for conns in 1 2 4; do
        echo "-- $proto, $conns connection(s), ${LOAD_SECS}s, as fast as possible"
        "$BIN" loadgen --protocol "$proto" --connections "$conns" --duration "${LOAD_SECS}s" --json --quiet \
          | python3 -c 'import json,sys; d=json.load(sys.stdin); d["connections"]='"$conns"'; print(json.dumps(d))' >> "$LOADGEN_JSON"
        tail -n1 "$LOADGEN_JSON"
      done
    done
    echo "-- query load"
    "$BIN" loadgen --mode query --connections 4 --duration "${LOAD_SECS}s" --json --quiet >> "$LOADGEN_JSON" || echo "query load failed" >&2
  else
    echo "strand serve/loadgen not wired in this build: skipping the end-to-end part" >&2
  fi
fi

python3 - "$CARGO_TARGET_DIR/criterion" "$WORK" "$OUT/capacity.json" "$BENCH_SECS" "$QUICK" <<'PY'
import glob, json, os, platform, re, subprocess, sys, datetime
crit, work, out, bench_secs, quick = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5]
benches = {}
for bj in glob.glob(os.path.join(crit, "*", "*", "new", "benchmark.json")):
    b = json.load(open(bj))
    est = json.load(open(os.path.join(os.path.dirname(bj), "estimates.json")))
    ns = est["mean"]["point_estimate"]
    elems = (b.get("throughput") or {}).get("Elements")
    if b["group_id"] not in ("ingest", "export") or not elems:
        continue
    benches[b["group_id"] + "/" + b["function_id"]] = {
        "ns_per_iter": ns, "elements": elems, "spans_per_sec": elems / (ns * 1e-9)}
sizes = {}
for line in open(os.path.join(work, "export.txt")):
    m = re.match(r"BYTES_PER_SPAN (\S+) ([0-9.]+)", line)
    if m:
        sizes[m.group(1)] = float(m.group(2))
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "unknown")
loadgen = [json.loads(l) for l in open(os.path.join(work, "loadgen.jsonl")) if l.strip()]
ceiling = benches.get("ingest/decode", {}).get("spans_per_sec")
ratios = {k: v["spans_per_sec"] / ceiling for k, v in benches.items() if ceiling}
doc = {
    "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
    "machine": {"nproc": os.cpu_count(), "cpu": cpu, "kernel": platform.release()},
    "commit": subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip(),
    "criterion_mode": "quick" if quick else "full",
    "bench_wall_secs": bench_secs,
    "benches": benches,
    "ratio_to_decode_ceiling": ratios,
    "export_bytes_per_span": sizes,
    "loadgen": loadgen,
}
json.dump(doc, open(out, "w"), indent=2)
print(json.dumps({k: round(v["spans_per_sec"]) for k, v in benches.items()}, indent=2))
print("bytes/span:", sizes)
print("wrote", out)
PY

if python3 -c 'import matplotlib' 2>/dev/null || pip install -q -r scripts/requirements.txt; then
  python3 scripts/capacity-plot.py "$OUT/capacity.json" "$OUT"
fi
