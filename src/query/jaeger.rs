//! Jaeger v1 API (what the Jaeger UI calls) and its trace JSON.
//!
//! OTLP concepts without a Jaeger field become tags the way the OTel
//! Collector's Jaeger translator writes them: `span.kind`,
//! `otel.status_code` / `otel.status_description`, `error=true`,
//! `otel.scope.name` / `otel.scope.version`, `w3c.tracestate`; the parent
//! becomes a CHILD_OF reference and links FOLLOWS_FROM references.

use std::collections::BTreeSet;
use std::sync::Arc;

use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::{json, Value};

use super::params::{bad, Params};
use super::{clamp_limit, load_trace, load_traces, skew, QueryState};
use crate::error::{Error, Result};
use crate::model::{
    now_ns, AttrValue, KeyValue, Resource, SearchQuery, Span, SpanKind, StatusCode, TraceId,
};

/// How far back a search looks when the request gives no `start` (nor
/// `lookback`): Jaeger's default.
pub const DEFAULT_LOOKBACK_NS: u64 = 3_600_000_000_000;

/// Jaeger's response envelope.
pub fn envelope(data: Value, total: usize, errors: Value) -> HttpResponse {
    HttpResponse::Ok()
        .json(json!({ "data": data, "total": total, "limit": 0, "offset": 0, "errors": errors }))
}

pub fn parse_trace_id(key: &str, raw: &str) -> Result<TraceId> {
    TraceId::from_hex(raw)
        .filter(|t| !t.is_zero())
        .ok_or_else(|| bad(key, raw, "a trace id (1 to 32 hex digits, not all zero)"))
}

/// One Jaeger tag.
pub fn tag(key: &str, v: &AttrValue) -> Value {
    let (ty, value) = match v {
        AttrValue::Str(s) => ("string", Value::from(s.as_str())),
        AttrValue::Bool(b) => ("bool", Value::from(*b)),
        AttrValue::Int(i) => ("int64", Value::from(*i)),
        AttrValue::Double(d) if d.is_finite() => ("float64", Value::from(*d)),
        AttrValue::Bytes(_) => ("binary", Value::from(v.as_text())),
        // NaN/Inf have no JSON number; arrays and maps become JSON text.
        _ => ("string", Value::from(v.as_text())),
    };
    json!({ "key": key, "type": ty, "value": value })
}

fn tags(kvs: &[KeyValue]) -> Vec<Value> {
    kvs.iter().map(|kv| tag(&kv.key, &kv.value)).collect()
}

fn span_tags(s: &Span) -> Vec<Value> {
    let mut out = tags(&s.attributes);
    let has = |k: &str| s.attributes.iter().any(|kv| kv.key == k);
    let mut add = |k: &str, v: AttrValue| {
        if !has(k) {
            out.push(tag(k, &v));
        }
    };
    if s.kind != SpanKind::Unspecified {
        add("span.kind", AttrValue::Str(s.kind.as_str().into()));
    }
    match s.status.code {
        StatusCode::Unset => {}
        StatusCode::Ok => add("otel.status_code", AttrValue::Str("OK".into())),
        StatusCode::Error => {
            add("otel.status_code", AttrValue::Str("ERROR".into()));
            add("error", AttrValue::Bool(true));
        }
    }
    if !s.status.message.is_empty() {
        add(
            "otel.status_description",
            AttrValue::Str(s.status.message.clone()),
        );
    }
    if !s.scope.name.is_empty() {
        add("otel.scope.name", AttrValue::Str(s.scope.name.clone()));
    }
    if !s.scope.version.is_empty() {
        add(
            "otel.scope.version",
            AttrValue::Str(s.scope.version.clone()),
        );
    }
    if !s.trace_state.is_empty() {
        add("w3c.tracestate", AttrValue::Str(s.trace_state.clone()));
    }
    out
}

