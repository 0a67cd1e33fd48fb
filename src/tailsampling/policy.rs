//! Compiled policies and their evaluation over one whole trace. Top-level
//! policies are all evaluated (so each one's counts mean "would it keep
//! this trace"), and the trace is kept when any of them keeps it.

use std::collections::HashMap;

use super::config::PolicyConfig;
use super::quantiles::Quantiles;
use crate::metrics::Counter;
use crate::model::{Span, StatusCode, TraceId};

/// One trace as policies see it.
pub struct TraceView<'a> {
    pub id: TraceId,
    pub spans: &'a [Span],
    /// Earliest start and latest end of its spans.
    pub start_ns: u64,
    pub end_ns: u64,
    /// The root span, or else the earliest span (a trace decided before its
    /// root arrived still has an operation to compare against).
    pub head: Option<&'a Span>,
}

impl<'a> TraceView<'a> {
    pub fn new(id: TraceId, spans: &'a [Span]) -> TraceView<'a> {
        let start_ns = spans.iter().map(|s| s.start_ns).min().unwrap_or(0);
        let end_ns = spans.iter().map(|s| s.end_ns).max().unwrap_or(0);
        let head = spans
            .iter()
            .find(|s| s.parent_span_id.is_none())
            .or_else(|| spans.iter().min_by_key(|s| s.start_ns));
        TraceView {
            id,
            spans,
            start_ns,
            end_ns,
            head,
        }
    }

    pub fn duration_ns(&self) -> u64 {
        self.end_ns.saturating_sub(self.start_ns)
    }
}

enum Rule {
    Always,
    Status(Vec<StatusCode>),
    Latency(u64),
    Quantile {
        q: f64,
        min_calls: u64,
    },
    Attr {
        key: String,
        values: Vec<String>,
    },
    /// Keep when the trace id's 56 low random bits are below this.
    Probabilistic(u64),
    RateLimit {
        per_sec: f64,
        /// Per service: tokens left and when they were last topped up.
        buckets: HashMap<String, (f64, u64)>,
    },
    And(Vec<Rule>),
    Or(Vec<Rule>),
}

/// The 56 low bits of a W3C trace id are random: the same id is decided
/// the same way on every writer and after a restart.
pub fn random_bits(id: &TraceId) -> u64 {
    let mut b = [0u8; 8];
    b[1..].copy_from_slice(&id.0[9..16]);
    u64::from_be_bytes(b)
}

const RANDOM_SPAN: f64 = (1u64 << 56) as f64;

impl Rule {
    fn compile(c: &PolicyConfig) -> Rule {
        let subs = |v: &Option<Vec<PolicyConfig>>| {
            v.iter().flatten().map(Rule::compile).collect::<Vec<_>>()
        };
        match c.kind.as_str() {
            "status_code" => Rule::Status(
                c.status_codes
                    .iter()
                    .flatten()
                    .map(|s| match s.as_str() {
                        "ERROR" => StatusCode::Error,
                        "OK" => StatusCode::Ok,
                        _ => StatusCode::Unset,
                    })
                    .collect(),
            ),
            "latency" => Rule::Latency(c.threshold_ms.unwrap_or(0).saturating_mul(1_000_000)),
            "latency_quantile" => Rule::Quantile {
                q: c.quantile.unwrap_or(0.99),
                min_calls: c.min_calls.unwrap_or(100),
            },
            "string_attribute" => Rule::Attr {
                key: c.key.clone().unwrap_or_default(),
                values: c.values.clone().unwrap_or_default(),
            },
            "probabilistic" => Rule::Probabilistic(
                (c.sampling_percentage.unwrap_or(0.0) / 100.0 * RANDOM_SPAN) as u64,
            ),
            "rate_limiting" => Rule::RateLimit {
                per_sec: c.traces_per_second.unwrap_or(1.0),
                buckets: HashMap::new(),
            },
            "and" => Rule::And(subs(&c.and_sub_policy)),
            "or" => Rule::Or(subs(&c.or_sub_policy)),
            // Validation admits only the types above.
            _ => Rule::Always,
        }
    }

