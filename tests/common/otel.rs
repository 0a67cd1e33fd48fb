//! The real OpenTelemetry Rust SDK as a client: exporters and tracer
//! providers. The simple processor exports each span as it ends, so call
//! from a blocking context (`block_in_place`, `spawn_blocking`).

use std::time::Duration;

use opentelemetry::trace::{Span as _, SpanKind, TraceContextExt, Tracer, TracerProvider as _};
use opentelemetry::{Context, KeyValue};
use opentelemetry_otlp::{Protocol, SpanExporter, WithExportConfig};
use opentelemetry_sdk::trace::{SdkTracerProvider, Span};
use opentelemetry_sdk::Resource;

/// OTLP/gRPC to `url` (`http://host:port`).
pub fn grpc_exporter(url: &str) -> SpanExporter {
    SpanExporter::builder()
        .with_tonic()
        .with_endpoint(url)
        .with_timeout(Duration::from_secs(10))
        .build()
        .expect("gRPC exporter")
}

/// The HTTP exporter's reqwest 0.13 is built with rustls but no crypto
/// provider (the TLS tests give it one, tests/common/tls.rs): it wants a
/// process default before it builds a client, even for `http://`.
pub fn ensure_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// OTLP/HTTP protobuf to `url` (`http://host:port`) + `/v1/traces`.
pub fn http_exporter(url: &str) -> SpanExporter {
    ensure_crypto_provider();
    SpanExporter::builder()
        .with_http()
        .with_protocol(Protocol::HttpBinary)
        .with_endpoint(format!("{url}/v1/traces"))
        .with_timeout(Duration::from_secs(10))
        .build()
        .expect("HTTP exporter")
}

/// A provider for `service` exporting synchronously through `exporter`.
pub fn provider(service: &str, exporter: SpanExporter) -> SdkTracerProvider {
    SdkTracerProvider::builder()
        .with_simple_exporter(exporter)
        .with_resource(
            Resource::builder()
                .with_service_name(service.to_string())
                .build(),
        )
        .build()
}

/// A provider for `service` exporting over gRPC to `url`.
pub fn grpc_provider(service: &str, url: &str) -> SdkTracerProvider {
    provider(service, grpc_exporter(url))
}

/// Emits one trace over two services, flushes both providers and returns
/// the trace id (hex): a server span `root` of `front` with `root_attrs`,
/// calling a client span `child` of `back` that `edit_child` may add to.
pub fn emit_trace(
    front: &SdkTracerProvider,
    back: &SdkTracerProvider,
    root: &str,
    root_attrs: Vec<KeyValue>,
    child: &str,
    edit_child: impl FnOnce(&mut Span),
) -> String {
    let (ft, bt) = (front.tracer("e2e"), back.tracer("e2e"));
    let root = ft
        .span_builder(root.to_string())
        .with_kind(SpanKind::Server)
        .with_attributes(root_attrs)
        .start(&ft);
    let trace_id = root.span_context().trace_id().to_string();
    let cx = Context::current_with_span(root);
    let mut child = bt
        .span_builder(child.to_string())
        .with_kind(SpanKind::Client)
        .start_with_context(&bt, &cx);
    edit_child(&mut child);
    child.end();
    cx.span().end();
    back.force_flush().expect("flush");
    front.force_flush().expect("flush");
    trace_id
}
