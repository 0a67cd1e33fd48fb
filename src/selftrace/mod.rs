//! Meta-tracing: strand traces its own work — ingest requests, segment
//! seals, Elasticsearch bulks, Kafka produce and consume batches, queries —
//! with the OpenTelemetry SDK, as service `strand`, at most
//! `self_tracing.traces_per_second` traces per second (token bucket at the
//! root, children follow their parent), into its own pipeline or to an
//! OTLP endpoint. docs/OBSERVABILITY.md.
//!
//! Cheap when not sampled: every hook first asks [`Pending::begin`], which
//! is one atomic load and a clock read while the bucket is empty. Spans are
//! built after the fact with the times recorded, so a stage can decide
//! *after* decoding not to trace a batch made only of strand's own spans
//! ([`is_self_only`]): ingesting self-spans is never itself traced.

pub mod bucket;
pub mod config;
pub mod export;
pub mod hooks;
pub mod http;
pub mod logs;

use std::borrow::Cow;
use std::sync::{Arc, OnceLock};
use std::time::SystemTime;

use opentelemetry::trace::{Span as _, SpanKind, TraceContextExt, Tracer as _};
use opentelemetry::{Context, KeyValue};
use opentelemetry_sdk::trace::{BatchConfigBuilder, BatchSpanProcessor, Sampler};
use opentelemetry_sdk::trace::{SdkTracer, SdkTracerProvider};

pub use bucket::TokenBucket;
pub use config::SelfTracingConfig;
pub use export::{Delivery, SELF_MARKER};
pub use hooks::{durable_write, ingest_trace};

use crate::model::Span;

struct State {
    tracer: SdkTracer,
    bucket: Arc<TokenBucket>,
}

static STATE: OnceLock<State> = OnceLock::new();

/// Keeps the SDK pipeline alive; dropping it flushes what is queued.
pub struct SelfTracing {
    provider: SdkTracerProvider,
}

impl Drop for SelfTracing {
    fn drop(&mut self) {
        let _ = self.provider.shutdown();
    }
}

/// Starts self-tracing for this process (`role`: all, ingest, writer,
/// query) delivering to `to`, spawned on the current actix/tokio runtime.
/// Returns None when disabled or already started (one per process).
pub fn start(cfg: &SelfTracingConfig, role: &str, to: Delivery) -> Option<SelfTracing> {
    if !cfg.enabled || STATE.get().is_some() {
        return None;
    }
    let (exporter, rx) = export::ChannelExporter::new(role);
    actix_web::rt::spawn(export::deliver(rx, to));
    let processor = BatchSpanProcessor::builder(exporter)
        .with_batch_config(
            BatchConfigBuilder::default()
                .with_max_queue_size(4096)
                .with_scheduled_delay(std::time::Duration::from_millis(500))
                .build(),
        )
        .build();
    let bucket = Arc::new(TokenBucket::new(cfg.traces_per_second));
    let provider = SdkTracerProvider::builder()
        .with_span_processor(processor)
        .with_sampler(Sampler::parent_based(bucket::RateLimited(bucket.clone())))
        .build();
    let tracer = opentelemetry::trace::TracerProvider::tracer(&provider, "strand");
    STATE.set(State { tracer, bucket }).ok()?;
    tracing::info!(
        role,
        traces_per_second = cfg.traces_per_second,
        endpoint = %cfg.endpoint,
        "self-tracing on"
    );
    Some(SelfTracing { provider })
}

fn state() -> Option<&'static State> {
    STATE.get()
}

/// Whether self-tracing runs in this process.
pub fn enabled() -> bool {
    STATE.get().is_some()
}

/// Whether every span is one of strand's own (a batch not worth tracing:
/// tracing it would trace the tracing). Cheap: resources are shared, so
/// each distinct one is looked at once.
pub fn is_self_only(spans: &[Span]) -> bool {
    let mut last: Option<&Arc<crate::model::Resource>> = None;
    !spans.is_empty()
        && spans.iter().all(|s| {
            if last.is_some_and(|r| Arc::ptr_eq(r, &s.resource)) {
                return true;
            }
            last = Some(&s.resource);
            s.resource.attributes.iter().any(|kv| kv.key == SELF_MARKER)
        })
}

