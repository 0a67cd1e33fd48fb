"""Sends one three-span trace through a real Zipkin exporter of the
OpenTelemetry Python SDK (opentelemetry-exporter-zipkin-json or
-proto-http), as two services, and prints what it sent as JSON:
{"trace_id": hex, "spans": {name: span id hex}}.

Usage: zipkin_clients.py ENDPOINT json|proto RUN_ID
Exits non-zero when an export was not accepted (the exporter only logs).
"""

import json
import sys

from opentelemetry import trace
from opentelemetry.propagate import extract, inject
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.trace import SpanKind, Status, StatusCode


def exporter_class(encoding):
    if encoding == "json":
        from opentelemetry.exporter.zipkin.json import ZipkinExporter
    elif encoding == "proto":
        from opentelemetry.exporter.zipkin.proto.http import ZipkinExporter
    else:
        raise SystemExit(f"unknown encoding {encoding!r}")
    return ZipkinExporter


def checked(exporter, failures):
    """Records every export that strand did not accept."""
    export = exporter.export

    def wrapped(spans):
        try:
            result = export(spans)
        except Exception as e:  # the processor would only log it
            result = e
        if result != SpanExportResult.SUCCESS:
            failures.append(([s.name for s in spans], repr(result)))
        return SpanExportResult.FAILURE if isinstance(result, Exception) else result

    exporter.export = wrapped
    return exporter


def provider(service, exporter):
    p = TracerProvider(resource=Resource.create({"service.name": service}))
    p.add_span_processor(SimpleSpanProcessor(exporter))
    return p


def main():
    endpoint, encoding, run = sys.argv[1], sys.argv[2], sys.argv[3]
    cls = exporter_class(encoding)
    failures = []
    front = provider(
        f"zk-front-{encoding}",
        checked(cls(endpoint=endpoint, local_node_ipv4="10.0.0.7", local_node_port=8080), failures),
    )
    back = provider(f"zk-back-{encoding}", checked(cls(endpoint=endpoint), failures))
    ft, bt = front.get_tracer("zipkin-test"), back.get_tracer("zipkin-test")
    ids = {}
    with ft.start_as_current_span(
        "GET /order", kind=SpanKind.SERVER, attributes={"http.method": "GET", "run": run}
    ) as root:
        with ft.start_as_current_span("call inventory", kind=SpanKind.CLIENT) as call:
            carrier = {}
            inject(carrier)
            with bt.start_as_current_span(
                "reserve", context=extract(carrier), kind=SpanKind.SERVER,
                attributes={"items": 3},
            ) as reserve:
                reserve.add_event("stock checked", {"count": 3})
                reserve.set_status(Status(StatusCode.ERROR, "out of stock"))
                ids["reserve"] = reserve
            ids["call inventory"] = call
        ids["GET /order"] = root
    front.shutdown()
    back.shutdown()
    if failures:
        raise SystemExit(f"exports not accepted: {failures}")
    out = {
        "trace_id": format(root.get_span_context().trace_id, "032x"),
        "spans": {n: format(s.get_span_context().span_id, "016x") for n, s in ids.items()},
    }
    print(json.dumps(out))


if __name__ == "__main__":
    main()
