//! The Jaeger query endpoints in-process (`/api/traces`, `/api/services`,
//! `/api/dependencies`), over constructed traces
//! (`common::query::spans`); and traces spread over two tiers shown once.

mod common;

use std::sync::Arc;

use actix_web::http::StatusCode as Http;
use prost::Message;
use serde_json::Value;

use common::http::enc;
use common::jaeger::{tag, trace_ids};
use common::query::*;
use common::store::{memory_with, TieredReader};
use strand::model::now_ns;

#[actix_web::test]
async fn jaeger_trace_by_id() {
    let app = app!();
    let r = get!(&app, &format!("/api/traces/{T1_HEX}"));
    assert_eq!(r.status, Http::OK);
    assert!(r.content_type.starts_with("application/json"));
    let v = r.json();
    assert_eq!(
        (
            v["total"].clone(),
            v["limit"].clone(),
            v["offset"].clone(),
            v["errors"].clone()
        ),
        (1.into(), 0.into(), 0.into(), Value::Null)
    );
    let t = &v["data"][0];
    assert_eq!(t["traceID"], T1_HEX);
    let spans = t["spans"].as_array().unwrap();
    assert_eq!(spans.len(), 3, "the redelivered root span is shown once");
    for s in spans {
        assert!(is_hex(&s["traceID"], 32) && is_hex(&s["spanID"], 16), "{s}");
        assert!(s["startTime"].is_u64() && s["duration"].is_u64() && s["flags"].is_u64());
        assert!(s["operationName"].is_string() && s["processID"].is_string());
        assert!(t["processes"][s["processID"].as_str().unwrap()]["serviceName"].is_string());
        for tg in s["tags"].as_array().unwrap() {
            assert!(
                ["string", "bool", "int64", "float64", "binary"]
                    .contains(&tg["type"].as_str().unwrap()),
                "{tg}"
            );
        }
    }
    let by_name = |n: &str| spans.iter().find(|s| s["operationName"] == n).unwrap();
    let root = by_name("GET /checkout");
    assert_eq!(root["duration"], 100_000);
    assert_eq!(root["references"], serde_json::json!([]));
    assert_eq!(tag(root, "http.status_code")["value"], 200);
    assert_eq!(tag(root, "http.status_code")["type"], "int64");
    assert_eq!(tag(root, "span.kind")["value"], "server");
    assert_eq!(
        tag(root, "otel.scope.name")["value"],
        "io.opentelemetry.http"
    );
    assert_eq!(tag(root, "otel.scope.version")["value"], "1.2.0");
    assert_eq!(root["logs"][0]["fields"][0]["value"], "cache miss");
    assert!(root["logs"][0]["timestamp"].is_u64());
    assert_eq!(root["warnings"], Value::Null);
    let call = by_name("call payment");
    assert_eq!(
        call["references"][0],
        serde_json::json!({"refType": "CHILD_OF", "traceID": T1_HEX, "spanID": "0000000000000001"})
    );
    assert_eq!(
        call["references"][1],
        serde_json::json!({"refType": "FOLLOWS_FROM", "traceID": T2_HEX, "spanID": "0000000000000009"})
    );
    let charge = by_name("charge");
    assert_eq!(
        tag(charge, "error"),
        &serde_json::json!({"key": "error", "type": "bool", "value": true})
    );
    assert_eq!(tag(charge, "otel.status_code")["value"], "ERROR");
    assert_eq!(
        tag(charge, "otel.status_description")["value"],
        "card declined"
    );
    assert_eq!(tag(charge, "amount")["type"], "float64");
    // Skewed by 50ms: centred in its 50ms parent (it lasts 30ms) → +55ms.
    let w = charge["warnings"][0].as_str().unwrap();
    assert!(w.contains("clock skew") && w.contains("+55000µs"), "{w}");
    assert_eq!(
        charge["startTime"].as_u64().unwrap(),
        call["startTime"].as_u64().unwrap() + 10_000
    );
    let front = &t["processes"][root["processID"].as_str().unwrap()];
    assert_eq!(front["serviceName"], "frontend");
    assert_eq!(
        front["tags"],
        serde_json::json!([{"key": "host.name", "type": "string", "value": "h1"}])
    );
    assert_ne!(root["processID"], charge["processID"]);

    let raw = get!(&app, &format!("/api/traces/{T1_HEX}?raw=true")).json();
    assert!(raw["data"][0]["spans"]
        .as_array()
        .unwrap()
        .iter()
        .all(|s| s["warnings"].is_null()));

    assert_jaeger_error(
        &get!(&app, "/api/traces/0123456789abcdef0123456789abcdef"),
        404,
        "0123456789abcdef0123456789abcdef",
    );
    assert_jaeger_error(&get!(&app, "/api/traces/not-hex"), 400, "traceID");
    assert_jaeger_error(
        &get!(&app, &format!("/api/traces/{}", "f".repeat(33))),
        400,
        "traceID",
    );
}

