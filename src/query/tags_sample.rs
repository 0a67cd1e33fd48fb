//! The sampling path of autocomplete: tag names and values collected from
//! the newest [`SAMPLE_TRACES`] traces matching a TraceQL filter. Used for
//! `q=` filters the catalog cannot answer (see `super::tags`), and kept
//! reachable with `strategy=sample` so the two can be compared.

use std::collections::{BTreeMap, BTreeSet};

use super::traceql::Query;
use super::traceql_eval::TraceCtx;
use super::{load_traces, root_span, summarize};
use crate::error::Result;
use crate::model::SpanReader;
use crate::model::{AttrValue, KeyValue, SearchQuery, Span, TraceId};

pub const SAMPLE_TRACES: usize = 100;
pub const MAX_VALUES_PER_TAG: usize = 1000;
pub const MAX_VALUE_BYTES: usize = 256;
pub const MAX_TAG_NAMES: usize = 5000;

/// A value with its TraceQL type (`string`, `int`, `float`, `bool`,
/// `keyword`).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Typed {
    pub ty: &'static str,
    pub value: String,
}

pub type Values = BTreeMap<String, BTreeSet<Typed>>;

#[derive(Debug, Default)]
pub struct Sample {
    /// Tag fields whose values are known to be incomplete, and why.
    pub warnings: Vec<String>,
    pub resource: Values,
    pub span: Values,
    pub names: BTreeSet<Typed>,
    pub root_services: BTreeSet<Typed>,
    pub root_names: BTreeSet<Typed>,
}

fn typed(v: &AttrValue) -> Option<Typed> {
    let ty = match v {
        AttrValue::Str(_) => "string",
        AttrValue::Int(_) => "int",
        AttrValue::Double(_) => "float",
        AttrValue::Bool(_) => "bool",
        _ => return None,
    };
    let value = v.as_text();
    (value.len() <= MAX_VALUE_BYTES).then_some(Typed { ty, value })
}

fn insert(set: &mut BTreeSet<Typed>, t: Typed) {
    if set.len() < MAX_VALUES_PER_TAG {
        set.insert(t);
    }
}

fn add_attrs(into: &mut Values, kvs: &[KeyValue], names_left: &mut usize) {
    for kv in kvs {
        if !into.contains_key(&kv.key) {
            if *names_left == 0 {
                continue;
            }
            *names_left -= 1;
        }
        let set = into.entry(kv.key.clone()).or_default();
        if let Some(t) = typed(&kv.value) {
            insert(set, t);
        }
    }
}

fn string(s: &str) -> Option<Typed> {
    (s.len() <= MAX_VALUE_BYTES).then(|| Typed {
        ty: "string",
        value: s.to_string(),
    })
}

impl Sample {
    /// Adds the spans of one trace that satisfy `filter`.
    pub fn add_trace(&mut self, id: TraceId, spans: &[Span], filter: Option<&Query>) {
        let summary = summarize(id, spans);
        let ctx = TraceCtx {
            root_service: &summary.root_service,
            root_name: &summary.root_name,
            duration_ns: summary.duration_ns,
        };
        let mut names_left = MAX_TAG_NAMES.saturating_sub(self.resource.len() + self.span.len());
        let mut any = false;
        for s in spans
            .iter()
            .filter(|s| filter.is_none_or(|q| q.matches(s, &ctx)))
        {
            any = true;
            add_attrs(&mut self.resource, &s.resource.attributes, &mut names_left);
            add_attrs(&mut self.span, &s.attributes, &mut names_left);
            if let Some(t) = string(&s.name) {
                insert(&mut self.names, t);
            }
        }
        if let (true, Some(root)) = (any, root_span(spans)) {
            if let Some(t) = string(root.service_name()) {
                insert(&mut self.root_services, t);
            }
            if let Some(t) = string(&root.name) {
                insert(&mut self.root_names, t);
            }
        }
    }
}

/// Samples the newest traces with a span in `[start_ns, end_ns]`.
pub async fn sample(
    reader: &dyn SpanReader,
    start_ns: Option<u64>,
    end_ns: Option<u64>,
    filter: Option<&Query>,
) -> Result<Sample> {
    let mut q = SearchQuery {
        start_ns,
        end_ns,
        limit: SAMPLE_TRACES,
        ..Default::default()
    };
    if let Some(f) = filter {
        f.narrow(&mut q);
    }
    let ids: Vec<TraceId> = reader
        .search(&q)
        .await?
        .into_iter()
        .map(|h| h.trace_id)
        .collect();
    let mut out = Sample::default();
    for (id, spans) in load_traces(reader, &ids).await? {
        out.add_trace(id, &spans, filter);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::super::testutil::span;
    use super::*;

    #[test]
    fn collects_typed_values_per_scope_with_bounds() {
        let mut a = span(1, 1, None, "front", "GET /", 0, 10);
        a.attributes = vec![
            KeyValue::new("code", AttrValue::Int(200)),
            KeyValue::new("big", AttrValue::Str("x".repeat(MAX_VALUE_BYTES + 1))),
            KeyValue::new("list", AttrValue::Array(vec![])),
        ];
        let b = span(1, 2, Some(1), "back", "query", 1, 5);
        let mut s = Sample::default();
        s.add_trace(TraceId([1; 16]), &[a, b], None);
        assert_eq!(
            s.span["code"].iter().next(),
            Some(&Typed {
                ty: "int",
                value: "200".into()
            })
        );
        assert!(
            s.span["big"].is_empty(),
            "oversize values are not collected"
        );
        assert!(s.span["list"].is_empty());
        assert_eq!(s.resource["service.name"].len(), 2);
        assert_eq!(s.names.len(), 2);
        assert_eq!(
            s.root_services
                .iter()
                .map(|t| t.value.as_str())
                .collect::<Vec<_>>(),
            vec!["front"]
        );
    }

    #[test]
    fn filter_limits_which_spans_contribute() {
        let q = super::super::traceql::parse(r#"{ resource.service.name = "back" }"#).unwrap();
        let mut s = Sample::default();
        s.add_trace(
            TraceId([1; 16]),
            &[
                span(1, 1, None, "front", "GET /", 0, 10),
                span(1, 2, Some(1), "back", "query", 1, 5),
            ],
            Some(&q),
        );
        assert_eq!(
            s.names.iter().map(|t| t.value.as_str()).collect::<Vec<_>>(),
            vec!["query"]
        );
    }
}