    fn keeps(&mut self, t: &TraceView, q: &Quantiles, now_ns: u64) -> bool {
        match self {
            Rule::Always => true,
            Rule::Status(codes) => t.spans.iter().any(|s| codes.contains(&s.status.code)),
            Rule::Latency(ns) => t.duration_ns() >= *ns,
            Rule::Quantile {
                q: quant,
                min_calls,
            } => t.head.is_some_and(|h| {
                q.quantile_ns(h.service_name(), &h.name, *quant, *min_calls)
                    .is_some_and(|limit| t.duration_ns() > limit)
            }),
            Rule::Attr { key, values } => t.spans.iter().any(|s| match s.attr(key) {
                None => false,
                Some(_) if values.is_empty() => true,
                Some(v) => values.contains(&v.as_text()),
            }),
            Rule::Probabilistic(threshold) => random_bits(&t.id) < *threshold,
            Rule::RateLimit { per_sec, buckets } => {
                let service = t.head.map_or("", |h| h.service_name());
                let burst = per_sec.max(1.0);
                let (tokens, last) = buckets
                    .entry(service.to_string())
                    .or_insert((burst, now_ns));
                let elapsed = now_ns.saturating_sub(*last) as f64 / 1e9;
                *tokens = (*tokens + elapsed * *per_sec).min(burst);
                *last = now_ns;
                if *tokens >= 1.0 {
                    *tokens -= 1.0;
                    true
                } else {
                    false
                }
            }
            Rule::And(rules) => rules.iter_mut().all(|r| r.keeps(t, q, now_ns)),
            Rule::Or(rules) => rules.iter_mut().any(|r| r.keeps(t, q, now_ns)),
        }
    }
}

/// A named top-level policy with its decision counters.
pub struct Policy {
    pub name: String,
    rule: Rule,
    keep: Counter,
    drop: Counter,
}

impl Policy {
    pub fn compile(c: &PolicyConfig) -> Policy {
        let counter = |decision| {
            Counter::new(
                "strand_tail_decisions_total",
                "tail-sampling decisions per policy (keep: this policy would keep the trace)",
                &[("policy", &c.name), ("decision", decision)],
            )
        };
        Policy {
            name: c.name.clone(),
            rule: Rule::compile(c),
            keep: counter("keep"),
            drop: counter("drop"),
        }
    }
}

/// Evaluates every policy (counting each) and answers keep or drop.
pub fn decide(policies: &mut [Policy], t: &TraceView, q: &Quantiles, now_ns: u64) -> bool {
    let mut keep = false;
    for p in policies {
        if p.rule.keeps(t, q, now_ns) {
            p.keep.inc();
            keep = true;
        } else {
            p.drop.inc();
        }
    }
    keep
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::testutil::span;

    fn policy(toml_text: &str) -> Policy {
        let c: PolicyConfig = toml::from_str(toml_text).unwrap();
        Policy::compile(&c)
    }

    #[test]
    fn each_rule_keeps_what_it_should() {
        let q = Quantiles::empty();
        let mut spans: Vec<Span> = (0..3).map(|i| span(7, i, "svc", "op")).collect();
        for s in &mut spans {
            s.status.code = StatusCode::Unset;
        }
        spans[1].end_ns = spans[0].start_ns + 3_000_000_000;
        let t = TraceView::new(spans[0].trace_id, &spans);
        let mut slow = policy("name = \"s\"\ntype = \"latency\"\nthreshold_ms = 2000\n");
        let mut slower = policy("name = \"s2\"\ntype = \"latency\"\nthreshold_ms = 4000\n");
        assert!(slow.rule.keeps(&t, &q, 0));
        assert!(!slower.rule.keeps(&t, &q, 0));
        let mut err = policy("name = \"e\"\ntype = \"status_code\"\nstatus_codes = [\"ERROR\"]\n");
        assert!(!err.rule.keeps(&t, &q, 0));
        spans[2].status.code = StatusCode::Error;
        let t = TraceView::new(spans[0].trace_id, &spans);
        assert!(err.rule.keeps(&t, &q, 0));
        spans[2].attributes = vec![crate::model::KeyValue::new(
            "tenant",
            crate::model::AttrValue::Str("a".into()),
        )];
        let t = TraceView::new(spans[0].trace_id, &spans);
        let mut present = policy("name = \"a\"\ntype = \"string_attribute\"\nkey = \"tenant\"\n");
        let mut is_b = policy(
            "name = \"b\"\ntype = \"string_attribute\"\nkey = \"tenant\"\nvalues = [\"b\"]\n",
        );
        assert!(present.rule.keeps(&t, &q, 0));
        assert!(!is_b.rule.keeps(&t, &q, 0));
        let mut both = policy(
            "name = \"x\"\ntype = \"and\"\n[[and_sub_policy]]\nname = \"a\"\ntype = \"always_sample\"\n[[and_sub_policy]]\nname = \"b\"\ntype = \"string_attribute\"\nkey = \"tenant\"\nvalues = [\"b\"]\n",
        );
        assert!(!both.rule.keeps(&t, &q, 0));
    }

    #[test]
    fn probabilistic_is_consistent_and_near_its_rate() {
        let mut p = policy("name = \"p\"\ntype = \"probabilistic\"\nsampling_percentage = 10.0\n");
        let q = Quantiles::empty();
        let mut kept = 0;
        for i in 0..20_000u64 {
            let mut id = [0u8; 16];
            id[8..].copy_from_slice(&i.wrapping_mul(0x9E37_79B9_7F4A_7C15).to_le_bytes());
            let spans = vec![];
            let t = TraceView::new(TraceId(id), &spans);
            let a = p.rule.keeps(&t, &q, 0);
            assert_eq!(a, p.rule.keeps(&t, &q, 0), "same id, same answer");
            kept += a as u32;
        }
        // 10% of 20 000 = 2 000, sd ≈ 42: ±5 sd.
        assert!((1_790..=2_210).contains(&kept), "{kept}");
    }

    #[test]
    fn rate_limit_is_per_service_and_refills() {
        let mut p = policy("name = \"r\"\ntype = \"rate_limiting\"\ntraces_per_second = 2.0\n");
        let q = Quantiles::empty();
        let a: Vec<Span> = vec![span(1, 1, "a", "op")];
        let b: Vec<Span> = vec![span(2, 1, "b", "op")];
        let (ta, tb) = (
            TraceView::new(a[0].trace_id, &a),
            TraceView::new(b[0].trace_id, &b),
        );
        let now = 10_000_000_000;
        let kept: usize = (0..5).filter(|_| p.rule.keeps(&ta, &q, now)).count();
        assert_eq!(kept, 2, "the burst is one second's worth");
        assert!(
            p.rule.keeps(&tb, &q, now),
            "another service has its own budget"
        );
        assert!(
            p.rule.keeps(&ta, &q, now + 500_000_000),
            "half a second refills one"
        );
    }
}
