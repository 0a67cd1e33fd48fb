#!/usr/bin/env bash
# Autocomplete and dependency-graph latency at scale.
#
#   scripts/bench-catalog.sh [SPANS]        (default 10,000,000)
#
# Builds the `store` bench in release, then runs its catalog mode: SPANS
# spans (10-span traces over 500 services, spread over the last 22 hours)
# written straight into a hot store in a temp dir and sealed into
# 200,000-span segments, then `/api/dependencies` (one day) and Tempo tag
# values requests through the query API's HTTP service in process, each
# answered from the catalog/graph and by the sampling path it replaced
# (`strategy=sample`), with p50/p99 per request. The table it prints is
# what docs/BENCHMARKS.md records.
set -euo pipefail
cd "$(dirname "$0")/.."
SPANS="${1:-10000000}"
# Build under the machine-wide cargo lock, run without it.
BIN="$(flock /tmp/cargo.lock cargo bench --bench store --no-run 2>&1 \
  | sed -n 's/.*Executable .*(\(.*\)).*/\1/p' | tail -1)"
if [[ -z "$BIN" || ! -x "$BIN" ]]; then
  echo "bench-catalog: could not find the bench binary" >&2
  exit 1
fi
echo "bench-catalog: $BIN, $SPANS spans, $(nproc) cores" >&2
STRAND_BENCH_CATALOG_SPANS="$SPANS" "$BIN"
