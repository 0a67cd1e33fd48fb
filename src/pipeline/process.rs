//! The per-request work the receiver does before writing: validate each
//! span, truncate oversized values, scrub PII, apply head sampling, then
//! convert to the span model. Pure CPU work over one decoded request.

use std::collections::HashMap;
use std::fmt::Write as _;

use super::consistent::{self, Randomness, Source};
use super::sampling::{forces_keep, Sampler};
use super::scrub::Scrubber;
use crate::config::Config;
use crate::metrics::Counter;
use crate::model::Span;
use crate::otlp::convert::spans_from_proto;
use crate::otlp::proto::collector::trace::v1::ExportTraceServiceRequest;
use crate::otlp::proto::common::v1::any_value::Value as AnyValueKind;
use crate::otlp::proto::resource::v1::Resource;
use crate::otlp::proto::trace::v1::ResourceSpans;
use crate::otlp::validate::{check_span, truncate_attrs, truncate_span};
use crate::spanmetrics::accum::Accumulator;

/// Reasons quoted in `partial_success.error_message`; the count covers all.
const MAX_REASONS: usize = 3;

pub struct Processor {
    max_attr: usize,
    scrubber: Scrubber,
    sampler: Sampler,
    truncated: Counter,
    sampled_out: Counter,
}

/// What became of one request.
#[derive(Debug, Default)]
pub struct Processed {
    /// Spans to write (valid, scrubbed, sampled in).
    pub spans: Vec<Span>,
    pub received: u64,
    pub rejected: u64,
    pub sampled_out: u64,
    pub truncated: u64,
    pub redacted: u64,
    /// Empty when every span was taken unchanged.
    pub message: String,
}

impl Processor {
    pub fn new(cfg: &Config) -> Processor {
        Processor {
            max_attr: cfg.ingest.max_attribute_value_bytes,
            scrubber: Scrubber::new(&cfg.scrub),
            sampler: Sampler::new(&cfg.sampling),
            truncated: Counter::new(
                "strand_ingest_truncated_values_total",
                "attribute values and names truncated to ingest.max_attribute_value_bytes",
                &[],
            ),
            sampled_out: Counter::new(
                "strand_ingest_spans_sampled_out_total",
                "valid spans dropped by head sampling",
                &[],
            ),
        }
    }

    pub fn sampler(&self) -> &Sampler {
        &self.sampler
    }

    pub fn process(&self, req: ExportTraceServiceRequest) -> Processed {
        self.process_counting(req, None)
    }

    /// [`Self::process`], also counting every valid span — sampled in or
    /// out — into a receiver worker's span metrics.
    pub fn process_counting(
        &self,
        mut req: ExportTraceServiceRequest,
        metrics: Option<&mut Accumulator>,
    ) -> Processed {
        let mut out = Processed::default();
        let mut reasons = String::new();
        let max = self.max_attr;
        for rs in &mut req.resource_spans {
            // Scrub before truncating, so a cut can never leave part of a
            // card number or address behind unrecognised.
            if let Some(r) = rs.resource.as_mut() {
                out.redacted += self.scrubber.scrub_attrs(&mut r.attributes);
                out.truncated += truncate_attrs(&mut r.attributes, max);
            }
            for ss in &mut rs.scope_spans {
                if let Some(sc) = ss.scope.as_mut() {
                    out.redacted += self.scrubber.scrub_attrs(&mut sc.attributes);
                    out.truncated += truncate_attrs(&mut sc.attributes, max);
                }
                out.received += ss.spans.len() as u64;
                ss.spans.retain_mut(|s| match check_span(s) {
                    Err(why) => {
                        out.rejected += 1;
                        if out.rejected as usize <= MAX_REASONS {
                            let sep = if reasons.is_empty() { "" } else { "; " };
                            let _ = write!(reasons, "{sep}span {}: {why}", hex::encode(&s.span_id));
                        }
                        false
                    }
                    Ok(()) => {
                        out.redacted += self.scrubber.scrub_attrs(&mut s.attributes);
                        for e in &mut s.events {
                            out.redacted += self.scrubber.scrub_attrs(&mut e.attributes);
                        }
                        for l in &mut s.links {
                            out.redacted += self.scrubber.scrub_attrs(&mut l.attributes);
                        }
                        out.truncated += truncate_span(s, max);
                        true
                    }
                });
            }
        }
        out.sampled_out = self.sample(&mut req, out.received - out.rejected, metrics);
        self.sampled_out.add(out.sampled_out);
        self.truncated.add(out.truncated);
        out.spans = spans_from_proto(&req.resource_spans);

        if out.rejected > 0 {
            let more = if out.rejected as usize > MAX_REASONS {
                "; ..."
            } else {
                ""
            };
            out.message = format!(
                "rejected {} of {} spans: {reasons}{more}",
                out.rejected, out.received
            );
        }
        if out.truncated > 0 {
            let sep = if out.message.is_empty() { "" } else { ". " };
            let _ = write!(
                out.message,
                "{sep}truncated {} values longer than {max} bytes",
                out.truncated
            );
        }
        out
    }

