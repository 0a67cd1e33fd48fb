#!/usr/bin/env bash
# Core scaling and per-thread CPU of `strand serve` under full-speed OTLP
# ingest (docs/BENCHMARKS.md, "Core scaling and per-thread CPU"):
#   1. scaling: a fresh embedded `strand serve` pinned with `taskset -c 0`,
#      then a fresh one pinned with `taskset -c 0,1`, alternating A B A B for
#      BENCH_ROUNDS rounds so drift hits both; each is driven by
#      `strand loadgen` (gRPC, 4 connections, full speed, no lag sampling)
#      for BENCH_LOAD_SECS. Records spans/s accepted and the server's CPU
#      seconds (/proc/PID/stat), so also spans per server CPU-second;
#   2. threads: one full-speed run on all cores; /proc/PID/task/*/stat read
#      after BENCH_WARMUP_SECS of load and again BENCH_LOAD_SECS later gives
#      each thread's CPU in that window, by thread, by thread name and by
#      name prefix (a trailing -N collapsed: receiver-0, receiver-1 ->
#      receiver-*), the busiest thread's share f of the process CPU and its
#      Amdahl ceiling 1/f;
#   3. appends one JSON object per run and per measure to
#      docs/bench/cores.json (commit, date, nproc, CPU model in each) and
#      prints the results as Markdown tables.
# Usage: scripts/bench-cores.sh [--quick] [--scaling-only | --threads-only]
#   --quick             BENCH_LOAD_SECS=8 and one round
#   --scaling-only      only the 1-core / 2-core runs
#   --threads-only      only the per-thread run
#   STRAND_BIN          strand binary to measure (default: build it with
#                       cargo build --release)
#   BENCH_LOAD_SECS     seconds per scaling run and of the per-thread window
#                       (default 20, 8 with --quick)
#   BENCH_ROUNDS        scaling rounds (default 2, 1 with --quick)
#   BENCH_WARMUP_SECS   load before the per-thread window opens (default 3)
#   BENCH_STRAND_TOML   TOML appended to every server's generated config,
#                       right after its [storage] table: bare keys are
#                       storage keys (e.g. "fsync = false"), other sections
#                       may follow. [ingest] and [query] already exist in the
#                       generated file, so set their keys in the environment
#                       instead (STRAND_INGEST__KEY=..., inherited by the
#                       server).
#   BENCH_CONNECTIONS   loadgen connections (default 4)
#   BENCH_OUT           output directory (default docs/bench)
# The load generator runs on CPUs 2 and up when there are at least three,
# and unpinned otherwise (then it shares the server's cores, which lowers
# the 2-core figures more than the 1-core ones; the output says so).
set -euo pipefail
CONNECTIONS=${BENCH_CONNECTIONS:-4}
if [ -n "${STRAND_BIN:-}" ]; then STRAND_BIN=$(realpath "$STRAND_BIN"); fi
cd "$(dirname "$0")/.."
ROOT=$PWD
OUT=${BENCH_OUT:-$ROOT/docs/bench}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
LOAD_SECS=${BENCH_LOAD_SECS:-20}; ROUNDS=${BENCH_ROUNDS:-2}; WARMUP=${BENCH_WARMUP_SECS:-3}
EXTRA=${BENCH_STRAND_TOML:-}
SCALING=1; THREADS=1
for a in "$@"; do
  case $a in
    --quick) LOAD_SECS=${BENCH_LOAD_SECS:-8}; ROUNDS=${BENCH_ROUNDS:-1} ;;
    --scaling-only) THREADS=0 ;;
    --threads-only) SCALING=0 ;;
    *) echo "unknown argument $a" >&2; exit 2 ;;
  esac
done
if [ "$SCALING$THREADS" = 00 ]; then
  echo "--scaling-only and --threads-only exclude each other" >&2; exit 2
fi
mkdir -p "$OUT"
# shellcheck source=scripts/bench-lib.sh
source "$ROOT/scripts/bench-lib.sh"

