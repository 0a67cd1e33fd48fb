#!/usr/bin/env python3
"""Plots docs/bench/capacity.json (written by scripts/bench.sh) as PNG images
referenced from docs/BENCHMARKS.md.

Usage: python3 scripts/capacity-plot.py docs/bench/capacity.json docs/bench/
Needs matplotlib (pip install -r scripts/requirements.txt).
"""

import json
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def save(fig, out, name):
    fig.tight_layout()
    path = os.path.join(out, name)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def subtitle(doc):
    m = doc["machine"]
    return f"{m['cpu']}, {m['nproc']} CPUs, {doc['date'][:10]}, commit {doc.get('commit', '?')}"


def throughput(doc, out):
    benches = doc["benches"]
    if not benches:
        return None
    names = sorted(benches, key=lambda k: benches[k]["spans_per_sec"])
    values = [benches[k]["spans_per_sec"] / 1e6 for k in names]
    fig, ax = plt.subplots(figsize=(8, 0.5 * len(names) + 1.5))
    bars = ax.barh(names, values, color=["#d62728" if n.startswith("export/") else "#1f77b4" for n in names])
    ax.axvline(1.0, color="gray", linestyle="--", label="export goal: 1M spans/s")
    for b, v in zip(bars, values):
        ax.text(b.get_width(), b.get_y() + b.get_height() / 2, f" {v:.2f}M", va="center")
    ax.set_xscale("log")
    ax.set_xlabel("million spans / second (one core, log scale)")
    ax.set_title("CPU throughput per stage\n" + subtitle(doc), fontsize=9)
    ax.legend(loc="lower right")
    return save(fig, out, "throughput.png")


def size(doc, out):
    sizes = dict(doc.get("export_bytes_per_span", {}))
    if not sizes:
        return None
    sizes["Tempo vParquet (reported)"] = 58.0
    names = list(sizes)
    fig, ax = plt.subplots(figsize=(7, 3))
    ax.bar(names, [sizes[n] for n in names], color=["#2ca02c"] * (len(names) - 1) + ["#7f7f7f"])
    ax.axhline(40, color="gray", linestyle="--", label="goal: 40 bytes/span")
    for i, n in enumerate(names):
        ax.text(i, sizes[n], f"{sizes[n]:.1f}", ha="center", va="bottom")
    ax.set_ylabel("bytes / span")
    ax.set_title("Parquet export size\n" + subtitle(doc), fontsize=9)
    ax.legend()
    return save(fig, out, "export-size.png")


def loadgen(doc, out):
    runs = [r for r in doc.get("loadgen", [])
            if r.get("mode") == "ingest" and r.get("deployment", "embedded") == "embedded"]
    if not runs:
        return None
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 3.5))
    for proto in sorted({r["protocol"] for r in runs}):
        rs = sorted((r for r in runs if r["protocol"] == proto), key=lambda r: r.get("connections", 0))
        conns = [r.get("connections", 0) for r in rs]
        a1.plot(conns, [r["accepted_spans_per_sec"] / 1e3 for r in rs], marker="o", label=proto)
        a2.plot(conns, [r["latency_ms"]["p50"] for r in rs], marker="o", label=f"{proto} p50")
        a2.plot(conns, [r["latency_ms"]["p99"] for r in rs], marker="x", linestyle="--", label=f"{proto} p99")
    a1.set_xlabel("connections")
    a1.set_ylabel("thousand spans / s accepted")
    a1.set_title("strand serve ingest (embedded)", fontsize=9)
    a1.legend()
    a2.set_xlabel("connections")
    a2.set_ylabel("request latency, ms")
    a2.set_title("request latency", fontsize=9)
    a2.legend(fontsize=7)
    fig.suptitle(subtitle(doc), fontsize=8)
    return save(fig, out, "ingest-capacity.png")


def deployments(doc, out):
    """The best ingest run of each deployment: spans/s, and spans per
    CPU-second the strand processes used (the per-core figure)."""
    best = {}
    for r in doc.get("loadgen", []):
        if r.get("mode") != "ingest" or "deployment" not in r:
            continue
        d = r["deployment"]
        if d not in best or r["accepted_spans_per_sec"] > best[d]["accepted_spans_per_sec"]:
            best[d] = r
    if not best:
        return None
    names = sorted(best)
    fig, ax = plt.subplots(figsize=(8, 3.5))
    x = range(len(names))
    wall = [best[n]["accepted_spans_per_sec"] / 1e3 for n in names]
    core = [best[n].get("spans_per_server_cpu_sec", 0) / 1e3 for n in names]
    ax.bar([i - 0.2 for i in x], wall, width=0.4, label="spans/s accepted (whole machine)")
    ax.bar([i + 0.2 for i in x], core, width=0.4, label="spans per strand CPU-second (per core)")
    for i in x:
        ax.text(i - 0.2, wall[i], f"{wall[i]:.0f}k", ha="center", va="bottom", fontsize=8)
        ax.text(i + 0.2, core[i], f"{core[i]:.0f}k", ha="center", va="bottom", fontsize=8)
    ax.set_xticks(list(x))
    ax.set_xticklabels([f"{n}\n{best[n]['protocol']} x{best[n]['connections']}" for n in names])
    ax.set_ylabel("thousand spans")
    ax.set_title("ingest capacity per deployment (best run)\n" + subtitle(doc), fontsize=9)
    ax.legend(fontsize=8)
    return save(fig, out, "deployments.png")


def tiers(doc, out):
    sizes = {t["tier"]: t["bytes_per_span"] for t in doc.get("tiers", []) if t.get("spans")}
    parquet = doc.get("export_bytes_per_span", {}).get("realistic")
    if parquet:
        sizes["parquet-export"] = parquet
    if not sizes:
        return None
    names = list(sizes)
    fig, ax = plt.subplots(figsize=(7, 3))
    ax.bar(names, [sizes[n] for n in names], color="#9467bd")
    for i, n in enumerate(names):
        ax.text(i, sizes[n], f"{sizes[n]:.0f}", ha="center", va="bottom")
    ax.set_ylabel("bytes / span")
    ax.set_title("stored bytes per span, by tier\n" + subtitle(doc), fontsize=9)
    return save(fig, out, "bytes-per-span.png")


def main():
    if len(sys.argv) != 3:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    doc = json.load(open(sys.argv[1]))
    out = sys.argv[2]
    os.makedirs(out, exist_ok=True)
    for f in (throughput, size, loadgen, deployments, tiers):
        path = f(doc, out)
        print(f"wrote {path}" if path else f"{f.__name__}: no data, skipped")


if __name__ == "__main__":
    main()
