//! Jaeger api_v3 in-process, as the Jaeger UI calls it: trace by id,
//! services, operations, search and trace summaries in both parameter
//! spellings, GET and POST, every filter applied (table-driven from
//! tests/fixtures/apiv3/search-cases.json over the conformance fixtures),
//! answers checked against shapes written from Jaeger's own definitions
//! (tests/fixtures/apiv3/shapes.json), and the OTLP upload transform.

mod common;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use actix_web::http::StatusCode as Http;
use serde_json::{json, Value};

use common::http::enc;
use common::query::*;
use common::shape::{assert_fits, fits};
use common::store::memory_with;
use strand::model::{Span, SpanKind, TraceId};

const SHAPES: &str = "apiv3/shapes.json";

#[actix_web::test]
async fn trace_by_id_services_and_operations() {
    let app = app!();
    let r = get!(&app, &format!("/api/v3/traces/{T1_HEX}"));
    assert_eq!(r.status, Http::OK);
    let v = r.json();
    let spans = otlp_spans(&v["result"]);
    assert_eq!(spans.len(), 3);
    spans.iter().for_each(|s| assert_otlp_span_shape(s));
    let charge = spans.iter().find(|s| s["name"] == "charge").unwrap();
    assert_eq!(charge["kind"], 2);
    assert_eq!(
        charge["status"],
        json!({"code": 2, "message": "card declined"})
    );
    assert_eq!(charge["parentSpanId"], "0000000000000002");
    let groups = v["result"]["resourceSpans"].as_array().unwrap();
    assert_eq!(groups.len(), 2, "one resourceSpans per service");
    // Skew adjustment moves the early payment span; raw_traces keeps it.
    let start_of = |v: &Value, name: &str| -> u64 {
        otlp_spans(&v["result"])
            .iter()
            .find(|s| s["name"] == name)
            .unwrap()["startTimeUnixNano"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap()
    };
    let raw = get!(&app, &format!("/api/v3/traces/{T1_HEX}?raw_traces=true")).json();
    assert!(start_of(&raw, "charge") < start_of(&v, "charge"));
    for r in [
        get!(&app, &format!("/api/v3/traces/{}", "ab".repeat(16))),
        get!(&app, "/api/v3/traces/xyz"),
    ] {
        assert_fits(&r.json(), &common::shape::load(SHAPES, "error"));
    }
    assert_v3_error(&get!(&app, "/api/v3/traces/xyz"), 400, "trace_id");

    let v = get!(&app, "/api/v3/services").json();
    assert_fits(&v, &common::shape::load(SHAPES, "services"));
    assert_eq!(v, json!({"services": ["frontend", "inventory", "payment"]}));
    let v = get!(&app, "/api/v3/operations?service=frontend&span_kind=client").json();
    assert_fits(&v, &common::shape::load(SHAPES, "operations"));
    assert_eq!(
        v,
        json!({"operations": [{"name": "call payment", "spanKind": "client"}]})
    );
    assert_v3_error(
        &get!(&app, "/api/v3/operations?span_kind=up"),
        400,
        "span_kind",
    );
}

#[actix_web::test]
async fn an_unspecified_span_kind_is_reported_as_internal() {
    let mut spans = spans();
    let mut s = spans[0].clone();
    s.span_id = strand::model::SpanId([0x77; 8]);
    s.name = "tick".into();
    s.kind = SpanKind::Unspecified;
    let mut i = s.clone();
    i.span_id = strand::model::SpanId([0x78; 8]);
    i.kind = SpanKind::Internal;
    spans.extend([s, i]);
    let app = app_over!(state_over(Arc::new(memory_with(spans).await), true));
    let all = get!(&app, "/api/v3/operations?service=frontend").json();
    assert_fits(&all, &common::shape::load(SHAPES, "operations"));
    let kinds: Vec<&Value> = all["operations"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|o| o["name"] == "tick")
        .map(|o| &o["spanKind"])
        .collect();
    assert_eq!(kinds, vec!["internal"], "one entry, never an empty kind");
    let internal = get!(
        &app,
        "/api/v3/operations?service=frontend&span_kind=internal"
    )
    .json();
    assert_eq!(
        internal,
        json!({"operations": [{"name": "tick", "spanKind": "internal"}]})
    );
}

/// The fixtures, rebased so the earliest span starts an hour ago, with the
/// file each trace came from.
fn fixture_store() -> (Vec<Span>, HashMap<TraceId, String>, u64) {
    let per_file: Vec<(String, Vec<Span>)> = common::fixtures::FILES
        .iter()
        .map(|f| {
            (
                f.trim_end_matches(".json").to_string(),
                common::fixtures::load(f),
            )
        })
        .collect();
    let min = per_file
        .iter()
        .flat_map(|(_, s)| s.iter().map(|s| s.start_ns))
        .min()
        .unwrap();
    let t0 = strand::model::now_ns() - 3_600_000 * MS;
    let (mut all, mut names) = (Vec::new(), HashMap::new());
    for (name, spans) in per_file {
        for mut s in spans {
            s.start_ns = s.start_ns - min + t0;
            s.end_ns = s.end_ns - min + t0;
            names.insert(s.trace_id, name.clone());
            all.push(s);
        }
    }
    (all, names, t0)
}

fn rfc3339(ns: u64) -> String {
    chrono::DateTime::from_timestamp_nanos(ns as i64)
        .to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
}

fn go_ns(d: &str) -> u64 {
    strand::query::params::go_duration_ns(d).unwrap()
}

/// The reference answer, by this test's own reading of the api_v3
/// contract: a trace matches when one of its spans meets every field;
/// `search_depth` keeps the traces with the newest matching spans.
fn expected(spans: &[Span], q: &serde_json::Map<String, Value>, t0: u64) -> BTreeSet<TraceId> {
    let text = |s: &Span, key: &str| -> Option<String> {
        s.attributes
            .iter()
            .chain(s.resource.attributes.iter())
            .find(|kv| kv.key == key)
            .map(|kv| kv.value.as_text())
    };
    let ms = |k: &str| q.get(k).map(|v| t0 + v.as_u64().unwrap() * MS);
    let dur = |k: &str| q.get(k).map(|v| go_ns(v.as_str().unwrap()));
    let (from, to) = (ms("start_time_min"), ms("start_time_max"));
    let (dmin, dmax) = (dur("duration_min"), dur("duration_max"));
    let mut newest: BTreeMap<TraceId, u64> = BTreeMap::new();
    for s in spans {
        let ok = q.get("service_name").is_none_or(|v| v == s.service_name())
            && q.get("operation_name").is_none_or(|v| v == &s.name)
            && q.get("attributes").is_none_or(|a| {
                a.as_object()
                    .unwrap()
                    .iter()
                    .all(|(k, v)| text(s, k).as_deref() == v.as_str())
            })
            && from.is_none_or(|f| s.start_ns >= f)
            && to.is_none_or(|t| s.start_ns < t)
            && dmin.is_none_or(|d| s.duration_ns() >= d)
            && dmax.is_none_or(|d| s.duration_ns() <= d);
        if ok {
            let e = newest.entry(s.trace_id).or_default();
            *e = (*e).max(s.start_ns);
        }
    }
    let mut hits: Vec<(u64, TraceId)> = newest.into_iter().map(|(t, n)| (n, t)).collect();
    hits.sort_by(|a, b| b.cmp(a));
    let depth = q
        .get("search_depth")
        .map_or(usize::MAX, |d| d.as_u64().unwrap() as usize);
    hits.into_iter().take(depth).map(|(_, t)| t).collect()
}

fn camel(snake: &str) -> String {
    let mut out = String::new();
    let mut up = false;
    for c in snake.chars() {
        if c == '_' {
            up = true;
        } else if up {
            out.extend(c.to_uppercase());
            up = false;
        } else {
            out.push(c);
        }
    }
    out
}

/// A case's fields as api_v3 text values (times RFC 3339, attributes JSON),
/// under proto or JSON names. Without a start, the window opens at T so
/// the default one-hour lookback does not cut the fixtures.
fn fields(q: &serde_json::Map<String, Value>, t0: u64, use_camel: bool) -> Vec<(String, Value)> {
    let mut q = q.clone();
    q.entry("start_time_min").or_insert(json!(0));
    q.entry("start_time_max").or_insert(json!(600_000));
    q.into_iter()
        .map(|(k, v)| {
            let v = match k.as_str() {
                "start_time_min" | "start_time_max" => {
                    json!(rfc3339(t0 + v.as_u64().unwrap() * MS))
                }
                _ => v,
            };
            (if use_camel { camel(&k) } else { k }, v)
        })
        .collect()
}

fn query_string(f: &[(String, Value)]) -> String {
    f.iter()
        .map(|(k, v)| {
            let text = match v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            format!("query.{k}={}", enc(&text))
        })
        .collect::<Vec<_>>()
        .join("&")
}

fn ids(v: &Value, key: &str) -> BTreeSet<TraceId> {
    match key {
        "summaries" => v["summaries"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| TraceId::from_hex(s["traceId"].as_str().unwrap()).unwrap())
            .collect(),
        _ => otlp_spans(&v["result"])
            .iter()
            .map(|s| TraceId::from_hex(s["traceId"].as_str().unwrap()).unwrap())
            .collect(),
    }
}

#[actix_web::test]
async fn every_filter_is_applied_in_both_spellings_get_and_post() {
    let (spans, names, t0) = fixture_store();
    let app = app_over!(state_over(Arc::new(memory_with(spans.clone()).await), true));
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/apiv3/search-cases.json"
    );
    let cases: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let summary_shape = common::shape::load(SHAPES, "trace-summaries");
    let mut discriminating = 0;
    for case in cases["cases"].as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let q = case["query"].as_object().unwrap();
        let want = expected(&spans, q, t0);
        let by_hand: BTreeSet<&str> = case["expect"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        let computed: BTreeSet<&str> = want.iter().map(|t| names[t].as_str()).collect();
        assert_eq!(
            computed, by_hand,
            "{name}: the fixture's expectation is off"
        );
        discriminating += usize::from(!want.is_empty() && want.len() < names.len());
        for use_camel in [false, true] {
            let f = fields(q, t0, use_camel);
            let qs = query_string(&f);
            let body: serde_json::Map<String, Value> = f.into_iter().collect();
            let body = json!({ "query": body }).to_string();
            for endpoint in ["/api/v3/traces", "/api/v3/trace-summaries"] {
                let key = if endpoint.ends_with("summaries") {
                    "summaries"
                } else {
                    "result"
                };
                let got = get!(&app, &format!("{endpoint}?{qs}"));
                assert_eq!(got.status, Http::OK, "{name} {qs}: {}", got.text());
                let got = got.json();
                if key == "summaries" {
                    assert_fits(&got, &summary_shape);
                }
                assert_eq!(ids(&got, key), want, "{name}: GET {endpoint}?{qs}");
                let posted = post!(&app, endpoint, "application/json", body.clone());
                assert_eq!(posted.status, Http::OK, "{name} {body}: {}", posted.text());
                assert_eq!(
                    ids(&posted.json(), key),
                    want,
                    "{name}: POST {endpoint} {body}"
                );
            }
        }
    }
    assert!(discriminating >= 10, "the cases must tell traces apart");
}