NPROC=$(nproc)
if [ "$SCALING" = 1 ] && [ "$NPROC" -lt 2 ]; then
  echo "the scaling runs need two CPUs (nproc = $NPROC); use --threads-only" >&2; exit 2
fi

if [ -n "${STRAND_BIN:-}" ]; then
  BIN=$STRAND_BIN
else
  flock /tmp/cargo.lock cargo build --release --bin strand
  BIN=$CARGO_TARGET_DIR/release/strand
fi
case $BIN in
  */debug/*) echo "warning: $BIN looks like a debug build; its figures say nothing about strand's capacity" >&2 ;;
esac

WORK=$(mktemp -d)
SERVER=""; LOADGEN=""
cleanup() {
  if [ -n "$LOADGEN" ]; then kill "$LOADGEN" 2>/dev/null || true; fi
  if [ -n "$SERVER" ]; then stop_node "$SERVER"; fi
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

PORT=27317 # gRPC; HTTP and query on the next two ports
LINES="$WORK/lines.jsonl"
: > "$LINES"
TICK=$(getconf CLK_TCK)

if [ "$NPROC" -ge 3 ]; then
  LOADGEN_CPUS="2-$((NPROC - 1))"
  LOADGEN_CMD=(taskset -c "$LOADGEN_CPUS" "$BIN")
  LOADGEN_NOTE="loadgen pinned to CPUs $LOADGEN_CPUS (the scaling runs' servers use CPUs 0 and 1)"
else
  LOADGEN_CPUS=""
  LOADGEN_CMD=("$BIN")
  LOADGEN_NOTE="loadgen unpinned: with nproc = $NPROC it shares the server's cores (it takes CPU from the 2-core server more than from the 1-core one)"
fi
echo "$LOADGEN_NOTE"

# Fields every JSON line carries.
python3 - "$WORK/meta.json" "$NPROC" "$BIN" "$LOAD_SECS" "$ROUNDS" "$WARMUP" "$EXTRA" "$LOADGEN_CPUS" "$LOADGEN_NOTE" <<'PY'
import json, platform, subprocess, sys
out, nproc, binary, load_secs, rounds, warmup, extra, lg_cpus, lg_note = sys.argv[1:]
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "unknown")
json.dump({
    "commit": subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip(),
    "nproc": int(nproc), "cpu": cpu, "kernel": platform.release(), "bin": binary,
    "load_secs": int(load_secs), "rounds": int(rounds), "warmup_secs": int(warmup),
    "strand_toml": extra, "loadgen_cpus": lg_cpus or None, "loadgen_note": lg_note,
}, open(out, "w"))
PY

# loadgen SECS: full-speed gRPC ingest against the node on $PORT. It execs,
# so that `loadgen N &` leaves the generator's own pid in $!.
loadgen() {
  exec "${LOADGEN_CMD[@]}" loadgen --protocol grpc --connections "$CONNECTIONS" --lag-samples 0 \
    --duration "$1s" --json --quiet \
    --grpc-url "http://127.0.0.1:$PORT" --query-url "http://127.0.0.1:$((PORT + 2))"
}

# snapshot PID FILE: wall clock, the process's stat line, one stat line per
# thread (threads may exit while they are read).
snapshot() {
  { date +%s.%N; cat "/proc/$1/stat"; cat "/proc/$1/task/"*/stat 2>/dev/null || true; } > "$2"
}

