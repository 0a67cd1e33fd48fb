#!/usr/bin/env bash
# Runs every strand test from a fresh clone: installs and starts what the
# tests need (a real Apache Kafka broker, a real Elasticsearch, Debian's
# Chromium with playwright-core, pyarrow and DuckDB), builds, runs the Rust,
# browser and Python suites, and prints one closing summary line.
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
LOG=$ROOT/target/test-logs
mkdir -p "$LOG"
export CARGO_TERM_COLOR=never
export STRAND_KAFKA_BROKERS=127.0.0.1:9092
export STRAND_ES_URL=http://127.0.0.1:9200

step() { printf '\n==> %s (%s)\n' "$*" "$(date -u +%T)"; }
cleanup() {
  scripts/kafka.sh stop >/dev/null 2>&1 || true
  scripts/elasticsearch.sh stop >/dev/null 2>&1 || true
}
trap cleanup EXIT

# Downloads run while the Rust build uses the CPU.
step "installing services and test clients in the background"
( scripts/kafka.sh install && scripts/elasticsearch.sh install ) >"$LOG/services-install.log" 2>&1 &
SERVICES_PID=$!
( scripts/ui-test.sh install ) >"$LOG/ui-install.log" 2>&1 &
UI_PID=$!
( python3 -m pip install --quiet --disable-pip-version-check -r tests/requirements.txt ) >"$LOG/pip-install.log" 2>&1 &
PIP_PID=$!

step "format and lint"
cargo fmt --all -- --check || { echo "cargo fmt --check failed"; exit 1; }

step "building strand and its tests"
cargo build --bins --tests 2>&1 | tail -n 3
[ "${PIPESTATUS[0]}" -eq 0 ] || { echo "build failed"; exit 1; }

wait_or_fail() { # pid name log
  wait "$1" || { echo "$2 failed; its log:"; tail -n 60 "$3"; exit 1; }
}
wait_or_fail $SERVICES_PID "service install" "$LOG/services-install.log"
step "starting Kafka and Elasticsearch"
scripts/kafka.sh start || { echo "Kafka did not start"; exit 1; }
scripts/elasticsearch.sh start || { echo "Elasticsearch did not start"; exit 1; }

PASSED=0; FAILED=0
count_cargo() { # log
  local p f
  p=$(awk '/^test result:/ { for (i = 1; i <= NF; i++) if ($(i+1) ~ /^passed/) s += $i } END { print s + 0 }' "$1")
  f=$(awk '/^test result:/ { for (i = 1; i <= NF; i++) if ($(i+1) ~ /^failed/) s += $i } END { print s + 0 }' "$1")
  PASSED=$((PASSED + p)); FAILED=$((FAILED + f))
}

step "cargo test (unit, property, integration against real Kafka and Elasticsearch)"
cargo test --no-fail-fast 2>&1 | tee "$LOG/cargo-test.log"
CARGO_RC=${PIPESTATUS[0]}
count_cargo "$LOG/cargo-test.log"
[ "$CARGO_RC" -eq 0 ] || FAILED=$((FAILED > 0 ? FAILED : 1))

step "clippy"
cargo clippy --all-targets --quiet -- -D warnings 2>&1 | tail -n 30
[ "${PIPESTATUS[0]}" -eq 0 ] || { echo "clippy found problems"; FAILED=$((FAILED + 1)); }

wait_or_fail $UI_PID "browser test setup" "$LOG/ui-install.log"
step "browser tests (headless Chromium against a real strand)"
STRAND_BIN=$ROOT/target/debug/strand scripts/ui-test.sh run 2>&1 | tee "$LOG/ui-test.log"
UI_RC=${PIPESTATUS[0]}
p=$(grep -E '^# pass ' "$LOG/ui-test.log" | awk '{s+=$3} END {print s+0}')
f=$(grep -E '^# fail ' "$LOG/ui-test.log" | awk '{s+=$3} END {print s+0}')
PASSED=$((PASSED + p)); FAILED=$((FAILED + f))
[ "$UI_RC" -eq 0 ] || FAILED=$((FAILED > 0 ? FAILED : 1))

wait_or_fail $PIP_PID "pip install" "$LOG/pip-install.log"
step "Parquet files read by pyarrow and DuckDB"
EXPORT_DIR=$(mktemp -d)
STRAND_EXPORT_FIXTURE_DIR=$EXPORT_DIR cargo test --test export -- --exact fixture_for_external_readers >"$LOG/export-fixture.log" 2>&1 \
  && python3 tests/parquet_readers.py "$EXPORT_DIR" 2>&1 | tee "$LOG/parquet-readers.log"
PY_RC=${PIPESTATUS[0]}
# One check per reader: pyarrow, DuckDB.
p=$(grep -cE '^(pyarrow|duckdb) .* ok' "$LOG/parquet-readers.log" 2>/dev/null || true)
PASSED=$((PASSED + ${p:-0}))
[ "$PY_RC" -eq 0 ] || { FAILED=$((FAILED + 1)); tail -n 20 "$LOG/export-fixture.log"; }

echo
echo "$PASSED passed, $FAILED failed"
[ "$FAILED" -eq 0 ]