#[actix_web::test]
async fn jaeger_trace_by_id_answers_tempo_protobuf_when_asked() {
    let app = app!();
    let r = get!(
        &app,
        &format!("/api/traces/{T1_HEX}"),
        Some("application/protobuf")
    );
    assert_eq!(r.status, Http::OK);
    assert_eq!(r.content_type, "application/protobuf");
    let t = strand::query::tempo::TempoTrace::decode(r.body.as_slice()).unwrap();
    let n: usize = t
        .resource_spans
        .iter()
        .flat_map(|rs| &rs.scope_spans)
        .map(|ss| ss.spans.len())
        .sum();
    assert_eq!(n, 3);
    let missing = get!(
        &app,
        &format!("/api/traces/{}", "ab".repeat(16)),
        Some("application/protobuf")
    );
    assert_eq!(missing.status, Http::NOT_FOUND);
}

#[actix_web::test]
async fn jaeger_search() {
    let app = app!();
    let all = get!(&app, "/api/traces");
    assert_eq!(all.status, Http::OK);
    let v = all.json();
    assert_eq!(
        trace_ids(&v),
        vec![T1_HEX, T2_HEX],
        "cross-service search, newest first"
    );
    assert_eq!(v["total"], 2);
    assert_eq!(v["data"][0]["spans"].as_array().unwrap().len(), 3);

    assert_eq!(
        trace_ids(&get!(&app, "/api/traces?service=payment&operation=charge").json()),
        vec![T1_HEX]
    );
    assert_eq!(
        trace_ids(
            &get!(
                &app,
                "/api/traces?service=frontend&tag=http.status_code:200"
            )
            .json()
        ),
        vec![T1_HEX]
    );
    let tags = enc(r#"{"card.type":"visa","error":"true"}"#);
    assert_eq!(
        trace_ids(&get!(&app, &format!("/api/traces?tags={tags}")).json()),
        vec![T1_HEX]
    );
    assert_eq!(
        trace_ids(&get!(&app, "/api/traces?minDuration=1.5ms&maxDuration=3ms").json()),
        vec![T2_HEX]
    );
    assert!(trace_ids(&get!(&app, "/api/traces?minDuration=1h").json()).is_empty());
    assert_eq!(
        trace_ids(&get!(&app, "/api/traces?limit=1").json()).len(),
        1
    );
    let start_us = (base() - 60_000 * MS) / 1000;
    assert_eq!(
        trace_ids(
            &get!(
                &app,
                &format!("/api/traces?start={start_us}&end={}", now_ns() / 1000)
            )
            .json()
        ),
        vec![T1_HEX]
    );
    assert!(trace_ids(&get!(&app, "/api/traces?lookback=1s").json()).is_empty());

    let multi = get!(
        &app,
        &format!("/api/traces?traceID={T1_HEX}&traceID={}", "cd".repeat(16))
    );
    assert_eq!(multi.status, Http::OK);
    let v = multi.json();
    assert_eq!(trace_ids(&v), vec![T1_HEX]);
    assert_eq!(v["errors"][0]["code"], 404);
    assert_eq!(v["errors"][0]["traceID"], "cd".repeat(16));

    for (q, param) in [
        ("minDuration=abc", "minDuration"),
        ("maxDuration=10", "maxDuration"),
        ("tags=notjson", "tags"),
        ("tag=nocolon", "tag"),
        ("limit=x", "limit"),
        ("start=200&end=100", "start"),
        ("end=soon", "end"),
        ("traceID=zz", "traceID"),
        ("raw=maybe", "raw"),
    ] {
        assert_jaeger_error(&get!(&app, &format!("/api/traces?{q}")), 400, param);
    }
}

#[actix_web::test]
async fn jaeger_services_operations_dependencies() {
    let app = app!();
    let v = get!(&app, "/api/services").json();
    assert_eq!(
        v["data"],
        serde_json::json!(["frontend", "inventory", "payment"])
    );
    assert_eq!(v["total"], 3);

    let v = get!(&app, "/api/services/frontend/operations").json();
    assert_eq!(
        v["data"],
        serde_json::json!(["GET /checkout", "call payment"])
    );
    let v = get!(&app, "/api/services/nobody/operations").json();
    assert_eq!(v["data"], serde_json::json!([]));

    let v = get!(&app, "/api/operations?service=frontend").json();
    assert_eq!(
        v["data"],
        serde_json::json!([{"name": "GET /checkout", "spanKind": "server"}, {"name": "call payment", "spanKind": "client"}])
    );
    let v = get!(&app, "/api/operations?service=frontend&spanKind=client").json();
    assert_eq!(
        v["data"],
        serde_json::json!([{"name": "call payment", "spanKind": "client"}])
    );
    assert_jaeger_error(&get!(&app, "/api/operations"), 400, "service");
    assert_jaeger_error(
        &get!(&app, "/api/operations?service=frontend&spanKind=sideways"),
        400,
        "spanKind",
    );

    let end_ms = now_ns() / MS;
    let v = get!(
        &app,
        &format!("/api/dependencies?endTs={end_ms}&lookback=3600000")
    )
    .json();
    assert_eq!(
        v["data"],
        serde_json::json!([{"parent": "frontend", "child": "payment", "callCount": 1, "errorCount": 1}])
    );
    let v = get!(
        &app,
        &format!(
            "/api/dependencies?endTs={}&lookback=1000",
            end_ms - 3_600_000
        )
    )
    .json();
    assert_eq!(v["data"], serde_json::json!([]));
    assert_eq!(get!(&app, "/api/dependencies").json()["total"], 1);
    assert_jaeger_error(
        &get!(&app, "/api/dependencies?endTs=yesterday"),
        400,
        "endTs",
    );
    assert_jaeger_error(
        &get!(&app, "/api/dependencies?lookback=-5"),
        400,
        "lookback",
    );
}

#[actix_web::test]
async fn traces_spread_over_tiers_are_merged_once() {
    // The hot tier has part of T1, the other tier all of it (and a copy of
    // the root): every endpoint shows each span once.
    let all = spans();
    let hot = memory_with(all[..2].to_vec()).await;
    let cold = memory_with(all.clone()).await;
    let reader = TieredReader(vec![Arc::new(hot), Arc::new(cold)]);
    let app = app_over!(state_over(Arc::new(reader), true));
    let v = get!(&app, format!("/api/traces/{T1_HEX}")).json();
    assert_eq!(v["data"][0]["spans"].as_array().unwrap().len(), 3);
    let v = get!(&app, format!("/api/v3/traces/{T1_HEX}")).json();
    assert_eq!(otlp_spans(&v["result"]).len(), 3);
    let v = get!(&app, "/api/traces?service=frontend").json();
    assert_eq!(v["total"], 1);
    assert_eq!(v["data"][0]["spans"].as_array().unwrap().len(), 3);
}
