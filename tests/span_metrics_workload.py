"""A known workload through the OpenTelemetry Python SDK (one tracer
provider per service, OTLP/HTTP protobuf exporter): every span's kind,
status and duration are chosen here, so the test knows the exact counts
and durations strand must report whatever sampling keeps.

Usage: span_metrics_workload.py OTLP_URL
Prints JSON: {"series": [{"service", "name", "kind", "calls", "errors",
"durations_ms": [...]}], "traces": N, "failures": [...]}.
"""

import json
import sys
import time

from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExportResult
from opentelemetry.trace import SpanKind, Status, StatusCode, set_span_in_context

ORDERS = 300
CARTS = 200
MS = 1_000_000

failures = []
series = {}


def checked(exporter):
    export = exporter.export

    def wrapped(spans):
        result = export(spans)
        if result != SpanExportResult.SUCCESS:
            failures.append(repr(result))
        return result

    exporter.export = wrapped
    return exporter


def provider(service, url):
    p = TracerProvider(resource=Resource.create({"service.name": service}))
    p.add_span_processor(BatchSpanProcessor(checked(OTLPSpanExporter(endpoint=url)),
                                            max_export_batch_size=256))
    return p


def record(service, name, kind, error, duration_ms):
    s = series.setdefault((service, name, kind), {
        "service": service, "name": name, "kind": kind, "calls": 0, "errors": 0,
        "durations_ms": []})
    s["calls"] += 1
    s["errors"] += int(error)
    s["durations_ms"].append(duration_ms)


def span(tracer, service, name, kind, start_ns, duration_ms, error, parent=None):
    ctx = set_span_in_context(parent) if parent is not None else None
    sp = tracer.start_span(name, context=ctx, kind=kind, start_time=start_ns)
    if error:
        sp.set_status(Status(StatusCode.ERROR, "failed"))
    sp.end(end_time=start_ns + int(duration_ms * MS))
    record(service, name, kind.name.lower(), error, duration_ms)
    return sp


def main():
    url = sys.argv[1]
    checkout_p, payments_p = provider("checkout", url), provider("payments", url)
    checkout, payments = checkout_p.get_tracer("shop"), payments_p.get_tracer("shop")
    # Starts in the last two minutes, so any window ending now covers them.
    base = time.time_ns() - 120_000 * MS
    # Durations avoid the buckets' bounds (x.3 ms), so every bucket count
    # is known exactly.
    for i in range(ORDERS):
        t0 = base + i * 200 * MS
        root_ms = 20.3 + (i * 37) % 400
        client_ms = 10.3 + (i * 13) % 100
        root = checkout.start_span("POST /order", kind=SpanKind.SERVER, start_time=t0)
        call = span(checkout, "checkout", "charge", SpanKind.CLIENT, t0 + MS, client_ms,
                    i % 7 == 0, root)
        served = span(payments, "payments", "charge", SpanKind.SERVER, t0 + 2 * MS,
                      client_ms - 2, i % 7 == 0, call)
        span(payments, "payments", "db", SpanKind.INTERNAL, t0 + 3 * MS, 1.3 + i % 5,
             False, served)
        if i % 10 == 0:
            root.set_status(Status(StatusCode.ERROR, "order failed"))
        root.end(end_time=t0 + int(root_ms * MS))
        record("checkout", "POST /order", "server", i % 10 == 0, root_ms)
    for i in range(CARTS):
        t0 = base + i * 300 * MS + 50 * MS
        span(checkout, "checkout", "GET /cart", SpanKind.SERVER, t0, 0.3 + (i % 40) * 0.25,
             False)
    for p in (checkout_p, payments_p):
        p.force_flush()
        p.shutdown()
    print(json.dumps({"series": list(series.values()), "traces": ORDERS + CARTS,
                      "failures": failures}))


main()