    /// Drops the spans of traces sampled out; returns how many. Span
    /// metrics count each valid span here, where it is known whether it
    /// is kept (only kept spans become exemplars).
    fn sample(
        &self,
        req: &mut ExportTraceServiceRequest,
        offered: u64,
        mut metrics: Option<&mut Accumulator>,
    ) -> u64 {
        let base = self.sampler.observe(offered);
        if let Some(m) = metrics.as_deref_mut() {
            m.begin(crate::model::now_ns());
        }
        if !self.sampler.may_drop(base) {
            if let Some(m) = metrics {
                for rs in &req.resource_spans {
                    let service = service_of(rs);
                    for s in rs.scope_spans.iter().flat_map(|ss| &ss.spans) {
                        m.record(service, s, true);
                    }
                }
            }
            return 0;
        }
        let thresholds = self.trace_thresholds(req, base);
        let mut dropped = 0;
        let mut presumed = 0;
        for rs in req.resource_spans.iter_mut() {
            let service = service_of_resource(rs.resource.as_ref());
            for ss in rs.scope_spans.iter_mut() {
                ss.spans.retain_mut(|s| {
                    let t = thresholds.get(&s.trace_id).copied().unwrap_or(0);
                    let keep = if t == 0 {
                        true
                    } else {
                        let r = Randomness::of(&s.trace_id, s.flags, &s.trace_state);
                        presumed += u64::from(r.source == Source::PresumedTraceId);
                        let keep = r.keep(t);
                        // An equalizing stage records the threshold it
                        // raised, so adjusted counts stay right downstream.
                        if keep && r.state.th.is_some_and(|th| th < t && r.r >= th) {
                            s.trace_state = consistent::with_threshold(&s.trace_state, t);
                        }
                        keep
                    };
                    if let Some(m) = metrics.as_deref_mut() {
                        m.record(service, s, keep);
                    }
                    dropped += u64::from(!keep);
                    keep
                });
            }
        }
        self.sampler.count_presumed(presumed);
        dropped
    }

    /// The rejection threshold per trace of the request (0 keeps all).
    /// The trace's entry spans (roots, SERVER and CONSUMER spans) in the
    /// request decide with the most permissive ratio among them, so a
    /// service's request keeps or drops its spans together; a trace with
    /// no entry span here uses its spans' own ratios the same way. Error
    /// traces (`keep_errors`) and forced ones (`sampling.priority`) get 0.
    fn trace_thresholds(
        &self,
        req: &ExportTraceServiceRequest,
        base: f64,
    ) -> HashMap<Vec<u8>, u64> {
        // (threshold over entry spans, threshold over all spans, forced)
        let mut per: HashMap<&[u8], (u64, u64, bool)> = HashMap::new();
        let keep_errors = self.sampler.keep_errors();
        for rs in &req.resource_spans {
            let service = service_of(rs);
            for s in rs.scope_spans.iter().flat_map(|ss| &ss.spans) {
                let e = per.entry(s.trace_id.as_slice()).or_insert((
                    consistent::MAX + 1,
                    consistent::MAX + 1,
                    false,
                ));
                let forced = (keep_errors && s.status.as_ref().is_some_and(|st| st.code == 2))
                    || forces_keep(s);
                e.2 |= forced;
                let t = consistent::threshold(self.sampler.ratio_for(service, &s.name, base));
                e.1 = e.1.min(t);
                if is_entry(s) {
                    e.0 = e.0.min(t);
                }
            }
        }
        per.into_iter()
            .map(|(id, (entry, any, forced))| {
                let t = match (forced, entry <= consistent::MAX) {
                    (true, _) => 0,
                    (false, true) => entry,
                    (false, false) => any,
                };
                (id.to_vec(), t)
            })
            .collect()
    }
}

/// A span that starts a trace or a service's part of it.
fn is_entry(s: &crate::otlp::proto::trace::v1::Span) -> bool {
    // OTLP SpanKind: 2 = SERVER, 5 = CONSUMER.
    s.parent_span_id.is_empty() || s.kind == 2 || s.kind == 5
}

fn service_of(rs: &ResourceSpans) -> &str {
    service_of_resource(rs.resource.as_ref())
}

/// `service.name`, or OTel's fallback (as `model::Resource::service_name`).
fn service_of_resource(r: Option<&Resource>) -> &str {
    r.and_then(|r| r.attributes.iter().find(|kv| kv.key == "service.name"))
        .and_then(|kv| kv.value.as_ref())
        .and_then(|v| match &v.value {
            Some(AnyValueKind::StringValue(s)) if !s.is_empty() => Some(s.as_str()),
            _ => None,
        })
        .unwrap_or("unknown_service")
}

#[cfg(test)]
#[path = "process_tests.rs"]
mod tests;
