//! Tag names and values for Tempo's autocomplete endpoints, answered from
//! the tiers' tag catalogs (`SpanReader::tag_catalog`): every service,
//! span name and attribute key of the window, not a sample. Bounds and
//! their cut-offs are in `model::catalog`; an answer whose values were cut
//! for a key says so in a `warnings` field.
//!
//! The window is `start`/`end` (unix seconds); without them, the last
//! [`DEFAULT_WINDOW_SECS`]. A `q=` TraceQL filter on the v2 endpoints:
//! `{}` (or one that does not parse yet, as autocomplete sends) is no
//! filter; conditions that are all `resource.service.name = "..."` /
//! `name = "..."` equalities are answered from the catalog for the
//! `name` and `resource.service.name` values (the catalog pairs services
//! with their span names); any other filter falls back to the sampling
//! path in `super::tags_sample` (the newest traces matching the filter).

use std::collections::BTreeSet;

use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::{json, Value};

use super::params::{bad, Params};
use super::tags_sample::{sample, Sample, Values};
use super::tempo::{reply, seconds};
use super::traceql::{self, AttrScope, Field, Op, Query};
use super::QueryState;
use crate::error::{Error, Result};
use crate::model::catalog::{type_names, Dict, KeyValues, TagCatalog, TY_STRING};

pub use super::tags_sample::{Typed, MAX_TAG_NAMES, MAX_VALUES_PER_TAG, MAX_VALUE_BYTES};

/// The window autocomplete looks at when the request names none.
pub const DEFAULT_WINDOW_SECS: u64 = 3600;

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

fn typed_set(v: &KeyValues) -> BTreeSet<Typed> {
    v.values
        .iter()
        .flat_map(|(text, mask)| {
            type_names(*mask).map(move |ty| Typed {
                ty,
                value: text.clone(),
            })
        })
        .collect()
}

fn values_of(d: &Dict, scope: &str, warnings: &mut Vec<String>) -> Values {
    d.iter()
        .map(|(k, v)| {
            if v.incomplete {
                warnings.push(format!("values of {scope}.{k} are incomplete"));
            }
            (k.clone(), typed_set(v))
        })
        .collect()
}

/// The catalog in the shape the handlers render. With `services` given,
/// only those services and their span names are kept (the scoped form).
fn view(cat: &TagCatalog, services: Option<&BTreeSet<String>>) -> Sample {
    let mut warnings = Vec::new();
    let mut resource = values_of(&cat.resource, "resource", &mut warnings);
    let span = values_of(&cat.span, "span", &mut warnings);
    let mut names = KeyValues::default();
    let mut svcs = KeyValues::default();
    for (svc, n) in &cat.services {
        if services.is_some_and(|s| !s.contains(svc)) {
            continue;
        }
        svcs.add(svc, TY_STRING, usize::MAX);
        names.merge(n, usize::MAX);
    }
    if names.incomplete {
        warnings.push("values of name are incomplete".into());
    }
    if cat.keys_incomplete {
        warnings.push("some attribute keys are not listed (catalog bound)".into());
    }
    if !svcs.values.is_empty() {
        resource.insert("service.name".into(), typed_set(&svcs));
    }
    Sample {
        warnings,
        resource,
        span,
        names: typed_set(&names),
        root_services: typed_set(&cat.root_services),
        root_names: typed_set(&cat.root_names),
    }
}

/// The services and span names a filter of service/name equalities
/// allows, or `None` if it has another kind of condition.
fn scope_of(q: &Query, cat: &TagCatalog) -> Option<BTreeSet<String>> {
    let mut services: Option<String> = None;
    let mut name: Option<String> = None;
    for c in q.and_chain()? {
        let traceql::Value::Str(v) = &c.value else {
            return None;
        };
        if c.op != Op::Eq {
            return None;
        }
        let slot = match &c.field {
            Field::Attr(AttrScope::Resource | AttrScope::Any, k) if k == "service.name" => {
                &mut services
            }
            Field::Name => &mut name,
            _ => return None,
        };
        if slot.as_ref().is_some_and(|old| old != v) {
            return Some(BTreeSet::new()); // two different values: nothing
        }
        *slot = Some(v.clone());
    }
    Some(
        cat.services
            .iter()
            .filter(|(svc, names)| {
                services.as_ref().is_none_or(|s| s == *svc)
                    && name.as_ref().is_none_or(|n| names.values.contains_key(n))
            })
            .map(|(svc, _)| svc.clone())
            .collect(),
    )
}