#[actix_web::test]
async fn summaries_carry_the_fields_the_jaeger_ui_shows() {
    let (spans, names, t0) = fixture_store();
    let app = app_over!(state_over(Arc::new(memory_with(spans.clone()).await), true));
    let window = format!(
        "query.startTimeMin={}&query.startTimeMax={}",
        enc(&rfc3339(t0)),
        enc(&rfc3339(t0 + 600_000 * MS))
    );
    let v = get!(&app, &format!("/api/v3/trace-summaries?{window}")).json();
    assert_fits(&v, &common::shape::load(SHAPES, "trace-summaries"));
    let list = v["summaries"].as_array().unwrap();
    assert_eq!(list.len(), names.len());
    for s in list {
        let id = TraceId::from_hex(s["traceId"].as_str().unwrap()).unwrap();
        let mine: Vec<&Span> = spans.iter().filter(|x| x.trace_id == id).collect();
        let start = mine.iter().map(|x| x.start_ns).min().unwrap();
        let end = mine.iter().map(|x| x.end_ns).max().unwrap();
        assert_eq!(s["minStartTimeUnixNano"], start.to_string());
        assert_eq!(s["maxEndTimeUnixNano"], end.to_string());
        assert_eq!(s["spanCount"], mine.len());
        assert_eq!(
            s["errorSpanCount"],
            mine.iter().filter(|x| x.is_error()).count()
        );
        assert_eq!(s["orphanSpanCount"], 0);
        let root = mine.iter().find(|x| x.parent_span_id.is_none()).unwrap();
        assert_eq!(s["rootServiceName"], root.service_name());
        assert_eq!(s["rootOperationName"], root.name);
        let mut per: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
        for x in &mine {
            let e = per.entry(x.service_name()).or_default();
            e.0 += 1;
            e.1 += usize::from(x.is_error());
        }
        let services: Vec<Value> = per
            .into_iter()
            .map(|(n, (c, e))| json!({"name": n, "spanCount": c, "errorSpanCount": e}))
            .collect();
        assert_eq!(s["services"], json!(services), "sorted by name");
    }
    // Newest first: search (T+60 s) before checkout (T).
    let order: Vec<&str> = list
        .iter()
        .map(|s| names[&TraceId::from_hex(s["traceId"].as_str().unwrap()).unwrap()].as_str())
        .collect();
    let pos = |n: &str| order.iter().position(|x| *x == n).unwrap();
    assert!(
        pos("unicode") < pos("batch")
            && pos("batch") < pos("search")
            && pos("search") < pos("checkout"),
        "{order:?}"
    );
}