# scaling_run ROUND CPUS: one loadgen run against a fresh node pinned to CPUS.
scaling_run() {
  local round=$1 cpus=$2 name="scale-r$1-cpus${2//,/+}" before after allowed
  echo "-- round $round: strand serve on taskset -c $cpus, loadgen ${LOAD_SECS}s"
  SERVER=$(start_node "$name" all "$PORT" "" "$EXTRA" "$cpus")
  allowed=$(awk '/^Cpus_allowed_list/ {print $2}' "/proc/$SERVER/status")
  before=$(cpu_ticks "$SERVER")
  (loadgen "$LOAD_SECS") > "$WORK/one.json"
  after=$(cpu_ticks "$SERVER")
  kill -0 "$SERVER" 2>/dev/null || { echo "strand exited during the run:" >&2; cat "$WORK/$name/serve.log" >&2; exit 1; }
  stop_node "$SERVER"; SERVER=""
  rm -rf "${WORK:?}/$name"
  python3 - "$WORK/meta.json" "$WORK/one.json" "$round" "$cpus" "$allowed" "$before" "$after" "$TICK" "$LINES" <<'PY'
import datetime, json, sys
meta, lg = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
round_, cpus, allowed = int(sys.argv[3]), sys.argv[4], sys.argv[5]
before, after, tick = int(sys.argv[6]), int(sys.argv[7]), int(sys.argv[8])
cpu_secs = (after - before) / tick
d = {**meta,
    "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
    "measure": "scaling-run", "round": round_, "server_cpus": cpus,
    "server_cores": len(cpus.split(",")), "cpus_allowed_list": allowed,
    "spans_accepted": lg["spans_accepted"], "accepted_spans_per_sec": lg["accepted_spans_per_sec"],
    "server_cpu_secs": cpu_secs,
    "spans_per_server_cpu_sec": lg["spans_accepted"] / max(cpu_secs, 1e-9),
    "loadgen": lg}
open(sys.argv[9], "a").write(json.dumps(d) + "\n")
print(f'   {d["accepted_spans_per_sec"]:.0f} spans/s, server CPU {cpu_secs:.1f} s '
      f'(allowed CPUs {allowed}), {d["spans_per_server_cpu_sec"]:.0f} spans per server CPU-second')
PY
}

if [ "$SCALING" = 1 ]; then
  echo "== scaling: 1 core (taskset -c 0) against 2 cores (taskset -c 0,1), $ROUNDS round(s) =="
  for r in $(seq 1 "$ROUNDS"); do
    scaling_run "$r" 0
    scaling_run "$r" 0,1
  done
fi

if [ "$THREADS" = 1 ]; then
  echo "== per-thread CPU: strand serve on all $NPROC CPUs, ${WARMUP}s warm-up, ${LOAD_SECS}s window =="
  SERVER=$(start_node threads all "$PORT" "" "$EXTRA")
  loadgen "$((WARMUP + LOAD_SECS + 2))" > "$WORK/threads-loadgen.json" &
  LOADGEN=$!
  sleep "$WARMUP"
  SPANS_A=$(metric "$((PORT + 2))" strand_ingest_spans_accepted_total)
  LG_A=$(cpu_ticks "$LOADGEN")
  snapshot "$SERVER" "$WORK/threads-a.stat"
  sleep "$LOAD_SECS"
  snapshot "$SERVER" "$WORK/threads-b.stat"
  LG_B=$(cpu_ticks "$LOADGEN")
  SPANS_B=$(metric "$((PORT + 2))" strand_ingest_spans_accepted_total)
  wait "$LOADGEN"; LOADGEN=""
  stop_node "$SERVER"; SERVER=""
  python3 - "$WORK/meta.json" "$WORK/threads-a.stat" "$WORK/threads-b.stat" "$TICK" \
    "$SPANS_A" "$SPANS_B" "$LG_A" "$LG_B" "$WORK/threads-loadgen.json" >> "$LINES" <<'PY'
import collections, datetime, json, re, sys
meta = json.load(open(sys.argv[1]))
tick = int(sys.argv[4])
spans = int(sys.argv[6]) - int(sys.argv[5])
loadgen_cpu = (int(sys.argv[8]) - int(sys.argv[7])) / tick

def stat(line):
    # "tid (comm) state ppid ...": comm may hold spaces and parentheses,
    # so it is what lies between the first "(" and the last ")".
    o, c = line.index("("), line.rindex(")")
    rest = line[c + 2:].split()  # rest[0] is field 3
    # fields 14 utime, 15 stime, 22 starttime (tells a reused tid apart)
    return (int(line[:o]), int(rest[19])), line[o + 1:c], int(rest[11]) + int(rest[12])

def snapshot(path):
    lines = [l.rstrip("\n") for l in open(path) if l.strip()]
    threads = {}
    for l in lines[2:]:
        key, name, ticks = stat(l)
        threads[key] = (name, ticks)
    return float(lines[0]), stat(lines[1])[2], threads