/// Renders one trace. `warnings[i]` belongs to `spans[i]` (may be shorter).
pub fn render_trace(id: TraceId, spans: &[Span], warnings: &[Vec<String>]) -> Value {
    // Processes: one per distinct resource, numbered in first-seen order.
    let mut processes: Vec<Arc<Resource>> = Vec::new();
    let mut rendered = Vec::with_capacity(spans.len());
    for (i, s) in spans.iter().enumerate() {
        let pi = match processes
            .iter()
            .position(|r| Arc::ptr_eq(r, &s.resource) || **r == *s.resource)
        {
            Some(p) => p,
            None => {
                processes.push(s.resource.clone());
                processes.len() - 1
            }
        };
        let mut refs = Vec::new();
        if let Some(p) = s.parent_span_id {
            refs.push(json!({ "refType": "CHILD_OF", "traceID": s.trace_id.to_hex(), "spanID": p.to_hex() }));
        }
        for l in &s.links {
            refs.push(json!({ "refType": "FOLLOWS_FROM", "traceID": l.trace_id.to_hex(), "spanID": l.span_id.to_hex() }));
        }
        let logs: Vec<Value> = s
            .events
            .iter()
            .map(|e| {
                let mut fields = vec![tag("event", &AttrValue::Str(e.name.clone()))];
                fields.extend(tags(&e.attributes));
                json!({ "timestamp": e.time_ns / 1000, "fields": fields })
            })
            .collect();
        let w = warnings.get(i).filter(|w| !w.is_empty());
        rendered.push(json!({
            "traceID": s.trace_id.to_hex(),
            "spanID": s.span_id.to_hex(),
            "operationName": s.name,
            "references": refs,
            "flags": s.flags & 0xff,
            "startTime": s.start_ns / 1000,
            "duration": s.duration_ns() / 1000,
            "tags": span_tags(s),
            "logs": logs,
            "processID": format!("p{}", pi + 1),
            "warnings": w,
        }));
    }
    let procs: serde_json::Map<String, Value> = processes
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let rest: Vec<KeyValue> = r
                .attributes
                .iter()
                .filter(|kv| kv.key != "service.name")
                .cloned()
                .collect();
            (
                format!("p{}", i + 1),
                json!({ "serviceName": r.service_name(), "tags": tags(&rest) }),
            )
        })
        .collect();
    json!({ "traceID": id.to_hex(), "spans": rendered, "processes": procs, "warnings": null })
}

/// Renders a trace after clock-skew adjustment (unless `raw`).
pub fn render_adjusted(id: TraceId, mut spans: Vec<Span>, raw: bool) -> Value {
    if raw {
        return render_trace(id, &spans, &[]);
    }
    let deltas = skew::adjust(&mut spans);
    let warnings: Vec<Vec<String>> = deltas
        .iter()
        .map(|&d| {
            if d == 0 {
                Vec::new()
            } else {
                vec![skew::warning(d)]
            }
        })
        .collect();
    render_trace(id, &spans, &warnings)
}

fn wants_protobuf(req: &HttpRequest) -> bool {
    req.headers()
        .get_all(actix_web::http::header::ACCEPT)
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains("application/protobuf") || v.contains("application/x-protobuf"))
}

/// `GET /api/traces/{traceID}`; Tempo's protobuf format when asked for.
pub async fn get_trace(
    req: HttpRequest,
    path: web::Path<String>,
    state: web::Data<QueryState>,
) -> Result<HttpResponse> {
    if wants_protobuf(&req) {
        return Ok(super::tempo::get_trace_v1_protobuf(&path, &state).await);
    }
    let id = parse_trace_id("traceID", &path)?;
    let raw = Params::parse(req.query_string())?.bool("raw")?;
    let spans = load_trace(state.reader.as_ref(), id).await?;
    if spans.is_empty() {
        return Err(Error::NotFound(format!("trace {id}")));
    }
    Ok(envelope(
        json!([render_adjusted(id, spans, raw)]),
        1,
        Value::Null,
    ))
}

/// The Jaeger search parameters as a [`SearchQuery`].
pub fn search_query(p: &Params, cfg: &crate::config::QueryConfig) -> Result<SearchQuery> {
    let mut q = SearchQuery {
        service: p.get("service").map(str::to_string),
        operation: p.get("operation").map(str::to_string),
        limit: clamp_limit(cfg, p.u64("limit")?),
        min_duration_ns: p.duration_ns("minDuration")?,
        max_duration_ns: p.duration_ns("maxDuration")?,
        ..Default::default()
    };
    if let Some(k) = p.get("spanKind") {
        q.span_kind = Some(SpanKind::parse(k).ok_or_else(|| bad("spanKind", k, "a span kind"))?);
    }
    if let Some(raw) = p.get("tags") {
        let map: serde_json::Map<String, Value> = serde_json::from_str(raw)
            .map_err(|_| bad("tags", raw, "a JSON object of tag to value"))?;
        for (k, v) in map {
            let v = match v {
                Value::String(s) => s,
                Value::Number(n) => n.to_string(),
                Value::Bool(b) => b.to_string(),
                _ => return Err(bad("tags", raw, "a JSON object of tag to string value")),
            };
            q.tags.push((k, v));
        }
    }
    for t in p.all("tag") {
        let (k, v) = t
            .split_once(':')
            .filter(|(k, _)| !k.is_empty())
            .ok_or_else(|| bad("tag", t, "key:value"))?;
        q.tags.push((k.to_string(), v.to_string()));
    }
    if let (Some(min), Some(max)) = (q.min_duration_ns, q.max_duration_ns) {
        if min > max {
            return Err(Error::InvalidArgument(
                "parameter minDuration: must not exceed maxDuration".into(),
            ));
        }
    }
    let us_to_ns = |key: &str| -> Result<Option<u64>> {
        p.u64(key)?
            .map(|us| {
                us.checked_mul(1000)
                    .ok_or_else(|| bad(key, p.get(key).unwrap_or(""), "a time in microseconds"))
            })
            .transpose()
    };
    let end = us_to_ns("end")?.unwrap_or_else(now_ns);
    let start = match us_to_ns("start")? {
        Some(s) => s,
        None => {
            let lookback = match p.get("lookback") {
                None | Some("custom") => DEFAULT_LOOKBACK_NS,
                Some(_) => p.duration_ns("lookback")?.unwrap_or(DEFAULT_LOOKBACK_NS),
            };
            end.saturating_sub(lookback)
        }
    };
    if start > end {
        return Err(Error::InvalidArgument(
            "parameter start: must not be after end".into(),
        ));
    }
    q.start_ns = Some(start);
    q.end_ns = Some(end);
    Ok(q)
}

