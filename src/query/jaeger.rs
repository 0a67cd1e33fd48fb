//! Jaeger v1 API (what the Jaeger UI calls): trace by id, search,
//! services and operations. The trace JSON itself is `jaeger_json`.

use std::collections::BTreeSet;

use actix_web::{web, HttpRequest, HttpResponse};
use serde::Serialize;
use serde_json::{json, Value};

use super::jaeger_json::render_adjusted;
use super::params::{bad, parse_trace_id, Params};
use super::{clamp_limit, load_trace, load_traces, QueryState};
use crate::error::{Error, Result};
use crate::model::{now_ns, SearchQuery, SpanKind, TraceId};

/// How far back a search looks when the request gives no `start` (nor
/// `lookback`): Jaeger's default.
pub const DEFAULT_LOOKBACK_NS: u64 = 3_600_000_000_000;

/// Jaeger's response envelope.
pub fn envelope<T: Serialize>(data: T, total: usize, errors: Value) -> HttpResponse {
    #[derive(Serialize)]
    struct Envelope<T> {
        data: T,
        total: usize,
        limit: usize,
        offset: usize,
        errors: Value,
    }
    HttpResponse::Ok().json(Envelope {
        data,
        total,
        limit: 0,
        offset: 0,
        errors,
    })
}

/// `GET /api/traces/{traceID}` as Jaeger JSON (`query::trace_v1` sends
/// Tempo's protobuf requests elsewhere).
pub async fn get_trace(
    req: HttpRequest,
    path: web::Path<String>,
    state: web::Data<QueryState>,
) -> Result<HttpResponse> {
    let id = parse_trace_id("traceID", &path)?;
    let raw = Params::parse(req.query_string())?.bool("raw")?;
    let spans = load_trace(state.reader.as_ref(), id).await?;
    if spans.is_empty() {
        return Err(Error::NotFound(format!("trace {id}")));
    }
    Ok(envelope([render_adjusted(id, spans, raw)], 1, Value::Null))
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
        return Ok(envelope(data, total, errors));
    }
    let q = search_query(&p, &state.cfg)?;
    let hits = reader.search(&q).await?;
    let ids: Vec<TraceId> = hits.iter().map(|h| h.trace_id).collect();
    let data: Vec<_> = load_traces(reader, &ids)
        .await?
        .into_iter()
        .map(|(id, spans)| render_adjusted(id, spans, raw))
        .collect();
    let total = data.len();
    Ok(envelope(data, total, Value::Null))
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
    use super::*;

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