/// A stage's work being timed before it is known whether to trace it.
pub struct Pending {
    start: SystemTime,
    last: SystemTime,
    phases: Vec<(&'static str, SystemTime, SystemTime)>,
}

impl Pending {
    /// None (at the cost of a clock read) unless a root trace could start.
    #[inline]
    pub fn begin() -> Option<Pending> {
        let s = state()?;
        if !s.bucket.available() {
            return None;
        }
        let now = SystemTime::now();
        Some(Pending {
            start: now,
            last: now,
            phases: Vec::with_capacity(4),
        })
    }

    /// Ends a phase (since the start or the previous phase) now.
    pub fn phase(&mut self, name: &'static str) {
        let now = SystemTime::now();
        self.phases.push((name, self.last, now));
        self.last = now;
    }

    /// Starts the root span (back-dated to `begin`) and a child per phase,
    /// if the sampler grants a token.
    pub fn start(self, name: &'static str, kind: SpanKind, attrs: Vec<KeyValue>) -> Option<Trace> {
        let s = state()?;
        let span = s
            .tracer
            .span_builder(name)
            .with_kind(kind)
            .with_start_time(self.start)
            .with_attributes(attrs)
            .start_with_context(&s.tracer, &Context::new());
        if !span.span_context().is_sampled() {
            return None;
        }
        let cx = Context::new().with_span(span);
        for (phase, from, to) in self.phases {
            let mut c = s
                .tracer
                .span_builder(phase)
                .with_start_time(from)
                .start_with_context(&s.tracer, &cx);
            c.end_with_timestamp(to);
        }
        Some(Trace { cx })
    }
}

/// Ends a phase of a timing that may not be running.
#[inline]
pub fn phase(p: &mut Option<Pending>, name: &'static str) {
    if let Some(p) = p {
        p.phase(name);
    }
}

/// A sampled root span, ended when dropped.
pub struct Trace {
    cx: Context,
}

impl Trace {
    /// For `FutureExt::with_context` / `attach`: log lines inside carry
    /// the ids, child spans attach to it.
    pub fn context(&self) -> &Context {
        &self.cx
    }

    pub fn set_attribute(&self, kv: KeyValue) {
        self.cx.span().set_attribute(kv);
    }

    pub fn set_error(&self, message: impl Into<Cow<'static, str>>) {
        self.cx
            .span()
            .set_status(opentelemetry::trace::Status::error(message));
    }

    /// A child span starting now, ended when the returned trace drops.
    pub fn child(&self, name: &'static str) -> Trace {
        child_of(&self.cx, name, SpanKind::Internal).unwrap_or_else(|| Trace {
            cx: self.cx.clone(),
        })
    }
}

impl Drop for Trace {
    fn drop(&mut self) {
        self.cx.span().end();
    }
}

fn child_of(parent: &Context, name: &'static str, kind: SpanKind) -> Option<Trace> {
    let s = state()?;
    let span = s
        .tracer
        .span_builder(name)
        .with_kind(kind)
        .start_with_context(&s.tracer, parent);
    Some(Trace {
        cx: parent.with_span(span),
    })
}

/// A child of the current context's span, only when that span is sampled
/// (never a new root: e.g. a Kafka produce is traced only inside a traced
/// ingest request).
pub fn child_of_current(name: &'static str, kind: SpanKind) -> Option<Trace> {
    state()?;
    let cx = Context::current();
    if !cx.span().span_context().is_sampled() {
        return None;
    }
    child_of(&cx, name, kind)
}

/// The trace and span id (hex) of the current sampled self-span, for log
/// lines.
pub fn current_ids() -> Option<(String, String)> {
    state()?;
    let cx = Context::current();
    let span = cx.span();
    let sc = span.span_context();
    sc.is_sampled()
        .then(|| (sc.trace_id().to_string(), sc.span_id().to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{AttrValue, Resource};

    fn span_with(resource: &Arc<Resource>) -> Span {
        Span {
            resource: resource.clone(),
            ..Default::default()
        }
    }

    #[test]
    fn self_only_needs_every_span_marked() {
        let own = Arc::new(Resource {
            attributes: vec![crate::model::KeyValue::new(
                SELF_MARKER,
                AttrValue::Bool(true),
            )],
            ..Default::default()
        });
        let other = Arc::new(Resource::default());
        assert!(is_self_only(&[span_with(&own), span_with(&own)]));
        assert!(!is_self_only(&[span_with(&own), span_with(&other)]));
        assert!(!is_self_only(&[]));
    }

    #[test]
    fn nothing_is_traced_before_start() {
        assert!(Pending::begin().is_none() || enabled());
        assert!(child_of_current("x", SpanKind::Internal).is_none() || enabled());
    }
}
