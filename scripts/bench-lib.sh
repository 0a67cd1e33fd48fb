# shellcheck shell=bash
# Helpers shared by the bench scripts (bench.sh, bench-cores.sh and the
# on/off pair benches: spanmetrics, security, tail); sourced,
# not run. The caller sets WORK (a scratch directory) and BIN (the strand
# binary) before calling start_node.

# CPU ticks (user + system) used so far by one process (all its threads).
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

# start_node NAME TARGET PORT_BASE QUERY_TOML EXTRA_TOML [CPUS]: a strand
# with gRPC/HTTP/query/Zipkin on PORT_BASE+0/1/2/3, its config and data under
# $WORK/NAME, EXTRA_TOML appended after the [storage] table; pinned to the
# CPU list CPUS (taskset -c) when given; prints its pid.
start_node() {
  local name=$1 target=$2 base=$3 query_toml=$4 extra=$5 cpus=${6:-} dir="$WORK/$1"
  local cmd=("$BIN")
  if [ -n "$cpus" ]; then cmd=(taskset -c "$cpus" "$BIN"); fi
  mkdir -p "$dir"
  cat > "$dir/strand.toml" <<TOML
[ingest]
grpc_addr = "127.0.0.1:$base"
http_addr = "127.0.0.1:$((base + 1))"
zipkin_addr = "127.0.0.1:$((base + 3))"

[query]
addr = "127.0.0.1:$((base + 2))"
$query_toml

[storage]
dir = "$dir/data"
$extra
TOML
  "${cmd[@]}" serve --config "$dir/strand.toml" --target "$target" > "$dir/serve.log" 2>&1 &
  local pid=$!
  for _ in $(seq 1 150); do
    curl -fs "http://127.0.0.1:$((base + 2))/readyz" >/dev/null 2>&1 && break
    sleep 0.2
  done
  curl -fs "http://127.0.0.1:$((base + 2))/readyz" >/dev/null \
    || { echo "strand $name did not come up:" >&2; cat "$dir/serve.log" >&2; kill "$pid" 2>/dev/null; exit 1; }
  echo "$pid"
}

# stop_node PID...: SIGTERM, then wait until they have exited (they are not
# children of the calling shell: start_node runs in a command substitution).
stop_node() {
  kill "$@" 2>/dev/null || true
  for _ in $(seq 1 300); do
    kill -0 "$@" 2>/dev/null || return 0
    sleep 0.1
  done
}

metric() { # metric QUERY_PORT NAME: a metric's value summed over its series
  curl -fs "http://127.0.0.1:$1/metrics" | awk -v n="$2" '$1 == n || index($1, n "{") == 1 { s += $2 } END { printf "%.0f\n", s }'
}

# serve_on CONFIG LOG QUERY_PORT: `$BIN serve --config CONFIG` in the
# background, its output to LOG, its pid in SERVER; waits for /readyz and
# exits with the log if strand does not come up.
serve_on() {
  "$BIN" serve --config "$1" > "$2" 2>&1 &
  SERVER=$!
  for _ in $(seq 1 150); do
    curl -fs "http://127.0.0.1:$3/readyz" >/dev/null 2>&1 && return 0
    sleep 0.2
  done
  echo "strand did not come up:" >&2; cat "$2" >&2; exit 1
}
