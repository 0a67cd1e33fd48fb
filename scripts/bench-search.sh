#!/bin/bash
# Search latency over a stored data set, through the internal hits API
# (search alone) and the Jaeger HTTP API (search + fetch + JSON of 20
# traces), and api_v3 search (the same, as OTLP JSON). Usage:
#   scripts/bench-search.sh load DIR [SPANS]   # fill DIR with SPANS (default 5M) via loadgen
#   scripts/bench-search.sh run BIN DIR LABEL  # serve a copy of DIR with BIN and time searches
# BIN is a release strand binary; runs on ports 24317/24318/36686.
set -euo pipefail
cfg() {
  cat <<TOML
[ingest]
grpc_addr = "127.0.0.1:24317"
http_addr = "127.0.0.1:24318"
zipkin_addr = ""
[storage]
dir = "$1"
[query]
addr = "127.0.0.1:36686"
TOML
}
wait_ready() { for _ in $(seq 100); do curl -sf 127.0.0.1:36686/readyz >/dev/null && return; sleep 0.3; done; echo "strand did not become ready" >&2; exit 1; }
B=http://127.0.0.1:36686
case "${1:-}" in
load)
  DIR=$2; SPANS=${3:-5000000}; BIN=${BIN:-target/release/strand}
  rm -rf "$DIR"; cfg "$DIR" > "$DIR.toml"
  "$BIN" serve --config "$DIR.toml" > "$DIR.log" 2>&1 & P=$!
  wait_ready
  "$BIN" loadgen --grpc-url http://127.0.0.1:24317 --query-url $B --spans "$SPANS" --lag-samples 0 | tail -3
  kill $P; wait $P 2>/dev/null || true
  ;;
run)
  BIN=$2; DIR=$3; L=$4; WORK="$DIR.run"
  rm -rf "$WORK"; cp -r "$DIR" "$WORK"; cfg "$WORK" > "$WORK.toml"
  "$BIN" serve --config "$WORK.toml" > "$WORK.log" 2>&1 & P=$!
  wait_ready
  tp() { for _ in $(seq 31); do curl -s -o /dev/null -w "%{time_total}\n" -H 'content-type: application/json' -d "$1" $B/internal/v1/search; done | sort -n | awk -v n="$2" -v l="$L" '{a[NR]=$1} END {printf "%s %-16s p50=%.2fms p90=%.2fms\n", l, n, a[16]*1000, a[28]*1000}'; }
  q() { echo "{\"service\":$1,\"operation\":null,\"span_kind\":null,\"tags\":[],\"min_duration_ns\":null,\"max_duration_ns\":null,\"start_ns\":null,\"end_ns\":null,\"limit\":20}"; }
  tp "$(q '"frontend"')" hits-frontend
  tp "$(q '"payment"')" hits-payment
  tp "$(q null)" hits-all
  for svc in frontend payment; do
    U="$B/api/traces?service=$svc&limit=20&lookback=24h"
    for _ in $(seq 31); do curl -s -o /dev/null -w "%{time_total}\n" "$U"; done | sort -n | awk -v l="$L" -v s=$svc '{a[NR]=$1} END {printf "%s api-%-12s p50=%.2fms p90=%.2fms\n", l, s, a[16]*1000, a[28]*1000}'
  done
  # api_v3 search as the Jaeger UI sends it.
  NOW=$(date -u +%Y-%m-%dT%H:%M:%SZ); AGO=$(date -u -d '-24 hours' +%Y-%m-%dT%H:%M:%SZ)
  for svc in frontend payment; do
    U="$B/api/v3/traces?query.service_name=$svc&query.start_time_min=$AGO&query.start_time_max=$NOW&query.search_depth=20"
    for _ in $(seq 31); do curl -s -o /dev/null -w "%{time_total}\n" "$U"; done | sort -n | awk -v l="$L" -v s=$svc '{a[NR]=$1} END {printf "%s v3-%-13s p50=%.2fms p90=%.2fms\n", l, s, a[16]*1000, a[28]*1000}'
  done
  kill $P; wait $P 2>/dev/null || true
  rm -rf "$WORK"
  ;;
*) sed -n 2,7p "$0"; exit 2 ;;
esac