/// Which answer a request needs from a filter.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Need {
    /// Span names or services: answerable for service/name scopes.
    NamesOrServices,
    Other,
}

/// The window of a request, in nanoseconds.
fn window(p: &Params) -> Result<(u64, u64)> {
    let (start, end) = (seconds(p, "start")?, seconds(p, "end")?);
    let span = DEFAULT_WINDOW_SECS * 1_000_000_000;
    let end = end.unwrap_or_else(crate::model::now_ns);
    let start = start.unwrap_or(end.saturating_sub(span));
    if start > end {
        return Err(Error::InvalidArgument(
            "parameter start: must not be after end".into(),
        ));
    }
    Ok((start, end))
}

async fn view_for(req: &HttpRequest, state: &QueryState, need: Need) -> Result<(Params, Sample)> {
    let p = Params::parse(req.query_string())?;
    let (from, to) = window(&p)?;
    // An autocomplete `q` is often unfinished: use it when it parses.
    let filter = p
        .get("q")
        .and_then(|q| traceql::parse(q).ok())
        .filter(|q| q.and_chain().is_none_or(|c| !c.is_empty()));
    let sampled = match p.get("strategy") {
        None | Some("catalog") => false,
        Some("sample") => true,
        Some(other) => return Err(bad("strategy", other, "catalog or sample")),
    };
    if !sampled {
        let cat = state.reader.tag_catalog(from, to).await?;
        match &filter {
            None => return Ok((p, view(&cat, None))),
            Some(f) if need == Need::NamesOrServices => {
                if let Some(svcs) = scope_of(f, &cat) {
                    return Ok((p, view(&cat, Some(&svcs))));
                }
            }
            Some(_) => {}
        }
    }
    let mut smp = sample(state.reader.as_ref(), Some(from), Some(to), filter.as_ref()).await?;
    smp.warnings.push(format!(
        "sampled from the newest {} traces matching the query",
        super::tags_sample::SAMPLE_TRACES
    ));
    Ok((p, smp))
}

fn with_warnings(mut v: Value, smp: &Sample) -> Value {
    if !smp.warnings.is_empty() {
        v["warnings"] = json!(smp.warnings);
    }
    v
}

/// `GET /api/search/tags`: attribute names of either scope.
pub async fn tags_v1(req: HttpRequest, state: web::Data<QueryState>) -> HttpResponse {
    reply(
        async {
            let (_, smp) = view_for(&req, &state, Need::Other).await?;
            let names: BTreeSet<&String> = smp.resource.keys().chain(smp.span.keys()).collect();
            Ok(with_warnings(json!({ "tagNames": names }), &smp))
        }
        .await,
    )
}

/// `GET /api/v2/search/tags?scope=`: names by scope, with intrinsics.
pub async fn tags_v2(req: HttpRequest, state: web::Data<QueryState>) -> HttpResponse {
    reply(
        async {
            let p = Params::parse(req.query_string())?;
            let scope = p.get("scope").unwrap_or("all");
            if !matches!(scope, "all" | "resource" | "span" | "intrinsic") {
                return Err(bad("scope", scope, "resource, span, intrinsic or all"));
            }
            let (_, smp) = view_for(&req, &state, Need::Other).await?;
            let all = [
                ("resource", smp.resource.keys().cloned().collect::<Vec<_>>()),
                ("span", smp.span.keys().cloned().collect()),
                (
                    "intrinsic",
                    INTRINSICS.iter().map(|s| s.to_string()).collect(),
                ),
            ];
            let scopes: Vec<Value> = all
                .into_iter()
                .filter(|(n, _)| scope == "all" || scope == *n)
                .map(|(n, tags)| json!({ "name": n, "tags": tags }))
                .collect();
            Ok(with_warnings(json!({ "scopes": scopes }), &smp))
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
            let (_, smp) = view_for(&req, &state, Need::Other).await?;
            let tag = path.as_str();
            let mut values: BTreeSet<&str> = smp
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
            Ok(with_warnings(json!({ "tagValues": values }), &smp))
        }
        .await,
    )
}

