//! Tag names and values for Tempo's autocomplete endpoints, collected from
//! a bounded sample: the newest [`SAMPLE_TRACES`] traces (in the requested
//! window, if any), at most [`MAX_VALUES_PER_TAG`] distinct values per tag
//! of at most [`MAX_VALUE_BYTES`] each, at most [`MAX_TAG_NAMES`] names.
//! The store keeps no tag dictionary, and a sample of recent traffic is
//! what autocomplete needs; cost stays bounded whatever the store holds.

use std::collections::{BTreeMap, BTreeSet};

use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::{json, Value};

use super::params::{bad, Params};
use super::tempo::{reply, seconds};
use super::traceql::{self, AttrScope, Query};
use super::traceql_eval::TraceCtx;
use super::{load_traces, root_span, summarize, QueryState};
use crate::error::{Error, Result};
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

/// Intrinsics offered for autocomplete (those the TraceQL subset knows).
pub const INTRINSICS: [&str; 8] = [
    "duration",
    "kind",
    "name",
    "rootName",
    "rootServiceName",
    "status",
    "statusMessage",
    "traceDuration",
];

async fn sample_for(req: &HttpRequest, state: &QueryState) -> Result<(Params, Sample)> {
    let p = Params::parse(req.query_string())?;
    // An autocomplete `q` is often unfinished: use it when it parses.
    let filter = p.get("q").and_then(|q| traceql::parse(q).ok());
    let smp = sample(
        state.reader.as_ref(),
        seconds(&p, "start")?,
        seconds(&p, "end")?,
        filter.as_ref(),
    )
    .await?;
    Ok((p, smp))
}

/// `GET /api/search/tags`: attribute names of either scope.
pub async fn tags_v1(req: HttpRequest, state: web::Data<QueryState>) -> HttpResponse {
    reply(
        async {
            let (_, smp) = sample_for(&req, &state).await?;
            let names: std::collections::BTreeSet<&String> =
                smp.resource.keys().chain(smp.span.keys()).collect();
            Ok(json!({ "tagNames": names }))
        }
        .await,
    )
}

/// `GET /api/v2/search/tags?scope=`: names by scope, with intrinsics.
pub async fn tags_v2(req: HttpRequest, state: web::Data<QueryState>) -> HttpResponse {
    reply(
        async {
            let (p, smp) = sample_for(&req, &state).await?;
            let scope = p.get("scope").unwrap_or("all");
            let all = [
                ("resource", smp.resource.keys().cloned().collect::<Vec<_>>()),
                ("span", smp.span.keys().cloned().collect()),
                (
                    "intrinsic",
                    INTRINSICS.iter().map(|s| s.to_string()).collect(),
                ),
            ];
            if !matches!(scope, "all" | "resource" | "span" | "intrinsic") {
                return Err(bad("scope", scope, "resource, span, intrinsic or all"));
            }
            let scopes: Vec<Value> = all
                .into_iter()
                .filter(|(n, _)| scope == "all" || scope == *n)
                .map(|(n, tags)| json!({ "name": n, "tags": tags }))
                .collect();
            Ok(json!({ "scopes": scopes }))
        }
        .await,
    )
}

/// `GET /api/search/tag/{tag}/values`: values of an attribute in either
/// scope (plus span names for the legacy `name` tag), as strings.
pub async fn tag_values_v1(
    req: HttpRequest,
    path: web::Path<String>,
    state: web::Data<QueryState>,
) -> HttpResponse {
    reply(
        async {
            let (_, smp) = sample_for(&req, &state).await?;
            let tag = path.as_str();
            let mut values: std::collections::BTreeSet<&str> = smp
                .resource
                .get(tag)
                .into_iter()
                .chain(smp.span.get(tag))
                .flatten()
                .map(|t| t.value.as_str())
                .collect();
            if tag == "name" {
                values.extend(smp.names.iter().map(|t| t.value.as_str()));
            }
            Ok(json!({ "tagValues": values }))
        }
        .await,
    )
}

/// `GET /api/v2/search/tag/{tag}/values`: `tag` is a TraceQL field
/// (`resource.service.name`, `span.http.method`, `.x`, `name`, `status` ...).
pub async fn tag_values_v2(
    req: HttpRequest,
    path: web::Path<String>,
    state: web::Data<QueryState>,
) -> HttpResponse {
    reply(
        async {
            let tag = path.as_str();
            let field = traceql::field(tag)
                .map_err(|e| Error::InvalidArgument(format!("parameter tag: {e}")))?;
            let keywords = |v: &[&str]| {
                v.iter()
                    .map(|s| Typed {
                        ty: "keyword",
                        value: s.to_string(),
                    })
                    .collect::<Vec<_>>()
            };
            let values: Vec<Typed> = match &field {
                traceql::Field::Status => keywords(&["error", "ok", "unset"]),
                traceql::Field::Kind => keywords(&[
                    "unspecified",
                    "internal",
                    "server",
                    "client",
                    "producer",
                    "consumer",
                ]),
                traceql::Field::Duration
                | traceql::Field::TraceDuration
                | traceql::Field::StatusMessage => Vec::new(),
                f => {
                    let (_, smp) = sample_for(&req, &state).await?;
                    let set: std::collections::BTreeSet<Typed> = match f {
                        traceql::Field::Name => smp.names,
                        traceql::Field::RootServiceName => smp.root_services,
                        traceql::Field::RootName => smp.root_names,
                        traceql::Field::Attr(AttrScope::Resource, k) => {
                            smp.resource.get(k).cloned().unwrap_or_default()
                        }
                        traceql::Field::Attr(AttrScope::Span, k) => {
                            smp.span.get(k).cloned().unwrap_or_default()
                        }
                        traceql::Field::Attr(AttrScope::Any, k) => smp
                            .resource
                            .get(k)
                            .into_iter()
                            .chain(smp.span.get(k))
                            .flatten()
                            .cloned()
                            .collect(),
                        _ => Default::default(),
                    };
                    set.into_iter().collect()
                }
            };
            let out: Vec<Value> = values
                .into_iter()
                .map(|t| json!({ "type": t.ty, "value": t.value }))
                .collect();
            Ok(json!({ "tagValues": out }))
        }
        .await,
    )
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
