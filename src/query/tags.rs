//! Tag names and values for Tempo's autocomplete endpoints, answered from
//! the tiers' tag catalogs (`SpanReader::tag_catalog`): every service,
//! span name and attribute key of the window, not a sample. Bounds and
//! their cut-offs are in `model::catalog`; an answer whose values were cut
//! for a key says so in a `warnings` field.
//!
//! The window is `start`/`end` (unix seconds); without them, the last
//! [`DEFAULT_WINDOW_SECS`]. A `q=` TraceQL filter: `{}` (or one that does
//! not parse yet, as autocomplete sends) is no filter; an `&&` chain of
//! `resource.service.name` and `name` conditions (`=`, `=~`) is answered
//! from the catalog (`super::tags_scope`): span names and services from
//! the services' span names, tag names and attribute values from the
//! services' own dictionaries, when every source of the window kept them
//! (`TagCatalog::per_service_complete`). Root services and names under a
//! filter, any other filter, and a window some source of which kept no
//! per-service data (Elasticsearch, format-1 segments) fall back to the
//! sampling path in `super::tags_sample` (the newest traces matching the
//! filter), which says so in a warning.

use std::collections::BTreeSet;

use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::{json, Value};

use super::params::{bad, Params};
use super::tags_sample::{sample, Sample, Values};
use super::tags_scope::{scope_of, scoped_attrs, Scope};
use super::tempo::{reply, seconds};
use super::traceql::{self, AttrScope, Field};
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

/// The catalog in the shape the handlers render. With a scope, only its
/// services, their span names and their own keys and values are kept.
fn view(cat: &TagCatalog, scope: Option<&Scope>) -> Sample {
    let mut warnings = Vec::new();
    let scoped = scope.map(|s| scoped_attrs(cat, s));
    let (resource, span, keys_cut) = match &scoped {
        Some(a) => (&a.resource, &a.span, a.keys_incomplete),
        None => (&cat.resource, &cat.span, cat.keys_incomplete),
    };
    let mut resource = values_of(resource, "resource", &mut warnings);
    let span = values_of(span, "span", &mut warnings);
    let mut names = KeyValues::default();
    let mut svcs = KeyValues::default();
    for (svc, n) in &cat.services {
        if scope.is_some_and(|s| !s.services.contains(svc)) {
            continue;
        }
        svcs.add(svc, TY_STRING, usize::MAX);
        names.merge(n, usize::MAX);
    }
    if names.incomplete {
        warnings.push("values of name are incomplete".into());
    }
    if keys_cut {
        warnings.push("some attribute keys are not listed (catalog bound)".into());
    }
    if scope.is_some_and(|s| s.by_name) {
        warnings.push(
            "attributes are those of the services in scope: the name condition narrows \
             services only"
                .into(),
        );
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

/// Which answer a request needs from a filter.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Need {
    /// Span names or services: answerable for any service/name scope.
    NamesOrServices,
    /// Tag names or attribute values: answerable for a service/name
    /// scope when the catalog has per-service data for the window.
    Attrs,
    /// Root services and names: not kept per service.
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
    let mut why = None;
    if !sampled {
        let cat = state.reader.tag_catalog(from, to).await?;
        let Some(f) = &filter else {
            return Ok((p, view(&cat, None)));
        };
        if let (Some(scope), true) = (scope_of(f, &cat), need != Need::Other) {
            if need == Need::NamesOrServices || cat.per_service_complete() {
                return Ok((p, view(&cat, Some(&scope))));
            }
            why = Some(
                "the catalog lacks per-service attributes for part of the window \
                 (Elasticsearch or older segments)",
            );
        }
    }
    let mut smp = sample(state.reader.as_ref(), Some(from), Some(to), filter.as_ref()).await?;
    smp.warnings.extend(why.map(String::from));
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
            let (_, smp) = view_for(&req, &state, Need::Attrs).await?;
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
            let (_, smp) = view_for(&req, &state, Need::Attrs).await?;
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
            let (_, smp) = view_for(&req, &state, Need::Attrs).await?;
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
                        Field::RootServiceName | Field::RootName => Need::Other,
                        _ => Need::Attrs,
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
    fn a_scoped_view_lists_the_services_own_keys() {
        let mut c = catalog();
        let back = c.by_service.own_mut().entry("back".into()).or_default();
        back.span
            .entry("db".into())
            .or_default()
            .add("pg", TY_STRING, 10);
        let q = traceql::parse(r#"{ resource.service.name = "back" }"#).unwrap();
        let s = scope_of(&q, &c).unwrap();
        let v = view(&c, Some(&s));
        let names: Vec<String> = v.names.into_iter().map(|t| t.value).collect();
        assert_eq!(names, ["GET /", "query"]);
        assert_eq!(
            v.span.keys().collect::<Vec<_>>(),
            ["db"],
            "not the window's code"
        );
        assert!(v.warnings.is_empty(), "{:?}", v.warnings);
        let q = traceql::parse(r#"{ resource.service.name = "back" && name = "query" }"#).unwrap();
        let v = view(&c, scope_of(&q, &c).as_ref());
        assert_eq!(v.span.keys().collect::<Vec<_>>(), ["db"]);
        assert_eq!(
            v.warnings.len(),
            1,
            "the name condition's caveat: {:?}",
            v.warnings
        );
    }
}