#[actix_web::test]
async fn what_cannot_be_honoured_is_a_400_naming_it() {
    let app = app!();
    for (q, param) in [
        ("query.startTimeMin=yesterday", "query.startTimeMin"),
        (
            "query.start_time_max=2024-13-01T00:00:00Z",
            "query.start_time_max",
        ),
        ("query.durationMin=fast", "query.durationMin"),
        ("query.search_depth=-1", "query.search_depth"),
        ("query.attributes=x", "query.attributes"),
        ("query.serviceNme=a", "query.serviceNme"),
        ("query.filter=%7B%7D", "query.filter"),
    ] {
        for endpoint in ["/api/v3/traces", "/api/v3/trace-summaries"] {
            let r = get!(&app, &format!("{endpoint}?{q}"));
            assert_v3_error(&r, 400, param);
            assert_fits(&r.json(), &common::shape::load(SHAPES, "error"));
        }
    }
    let r = post!(
        &app,
        "/api/v3/trace-summaries",
        "application/json",
        "{\"query\":[]}"
    );
    assert_v3_error(&r, 400, "query");
}

#[actix_web::test]
async fn an_otlp_upload_comes_back_as_jaeger_json() {
    let app = app!();
    let body = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/checkout.json"
    ))
    .unwrap();
    let r = post!(&app, "/api/transform", "application/json", body);
    assert_eq!(r.status, Http::OK, "{}", r.text());
    let v = r.json();
    assert_eq!(v["total"], 1);
    let t = &v["data"][0];
    assert_eq!(t["spans"].as_array().unwrap().len(), 5);
    let services: BTreeSet<&str> = t["processes"]
        .as_object()
        .unwrap()
        .values()
        .map(|p| p["serviceName"].as_str().unwrap())
        .collect();
    assert_eq!(
        services,
        BTreeSet::from(["frontend", "checkout", "payment"])
    );
    // Nothing was stored.
    let id = t["traceID"].as_str().unwrap();
    assert_eq!(
        get!(&app, &format!("/api/traces/{id}")).status,
        Http::NOT_FOUND
    );
    let r = post!(
        &app,
        "/api/transform",
        "application/json",
        "{\"resourceSpans\":1}"
    );
    assert_jaeger_error(&r, 400, "OTLP/JSON");
}

#[test]
fn the_shape_checker_rejects_what_does_not_fit() {
    let shape = json!({"a": "int", "b?": ["decimal-string"], "c": {"d": "trace-id"}});
    let id = "0af7651916cd43dd8448eb211c80319c";
    let good = json!({"a": 1, "c": {"d": id}, "extra": true});
    assert!(fits(&good, &shape, "$").is_ok());
    for bad in [
        json!({"c": {"d": id}}),
        json!({"a": -1, "c": {"d": id}}),
        json!({"a": 1, "b": [12], "c": {"d": id}}),
        json!({"a": 1, "c": {"d": "00000000000000000000000000000000"}}),
        json!({"a": 1, "c": {"d": id.to_uppercase()}}),
    ] {
        assert!(fits(&bad, &shape, "$").is_err(), "{bad}");
    }
}