t0, proc0, a = snapshot(sys.argv[2])
t1, proc1, b = snapshot(sys.argv[3])
window, total = t1 - t0, (proc1 - proc0) / tick
rows = []
for key, (name, ticks) in b.items():
    # a thread started within the window used all its ticks in it
    secs = (ticks - a.get(key, (name, 0))[1]) / tick
    rows.append({"name": name, "tid": key[0], "cpu_secs": secs, "share": secs / max(total, 1e-9),
                 "cores": secs / window})
rows.sort(key=lambda r: -r["cpu_secs"])

def grouped(keyf):
    g = collections.defaultdict(lambda: {"threads": 0, "cpu_secs": 0.0})
    for r in rows:
        e = g[keyf(r["name"])]
        e["threads"] += 1
        e["cpu_secs"] += r["cpu_secs"]
    out = [{"name": k, **v, "share": v["cpu_secs"] / max(total, 1e-9)} for k, v in g.items()]
    return sorted(out, key=lambda r: -r["cpu_secs"])

def prefix(name):  # receiver-0, receiver-1 -> receiver-*; python3 stays
    return re.sub(r"([-_.:# ])\d+$", r"\1*", name)

by_name = grouped(lambda n: n)
busiest = dict(rows[0]) if rows else {}
if busiest:
    busiest["same_name_threads"] = next(g["threads"] for g in by_name if g["name"] == busiest["name"])
f = busiest.get("share", 0)
lg = json.load(open(sys.argv[9]))
print(json.dumps({**meta,
    "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
    "measure": "threads", "server_cpus": "all",
    "window_secs": window, "process_cpu_secs": total, "cores_busy": total / window,
    "spans_in_window": spans, "spans_per_sec": spans / window,
    "spans_per_server_cpu_sec": spans / max(total, 1e-9),
    "loadgen_cpu_secs": loadgen_cpu,
    "threads_at_start": len(a), "threads_at_end": len(b),
    # CPU of threads that exited within the window (the process total keeps it)
    "unattributed_cpu_secs": total - sum(r["cpu_secs"] for r in rows),
    "busiest_thread": busiest, "busiest_share": f,
    "amdahl_ceiling": 1 / f if f > 0 else None,
    "ceiling_spans_per_sec": spans / busiest["cpu_secs"] if busiest.get("cpu_secs") else None,
    "by_thread": rows, "by_name": by_name, "by_prefix": grouped(prefix),
    "loadgen": lg}))
PY
fi

python3 - "$LINES" "$OUT/cores.json" <<'PY'
import json, statistics, sys
lines = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
runs = [d for d in lines if d["measure"] == "scaling-run"]
rounds = []
for r in sorted({d["round"] for d in runs}):
    one = next((d for d in runs if d["round"] == r and d["server_cores"] == 1), None)
    two = next((d for d in runs if d["round"] == r and d["server_cores"] == 2), None)
    if not (one and two):
        continue
    keep = ("commit", "nproc", "cpu", "kernel", "bin", "load_secs", "rounds", "strand_toml", "loadgen_cpus", "loadgen_note")
    rounds.append({**{k: two[k] for k in keep}, "date": two["date"], "measure": "scaling-round", "round": r,
        "spans_per_sec_1core": one["accepted_spans_per_sec"], "spans_per_sec_2cores": two["accepted_spans_per_sec"],
        "ratio_2_to_1": two["accepted_spans_per_sec"] / max(one["accepted_spans_per_sec"], 1e-9),
        "spans_per_cpu_sec_1core": one["spans_per_server_cpu_sec"], "spans_per_cpu_sec_2cores": two["spans_per_server_cpu_sec"],
        "server_cpu_secs_1core": one["server_cpu_secs"], "server_cpu_secs_2cores": two["server_cpu_secs"]})
threads = [d for d in lines if d["measure"] == "threads"]
with open(sys.argv[2], "a") as f:
    for d in runs + rounds + threads:
        f.write(json.dumps(d) + "\n")
