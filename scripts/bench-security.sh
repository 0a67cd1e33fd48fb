#!/usr/bin/env bash
# Ingest cost of TLS + an API key against plaintext (docs/BENCHMARKS.md,
# "Security").
#
# One release binary; a fresh embedded `strand serve` per run, alternating
# tls, plain, plain, tls, … so drift on a shared machine hits both arms.
# The tls arm has `[tls]` on the OTLP listeners (a CA and server
# certificate made here with openssl) and one `[[ingest.clients]]` entry,
# and `strand loadgen` sends over https with `--tls-ca` and `--api-key`;
# the plain arm has neither. The query port stays plaintext in both
# (`tls.plaintext_listeners`), so readiness is probed the same way. Each
# run is driven by `strand loadgen` (gRPC, full speed) for BENCH_LOAD_SECS;
# the figures are accepted spans/s and accepted spans per server
# CPU-second (utime + stime of /proc/PID/stat before and after the load).
# Appends JSON lines to $BENCH_OUT/security.jsonl.
#   STRAND_BIN         binary (default: cargo build --release, copied to WORK)
#   BENCH_WORK         scratch directory (default /tmp/bench16)
#   BENCH_LOAD_SECS    seconds per run (default 20)
#   BENCH_PAIRS        tls/plain pairs (default 3)
#   BENCH_PROTOCOL     grpc or http (default grpc)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
WORK=${BENCH_WORK:-/tmp/bench16}
OUT=${BENCH_OUT:-$ROOT/docs/bench}
LOAD_SECS=${BENCH_LOAD_SECS:-20}
PAIRS=${BENCH_PAIRS:-3}
PROTOCOL=${BENCH_PROTOCOL:-grpc}
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
SERVER=""
cleanup() {
  if [ -n "$SERVER" ]; then kill "$SERVER" 2>/dev/null || true; wait "$SERVER" 2>/dev/null || true; fi
}
trap cleanup EXIT

# A CA and a server certificate for localhost (P-256, as most deployments).
PKI=$WORK/pki; mkdir -p "$PKI"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
  -subj "/CN=bench CA" -keyout "$PKI/ca.key" -out "$PKI/ca.crt" 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
  -subj "/CN=localhost" -keyout "$PKI/server.key" -out "$PKI/server.csr" 2>/dev/null
printf 'subjectAltName=DNS:localhost\n' > "$PKI/ext.cnf"
openssl x509 -req -in "$PKI/server.csr" -CA "$PKI/ca.crt" -CAkey "$PKI/ca.key" -CAcreateserial \
  -days 2 -extfile "$PKI/ext.cnf" -out "$PKI/server.crt" 2>/dev/null
KEY=$("$BIN" auth new-key | awk '/^key:/ {print $2}')
HASH=$(printf '%s\n' "$KEY" | "$BIN" auth hash-key)

config() { # config tls|plain
  cat <<TOML
[ingest]
grpc_addr = "127.0.0.1:$GRPC"
http_addr = "127.0.0.1:$HTTP"
zipkin_addr = ""

[query]
addr = "127.0.0.1:$QUERY"

[storage]
dir = "$WORK/data"
TOML
  if [ "$1" = tls ]; then
    cat <<TOML

[[ingest.clients]]
name = "bench"
api_key_hash = "$HASH"

[tls]
cert_file = "$PKI/server.crt"
key_file = "$PKI/server.key"
plaintext_listeners = ["query_http"]
TOML
  fi
}

# shellcheck source=scripts/bench-lib.sh
source "$ROOT/scripts/bench-lib.sh"

LINES="$WORK/lines.jsonl"; : > "$LINES"
run() { # run PAIR tls|plain
  local pair=$1 mode=$2 before after
  rm -rf "$WORK/data"
  config "$mode" > "$WORK/$mode.toml"
  serve_on "$WORK/$mode.toml" "$WORK/serve-$pair-$mode.log" "$QUERY"
  local scheme=http sec=()
  if [ "$mode" = tls ]; then scheme=https; sec=(--tls-ca "$PKI/ca.crt" --api-key "$KEY"); fi
  before=$(cpu_ticks "$SERVER")
  "$BIN" loadgen --protocol "$PROTOCOL" --grpc-url "$scheme://localhost:$GRPC" \
    --http-url "$scheme://localhost:$HTTP" --query-url "http://127.0.0.1:$QUERY" "${sec[@]}" \
    --duration "${LOAD_SECS}s" --lag-samples 0 --json --quiet > "$WORK/one.json"
  after=$(cpu_ticks "$SERVER")
  # Sanity: the tls arm's spans were counted for the client.
  local counted
  counted=$(curl -s "http://127.0.0.1:$QUERY/metrics" \
    | awk '/^strand_ingest_client_spans_total\{client="bench"\}/ {print $2}')
  kill "$SERVER"; wait "$SERVER" 2>/dev/null || true; SERVER=""
  python3 - "$WORK/one.json" "$pair" "$mode" "$before" "$after" "$TICK" "${counted:-0}" "$LINES" "$PROTOCOL" <<'PY'
import json, sys
lg = json.load(open(sys.argv[1]))
pair, mode = int(sys.argv[2]), sys.argv[3]
before, after, tick = map(int, sys.argv[4:7])
counted = float(sys.argv[7])
cpu = (after - before) / tick
if mode == "tls" and counted < lg["spans_accepted"]:
    sys.exit(f"client counter {counted} < accepted {lg['spans_accepted']}")
if lg.get("spans_failed", 0):
    sys.exit(f"loadgen failures: {lg}")
d = {"pair": pair, "arm": mode, "protocol": sys.argv[9], "spans_accepted": lg["spans_accepted"],
     "accepted_spans_per_sec": lg["accepted_spans_per_sec"], "server_cpu_secs": cpu,
     "spans_per_server_cpu_sec": lg["spans_accepted"] / max(cpu, 1e-9)}
open(sys.argv[8], "a").write(json.dumps(d) + "\n")
print(f"pair {pair} {mode:>5}: {d['accepted_spans_per_sec']:.0f} spans/s, cpu {cpu:.2f} s, "
      f"{d['spans_per_server_cpu_sec']:.0f} spans per CPU-second", flush=True)
PY
}

echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
for p in $(seq 1 "$PAIRS"); do
  if [ $((p % 2)) = 1 ]; then run "$p" tls; run "$p" plain; else run "$p" plain; run "$p" tls; fi
done
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"

python3 - "$LINES" "$OUT/security.jsonl" "$LOAD_SECS" "$(git rev-parse --short HEAD)" <<'PY'
import datetime, json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
for metric in ("accepted_spans_per_sec", "spans_per_server_cpu_sec"):
    by = {}
    for r in rows:
        by.setdefault(r["pair"], {})[r["arm"]] = r[metric]
    ratios = [v["tls"] / v["plain"] for _, v in sorted(by.items())]
    tls = statistics.mean(v["tls"] for v in by.values())
    plain = statistics.mean(v["plain"] for v in by.values())
    print(f"{metric}: tls/plain per pair {', '.join(f'{r:.3f}' for r in ratios)}; "
          f"mean {tls:.0f} vs {plain:.0f}; cost {(1 - tls / plain) * 100:.1f} %")
with open(sys.argv[2], "a") as f:
    meta = {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "commit": sys.argv[4], "load_secs": int(sys.argv[3])}
    for r in rows:
        f.write(json.dumps({**meta, **r}) + "\n")
PY
