#!/usr/bin/env python3
"""Reads strand's Parquet export with two independent readers, pyarrow and
DuckDB, and checks them against the expected counts.

Usage:
    pip install -r tests/requirements.txt && python3 tests/parquet_readers.py <dir>

<dir> holds the exported spans-*.parquet files and expected_counts.json, as
left by `STRAND_EXPORT_FIXTURE_DIR=<dir> cargo test --test export
fixture_for_external_readers`. With no <dir>, that test is run first into a
temporary directory. Exits non-zero, naming the mismatch, on any failure.
"""

import json
import os
import subprocess
import sys
import tempfile

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq


def fail(msg):
    print(f"FAIL: {msg}", file=sys.stderr)
    sys.exit(1)


def make_fixture(dir_):
    env = dict(os.environ, STRAND_EXPORT_FIXTURE_DIR=dir_)
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    subprocess.run(
        ["cargo", "test", "--test", "export", "fixture_for_external_readers"],
        cwd=root, env=env, check=True,
    )


def check_pyarrow(paths, expected):
    table = pa.concat_tables([pq.read_table(p) for p in paths])
    if table.num_rows != expected["total"]:
        fail(f"pyarrow: {table.num_rows} rows, expected {expected['total']}")
    schema = table.schema
    want_types = {
        "trace_id": pa.binary(16),
        "span_id": pa.binary(8),
        "parent_span_id": pa.binary(8),
        "start_time": pa.timestamp("ns", tz="UTC"),
        "end_time": pa.timestamp("ns", tz="UTC"),
        "duration_ns": pa.int64(),
        "attr.http.status_code": pa.int64(),
    }
    for name, typ in want_types.items():
        if schema.field(name).type != typ:
            fail(f"pyarrow: column {name} is {schema.field(name).type}, expected {typ}")
    if not pa.types.is_map(schema.field("span_attributes").type):
        fail("pyarrow: span_attributes is not a map")
    if not pa.types.is_list(schema.field("events").type):
        fail("pyarrow: events is not a list")
    counts = table.group_by("service_name").aggregate([("span_id", "count")])
    got = {r["service_name"]: r["span_id_count"] for r in counts.to_pylist()}
    if got != expected["service_counts"]:
        fail(f"pyarrow: per-service counts {got} != {expected['service_counts']}")
    # Every file is sorted by trace id, then start time.
    for p in paths:
        t = pq.read_table(p, columns=["trace_id", "start_time"])
        starts = t.column("start_time").cast(pa.int64()).to_pylist()
        keys = list(zip(t.column("trace_id").to_pylist(), starts))
        if keys != sorted(keys):
            fail(f"pyarrow: {p} is not sorted by (trace_id, start_time)")
        meta = pq.ParquetFile(p).metadata
        if meta.row_group(0).column(0).compression.upper() != "ZSTD":
            fail(f"pyarrow: {p} is not zstd-compressed")
    print(f"pyarrow {pa.__version__}: {table.num_rows} rows, {len(got)} services, schema and counts ok")


def check_duckdb(paths, expected):
    con = duckdb.connect()
    files = "[" + ", ".join("'" + p.replace("'", "''") + "'" for p in paths) + "]"
    rows = con.execute(
        f"SELECT service_name, count(*) FROM read_parquet({files}) GROUP BY service_name ORDER BY 1"
    ).fetchall()
    got = {name: n for name, n in rows}
    if got != expected["service_counts"]:
        fail(f"duckdb: per-service counts {got} != {expected['service_counts']}")
    errors = con.execute(f"SELECT count(*) FROM read_parquet({files}) WHERE status_code = 'ERROR'").fetchone()[0]
    if errors != expected["errors"]:
        fail(f"duckdb: {errors} error spans, expected {expected['errors']}")
    # Map and typed columns are usable from SQL.
    n500 = con.execute(
        f"""SELECT count(*) FROM read_parquet({files})
            WHERE "attr.http.status_code" = 500 AND span_attributes['http.status_code'] = '500'"""
    ).fetchone()[0]
    n500_map = con.execute(
        f"SELECT count(*) FROM read_parquet({files}) WHERE span_attributes['http.status_code'] = '500'"
    ).fetchone()[0]
    if n500 != n500_map:
        fail(f"duckdb: typed column and map disagree on http.status_code=500 ({n500} vs {n500_map})")
    bad = con.execute(
        f"SELECT count(*) FROM read_parquet({files}) WHERE epoch_ns(end_time) - epoch_ns(start_time) <> duration_ns"
    ).fetchone()[0]
    if bad:
        fail(f"duckdb: {bad} rows where end_time - start_time != duration_ns")
    print(f"duckdb {duckdb.__version__}: GROUP BY service_name ok ({sum(got.values())} spans), {errors} errors, "
          f"{n500} spans with http.status_code=500")


def main():
    if len(sys.argv) > 2:
        fail("usage: parquet_readers.py [<dir>]")
    if len(sys.argv) == 2:
        dir_ = sys.argv[1]
    else:
        dir_ = tempfile.mkdtemp(prefix="strand-parquet-")
        make_fixture(dir_)
    meta_path = os.path.join(dir_, "expected_counts.json")
    if not os.path.exists(meta_path):
        fail(f"{meta_path} missing: run STRAND_EXPORT_FIXTURE_DIR={dir_} cargo test --test export fixture_for_external_readers")
    with open(meta_path) as f:
        expected = json.load(f)
    paths = [os.path.join(dir_, name) for name in expected["files"]]
    if not paths:
        fail("no files listed in expected_counts.json")
    check_pyarrow(paths, expected)
    check_duckdb(paths, expected)
    print("OK")


if __name__ == "__main__":
    main()
