"""Three small HTTP services (http.server, each with its own OpenTelemetry
tracer provider and exporter) called in a chain over real HTTP, with the
trace context carried by the propagator each hop names. Prints what the
SDKs recorded as JSON: {"trace_ids": [...], "spans": [{"service", "name",
"span_id", "parent_id"}], "headers": [[header names seen by each service]]}.

Usage: propagation_services.py OTLP_URL ZIPKIN_URL SCENARIO RUN_ID
SCENARIO: w3c | b3single | b3multi | mixed (W3C into service 2, which
injects B3 toward service 3).
"""

import json
import sys
import threading
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.exporter.zipkin.json import ZipkinExporter
from opentelemetry.propagators.b3 import B3MultiFormat, B3SingleFormat
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.trace import SpanKind, set_span_in_context
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

PROPAGATORS = {
    "w3c": TraceContextTextMapPropagator(),
    "b3single": B3SingleFormat(),
    "b3multi": B3MultiFormat(),
}
# Per scenario: the propagator of each hop (driver → s1, s1 → s2, s2 → s3)
# and the exporter of each service (driver first).
SCENARIOS = {
    "w3c": (["w3c", "w3c", "w3c"], ["otlp", "otlp", "otlp", "otlp"]),
    "b3single": (["b3single", "b3single", "b3single"], ["otlp", "otlp", "zipkin", "otlp"]),
    "b3multi": (["b3multi", "b3multi", "b3multi"], ["otlp", "otlp", "otlp", "otlp"]),
    "mixed": (["w3c", "w3c", "b3multi"], ["otlp", "otlp", "otlp", "zipkin"]),
}
TRACE_HEADERS = {"traceparent", "tracestate", "b3", "x-b3-traceid", "x-b3-spanid",
                 "x-b3-parentspanid", "x-b3-sampled", "x-b3-flags"}

failures = []
recorded = []
lock = threading.Lock()


def checked(exporter):
    export = exporter.export

    def wrapped(spans):
        try:
            result = export(spans)
        except Exception as e:  # the processor would only log it
            result = e
        if result != SpanExportResult.SUCCESS:
            failures.append(([s.name for s in spans], repr(result)))
        for s in spans:
            parent = s.parent.span_id if s.parent else None
            with lock:
                recorded.append({
                    "service": s.resource.attributes["service.name"],
                    "name": s.name,
                    "trace_id": format(s.context.trace_id, "032x"),
                    "span_id": format(s.context.span_id, "016x"),
                    "parent_id": format(parent, "016x") if parent else None,
                })
        return SpanExportResult.FAILURE if isinstance(result, Exception) else result

    exporter.export = wrapped
    return exporter


def provider(service, kind, otlp_url, zipkin_url):
    exporter = OTLPSpanExporter(endpoint=otlp_url) if kind == "otlp" else ZipkinExporter(endpoint=zipkin_url)
    p = TracerProvider(resource=Resource.create({"service.name": service}))
    p.add_span_processor(SimpleSpanProcessor(checked(exporter)))
    return p


def call(tracer, propagator, target, name):
    """A client span around a GET of `target`, context injected."""
    with tracer.start_as_current_span(name, kind=SpanKind.CLIENT) as span:
        headers = {}
        propagator.inject(headers, context=set_span_in_context(span))
        with urllib.request.urlopen(urllib.request.Request(target, headers=headers), timeout=20) as r:
            return json.loads(r.read())


def service(name, tracer, inbound, outbound, next_url):
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            carrier = {k.lower(): v for k, v in self.headers.items()}
            seen = sorted(k for k in carrier if k in TRACE_HEADERS)
            ctx = inbound.extract(carrier)
            with tracer.start_as_current_span(f"handle {name}", context=ctx, kind=SpanKind.SERVER):
                downstream = call(tracer, outbound, next_url, f"call from {name}") if next_url else []
            body = json.dumps([seen] + downstream).encode()
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    return Handler


def main():
    otlp_url, zipkin_url, scenario, run = sys.argv[1:5]
    hops, exporters = SCENARIOS[scenario]
    names = [f"{scenario}-{run}-{i}" for i in range(4)]
    providers = [provider(n, e, otlp_url, zipkin_url) for n, e in zip(names, exporters)]
    servers = []
    next_url = None
    # Built from the last service backwards, so each knows its callee.
    for i in (3, 2, 1):
        outbound = PROPAGATORS[hops[i]] if i < 3 else None
        handler = service(names[i], providers[i].get_tracer("svc"), PROPAGATORS[hops[i - 1]], outbound, next_url)
        srv = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=srv.serve_forever, daemon=True).start()
        servers.append(srv)
        next_url = f"http://127.0.0.1:{srv.server_address[1]}/"
    driver = providers[0].get_tracer("driver")
    with driver.start_as_current_span("request", kind=SpanKind.INTERNAL):
        headers = call(driver, PROPAGATORS[hops[0]], next_url, "call service 1")
    for srv in servers:
        srv.shutdown()
    for p in providers:
        p.shutdown()
    if failures:
        raise SystemExit(f"exports not accepted: {failures}")
    print(json.dumps({
        "trace_ids": sorted({s["trace_id"] for s in recorded}),
        "spans": recorded,
        "headers": headers,
    }))


if __name__ == "__main__":
    main()
