//! The query API's span: one per `/api/*` or `/internal/*` request (health
//! probes, metrics and UI assets are not traced). A W3C `traceparent`
//! from the caller is honoured: a sampled caller's trace continues into
//! strand (the query span is its child, whatever the local rate); an
//! unsampled one is not traced; without one, the token bucket decides.

use actix_web::dev::{Service, ServiceRequest, ServiceResponse};
use actix_web::http::header::HeaderMap;
use opentelemetry::context::FutureExt as _;
use opentelemetry::propagation::{Extractor, TextMapPropagator};
use opentelemetry::trace::{SpanKind, TraceContextExt, Tracer as _};
use opentelemetry::{Context, KeyValue};
use opentelemetry_sdk::propagation::TraceContextPropagator;

use super::{state, Trace};

struct Headers<'a>(&'a HeaderMap);

impl Extractor for Headers<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }
    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(|k| k.as_str()).collect()
    }
}

fn traced_path(path: &str) -> bool {
    path.starts_with("/api/") || path.starts_with("/internal/")
}

/// The span of one query request, if it is to be traced.
pub fn start(req: &ServiceRequest) -> Option<Trace> {
    let s = state()?;
    if !traced_path(req.path()) {
        return None;
    }
    let parent = if req.headers().contains_key("traceparent") {
        let cx = TraceContextPropagator::new().extract(&Headers(req.headers()));
        let sc = cx.span().span_context().clone();
        if sc.is_valid() && !sc.is_sampled() {
            return None; // the caller decided
        }
        cx
    } else {
        Context::new()
    };
    let remote = parent.span().span_context().is_valid();
    if !remote && !s.bucket.available() {
        return None;
    }
    let route = req
        .match_pattern()
        .unwrap_or_else(|| req.path().to_string());
    let method = req.method().as_str().to_string();
    let span = s
        .tracer
        .span_builder(format!("{method} {route}"))
        .with_kind(SpanKind::Server)
        .with_attributes([
            KeyValue::new("http.request.method", method),
            KeyValue::new("http.route", route),
            KeyValue::new("url.path", req.path().to_string()),
        ])
        .start_with_context(&s.tracer, &parent);
    if !opentelemetry::trace::Span::span_context(&span).is_sampled() {
        return None;
    }
    Some(Trace {
        cx: parent.with_span(span),
    })
}

/// Middleware (`App::wrap_fn`): runs the request inside its span, so log
/// lines and child spans of the handler belong to it.
pub fn traced<S, B>(
    req: ServiceRequest,
    srv: &S,
) -> impl std::future::Future<Output = Result<ServiceResponse<B>, actix_web::Error>> + 'static
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error>,
    S::Future: 'static,
    B: 'static,
{
    let trace = start(&req);
    let cx = trace.as_ref().map(|t| t.cx.clone());
    let fut = srv.call(req);
    async move {
        let res = match cx {
            Some(cx) => fut.with_context(cx).await,
            None => fut.await,
        };
        if let Some(t) = trace {
            finish(t, res.as_ref().ok().map(|r| r.status().as_u16()));
        }
        res
    }
}

/// Records the answer on the span (and ends it, by dropping it).
pub fn finish(t: Trace, status: Option<u16>) {
    match status {
        Some(code) => {
            t.set_attribute(KeyValue::new("http.response.status_code", i64::from(code)));
            if code >= 500 {
                t.set_error(format!("HTTP {code}"));
            }
        }
        None => t.set_error("request failed"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_api_paths_are_traced() {
        assert!(traced_path("/api/traces/abc"));
        assert!(traced_path("/internal/v1/search"));
        assert!(!traced_path("/readyz"));
        assert!(!traced_path("/metrics"));
        assert!(!traced_path("/static/app.js"));
    }

    #[test]
    fn traceparent_is_read_from_headers() {
        let mut h = HeaderMap::new();
        h.insert(
            actix_web::http::header::HeaderName::from_static("traceparent"),
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
                .parse()
                .unwrap(),
        );
        let cx = TraceContextPropagator::new().extract(&Headers(&h));
        let sc = cx.span().span_context().clone();
        assert!(sc.is_valid() && sc.is_sampled() && sc.is_remote());
        assert_eq!(
            sc.trace_id().to_string(),
            "4bf92f3577b34da6a3ce929d0e0e4736"
        );
    }
}