/// `GET /api/traces`: search, or multi-fetch with repeated `traceID`.
pub async fn find_traces(req: HttpRequest, state: web::Data<QueryState>) -> Result<HttpResponse> {
    let p = Params::parse(req.query_string())?;
    let raw = p.bool("raw")?;
    let reader = state.reader.as_ref();
    let asked = p.all("traceID");
    if !asked.is_empty() {
        let ids = asked
            .iter()
            .map(|s| parse_trace_id("traceID", s))
            .collect::<Result<Vec<_>>>()?;
        let mut data = Vec::new();
        let mut errors = Vec::new();
        let mut seen = BTreeSet::new();
        for id in ids.into_iter().filter(|id| seen.insert(*id)) {
            let spans = load_trace(reader, id).await?;
            if spans.is_empty() {
                errors
                    .push(json!({ "code": 404, "msg": "trace not found", "traceID": id.to_hex() }));
            } else {
                data.push(render_adjusted(id, spans, raw));
            }
        }
        let total = data.len();
        let errors = if errors.is_empty() {
            Value::Null
        } else {
            Value::Array(errors)
        };
        return Ok(envelope(Value::Array(data), total, errors));
    }
    let q = search_query(&p, &state.cfg)?;
    let hits = reader.search(&q).await?;
    let ids: Vec<TraceId> = hits.iter().map(|h| h.trace_id).collect();
    let data: Vec<Value> = load_traces(reader, &ids)
        .await?
        .into_iter()
        .map(|(id, spans)| render_adjusted(id, spans, raw))
        .collect();
    let total = data.len();
    Ok(envelope(Value::Array(data), total, Value::Null))
}

pub async fn services(state: web::Data<QueryState>) -> Result<HttpResponse> {
    let mut s = state.reader.services().await?;
    s.sort();
    s.dedup();
    let total = s.len();
    Ok(envelope(json!(s), total, Value::Null))
}

/// `GET /api/services/{service}/operations`: operation names.
pub async fn service_operations(
    path: web::Path<String>,
    state: web::Data<QueryState>,
) -> Result<HttpResponse> {
    let ops = state.reader.operations(Some(path.as_str())).await?;
    let names: BTreeSet<String> = ops.into_iter().map(|o| o.name).collect();
    let total = names.len();
    Ok(envelope(json!(names), total, Value::Null))
}

/// Jaeger spells an unspecified kind as "".
pub fn kind_name(k: SpanKind) -> &'static str {
    if k == SpanKind::Unspecified {
        ""
    } else {
        k.as_str()
    }
}

/// `GET /api/operations?service=&spanKind=`.
pub async fn operations(req: HttpRequest, state: web::Data<QueryState>) -> Result<HttpResponse> {
    let p = Params::parse(req.query_string())?;
    let service = p
        .get("service")
        .ok_or_else(|| Error::InvalidArgument("parameter service is required".into()))?;
    let kind = p
        .get("spanKind")
        .map(|k| SpanKind::parse(k).ok_or_else(|| bad("spanKind", k, "a span kind")))
        .transpose()?;
    let ops = state.reader.operations(Some(service)).await?;
    let data: Vec<Value> = ops
        .into_iter()
        .filter(|o| kind.is_none_or(|k| o.kind == k))
        .collect::<BTreeSet<_>>()
        .into_iter()
        .map(|o| json!({ "name": o.name, "spanKind": kind_name(o.kind) }))
        .collect();
    let total = data.len();
    Ok(envelope(Value::Array(data), total, Value::Null))
}

#[cfg(test)]
mod tests {
    use super::super::testutil::span;
    use super::*;
    use crate::model::{Event, Link, SpanId};