fn keywords(v: &[&str]) -> Vec<Typed> {
    v.iter()
        .map(|s| Typed {
            ty: "keyword",
            value: s.to_string(),
        })
        .collect()
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
            let mut warnings = Vec::new();
            let values: Vec<Typed> = match &field {
                Field::Status => keywords(&["error", "ok", "unset"]),
                Field::Kind => keywords(&[
                    "unspecified",
                    "internal",
                    "server",
                    "client",
                    "producer",
                    "consumer",
                ]),
                Field::Duration | Field::TraceDuration | Field::StatusMessage => Vec::new(),
                f => {
                    let need = match f {
                        Field::Name => Need::NamesOrServices,
                        Field::Attr(AttrScope::Resource | AttrScope::Any, k)
                            if k == "service.name" =>
                        {
                            Need::NamesOrServices
                        }
                        _ => Need::Other,
                    };
                    let (_, mut smp) = view_for(&req, &state, need).await?;
                    warnings = std::mem::take(&mut smp.warnings);
                    let set: BTreeSet<Typed> = match f {
                        Field::Name => smp.names,
                        Field::RootServiceName => smp.root_services,
                        Field::RootName => smp.root_names,
                        Field::Attr(AttrScope::Resource, k) => {
                            smp.resource.remove(k).unwrap_or_default()
                        }
                        Field::Attr(AttrScope::Span, k) => smp.span.remove(k).unwrap_or_default(),
                        Field::Attr(AttrScope::Any, k) => smp
                            .resource
                            .remove(k)
                            .into_iter()
                            .chain(smp.span.remove(k))
                            .flatten()
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
            let mut v = json!({ "tagValues": out });
            if !warnings.is_empty() {
                v["warnings"] = json!(warnings);
            }
            Ok(v)
        }
        .await,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::catalog::TY_INT;

    fn catalog() -> TagCatalog {
        let mut c = TagCatalog::default();
        c.add_operation("front", "GET /");
        c.add_operation("back", "query");
        c.add_operation("back", "GET /");
        let code = c.span.entry("code".into()).or_default();
        code.add("200", TY_INT | TY_STRING, 10);
        code.incomplete = true;
        c
    }

    #[test]
    fn view_lists_services_and_types_and_warns() {
        let v = view(&catalog(), None);
        let svcs: Vec<&str> = v.resource["service.name"]
            .iter()
            .map(|t| t.value.as_str())
            .collect();
        assert_eq!(svcs, ["back", "front"]);
        assert_eq!(v.span["code"].len(), 2, "one entry per type");
        assert_eq!(v.names.len(), 2);
        assert_eq!(v.warnings, ["values of span.code are incomplete"]);
    }

    #[test]
    fn service_and_name_equalities_scope_from_the_catalog() {
        let c = catalog();
        let q = traceql::parse(r#"{ resource.service.name = "back" }"#).unwrap();
        let s = scope_of(&q, &c).unwrap();
        let names: Vec<String> = view(&c, Some(&s))
            .names
            .into_iter()
            .map(|t| t.value)
            .collect();
        assert_eq!(names, ["GET /", "query"]);
        let q = traceql::parse(r#"{ name = "query" }"#).unwrap();
        assert_eq!(
            scope_of(&q, &c).unwrap().into_iter().collect::<Vec<_>>(),
            ["back"]
        );
        let q = traceql::parse(r#"{ span.code = 200 }"#).unwrap();
        assert!(
            scope_of(&q, &c).is_none(),
            "other filters take the sampling path"
        );
    }
}