meta = lines[0] if lines else {}
print()
print(f'commit {meta.get("commit")}, nproc {meta.get("nproc")}, {meta.get("cpu")}, {meta.get("load_secs")} s runs; {meta.get("loadgen_note")}')
if meta.get("strand_toml"):
    print(f'extra config: {meta["strand_toml"]!r}')
n = lambda x: f"{x:,.0f}".replace(",", " ")
md = lambda name: "`" + name.replace("|", "\\|") + "`"  # actix names hold "|"
if rounds:
    print()
    print("| round | spans/s, 1 core | spans/s, 2 cores | 2 cores / 1 core | spans per server CPU-s, 1 core | spans per server CPU-s, 2 cores | server CPU-s, 1 / 2 cores |")
    print("|---|---|---|---|---|---|---|")
    for r in rounds:
        print(f'| {r["round"]} | {n(r["spans_per_sec_1core"])} | {n(r["spans_per_sec_2cores"])} | {r["ratio_2_to_1"]:.2f} | '
              f'{n(r["spans_per_cpu_sec_1core"])} | {n(r["spans_per_cpu_sec_2cores"])} | '
              f'{r["server_cpu_secs_1core"]:.1f} / {r["server_cpu_secs_2cores"]:.1f} |')
    if len(rounds) > 1:
        m = lambda k: statistics.mean(r[k] for r in rounds)
        print(f'| mean | {n(m("spans_per_sec_1core"))} | {n(m("spans_per_sec_2cores"))} | {m("ratio_2_to_1"):.2f} | '
              f'{n(m("spans_per_cpu_sec_1core"))} | {n(m("spans_per_cpu_sec_2cores"))} | '
              f'{m("server_cpu_secs_1core"):.1f} / {m("server_cpu_secs_2cores"):.1f} |')
for t in threads:
    print()
    print(f'Per-thread CPU over {t["window_secs"]:.1f} s of full-speed ingest on all cores: process CPU '
          f'{t["process_cpu_secs"]:.1f} s ({t["cores_busy"]:.2f} cores busy), {n(t["spans_per_sec"])} spans/s, '
          f'{n(t["spans_per_server_cpu_sec"])} spans per server CPU-second; loadgen {t["loadgen_cpu_secs"]:.1f} CPU-s; '
          f'{t["threads_at_end"]} threads; {max(t["unattributed_cpu_secs"], 0):.2f} CPU-s in threads that exited.')
    print()
    print("| thread | tid | CPU-s | share of process CPU | cores |")
    print("|---|---|---|---|---|")
    for r in t["by_thread"][:15]:
        print(f'| {md(r["name"])} | {r["tid"]} | {r["cpu_secs"]:.2f} | {100 * r["share"]:.1f} % | {r["cores"]:.2f} |')
    for title, key in (("thread name", "by_name"), ("name prefix", "by_prefix")):
        if key == "by_prefix" and [g["name"] for g in t["by_prefix"]] == [g["name"] for g in t["by_name"]]:
            print("\n(no thread names with numeric suffixes: by prefix is the same as by name)")
            continue
        print()
        print(f"| {title} | threads | CPU-s | share |")
        print("|---|---|---|---|")
        for g in t[key][:15]:
            print(f'| {md(g["name"])} | {g["threads"]} | {g["cpu_secs"]:.2f} | {100 * g["share"]:.1f} % |')
    b = t["busiest_thread"]
    if b and t["ceiling_spans_per_sec"]:
        print()
        print(f'Busiest thread: {md(b["name"])} (tid {b["tid"]}, {b["same_name_threads"]} thread(s) of that name), '
              f'{100 * b["share"]:.1f} % of the process CPU, {b["cores"]:.2f} of a core. Amdahl ceiling 1/f = '
              f'{t["amdahl_ceiling"]:.1f}x a single core\'s throughput, '
              f'{n(t["ceiling_spans_per_sec"])} spans/s, if that thread\'s work cannot move to other threads.')
print()
print(f"appended {len(runs) + len(rounds) + len(threads)} lines to {sys.argv[2]}")
PY