    #[test]
    fn trace_json_maps_otlp_fields_to_jaeger_tags_and_references() {
        let mut root = span(1, 1, None, "front", "GET /", 1_000_000, 5_000_000);
        root.kind = SpanKind::Server;
        root.status = crate::model::Status {
            code: StatusCode::Error,
            message: "boom".into(),
        };
        root.attributes = vec![
            KeyValue::new("http.status_code", AttrValue::Int(500)),
            KeyValue::new("ratio", AttrValue::Double(0.5)),
        ];
        root.events = vec![Event {
            time_ns: 2_000_000,
            name: "retry".into(),
            ..Default::default()
        }];
        root.links = vec![Link {
            trace_id: TraceId([9; 16]),
            span_id: SpanId([8; 8]),
            ..Default::default()
        }];
        let child = span(1, 2, Some(1), "back", "query", 2_000_000, 1_000_000);
        let v = render_trace(
            TraceId([1; 16]),
            &[root, child],
            &[vec![], vec!["w".into()]],
        );
        assert_eq!(v["traceID"], "01".repeat(16));
        let s0 = &v["spans"][0];
        assert_eq!(s0["spanID"], "0000000000000001");
        assert_eq!(s0["startTime"], 1000);
        assert_eq!(s0["duration"], 5000);
        assert_eq!(s0["warnings"], Value::Null);
        let tag_of = |k: &str| {
            s0["tags"]
                .as_array()
                .unwrap()
                .iter()
                .find(|t| t["key"] == k)
                .cloned()
                .unwrap()
        };
        assert_eq!(
            tag_of("http.status_code"),
            json!({"key": "http.status_code", "type": "int64", "value": 500})
        );
        assert_eq!(tag_of("ratio")["type"], "float64");
        assert_eq!(tag_of("span.kind")["value"], "server");
        assert_eq!(tag_of("otel.status_code")["value"], "ERROR");
        assert_eq!(tag_of("otel.status_description")["value"], "boom");
        assert_eq!(
            tag_of("error"),
            json!({"key": "error", "type": "bool", "value": true})
        );
        assert_eq!(tag_of("otel.scope.name")["value"], "lib");
        assert_eq!(s0["references"][0]["refType"], "FOLLOWS_FROM");
        assert_eq!(s0["logs"][0]["timestamp"], 2000);
        assert_eq!(
            s0["logs"][0]["fields"][0],
            json!({"key": "event", "type": "string", "value": "retry"})
        );
        let s1 = &v["spans"][1];
        assert_eq!(
            s1["references"][0],
            json!({"refType": "CHILD_OF", "traceID": "01".repeat(16), "spanID": "0000000000000001"})
        );
        assert_eq!(s1["warnings"], json!(["w"]));
        assert_eq!(s1["processID"], "p2");
        assert_eq!(v["processes"]["p1"]["serviceName"], "front");
        assert_eq!(v["processes"]["p2"]["serviceName"], "back");
    }

    #[test]
    fn adjusted_rendering_warns_on_shifted_spans() {
        let spans = vec![
            span(1, 1, None, "a", "root", 1_000_000, 1_000_000),
            span(1, 2, Some(1), "b", "c", 0, 200_000),
        ];
        let v = render_adjusted(TraceId([1; 16]), spans.clone(), false);
        assert_eq!(v["spans"][1]["startTime"], 1400);
        assert!(v["spans"][1]["warnings"][0]
            .as_str()
            .unwrap()
            .contains("+1400µs"));
        let raw = render_adjusted(TraceId([1; 16]), spans, true);
        assert_eq!(raw["spans"][1]["startTime"], 0);
    }

    #[test]
    fn search_params_are_validated_by_name() {
        let cfg = crate::config::QueryConfig::default();
        let q = |s: &str| search_query(&Params::parse(s).unwrap(), &cfg);
        let ok = q("service=a&tags=%7B%22k%22%3A%22v%22%7D&tag=x:y&minDuration=1ms&start=10&end=20&limit=5").unwrap();
        assert_eq!(
            ok.tags,
            vec![("k".into(), "v".into()), ("x".into(), "y".into())]
        );
        assert_eq!(
            (ok.start_ns, ok.end_ns, ok.limit, ok.min_duration_ns),
            (Some(10_000), Some(20_000), 5, Some(1_000_000))
        );
        for (query, param) in [
            ("minDuration=abc", "minDuration"),
            ("tags=notjson", "tags"),
            ("tag=novalue", "tag"),
            ("limit=-1", "limit"),
            ("start=30&end=20", "start"),
            ("minDuration=2s&maxDuration=1s", "minDuration"),
            ("lookback=forever", "lookback"),
        ] {
            let e = q(query).unwrap_err().to_string();
            assert!(e.contains(param), "{query}: {e}");
        }
        assert_eq!(q("limit=999999").unwrap().limit, cfg.max_limit);
    }
}
