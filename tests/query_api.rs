//! Shape tests for every query endpoint: an actix test app with
//! `strand::query::configure` over a MemoryStore holding constructed traces.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use actix_web::body::MessageBody;
use actix_web::dev::ServiceResponse;
use actix_web::http::StatusCode as Http;
use actix_web::{test, web, App};
use prost::Message;
use serde_json::Value;

use strand::model::{
    now_ns, AttrValue, Event, KeyValue, Link, Resource, Scope, Span, SpanId, SpanKind, Status,
    StatusCode, TraceId,
};
use strand::query::{configure, QueryState};
use strand::store::memory::MemoryStore;
use strand::store::SpanWriter;

const T1: TraceId = TraceId([0x11; 16]);
// A 64-bit trace id: still rendered as 32 hex digits.
const T2: TraceId = TraceId([
    0, 0, 0, 0, 0, 0, 0, 0, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22,
]);
const T1_HEX: &str = "11111111111111111111111111111111";
const T2_HEX: &str = "00000000000000002222222222222222";
const MS: u64 = 1_000_000;

fn res(svc: &str, extra: Vec<KeyValue>) -> Arc<Resource> {
    let mut attributes = vec![KeyValue::new("service.name", AttrValue::Str(svc.into()))];
    attributes.extend(extra);
    Arc::new(Resource {
        attributes,
        ..Default::default()
    })
}

fn sid(n: u8) -> SpanId {
    SpanId([0, 0, 0, 0, 0, 0, 0, n])
}

/// Ten minutes ago, so the default one-hour search window holds it.
fn base() -> u64 {
    now_ns() - 600_000 * MS
}

/// T1: frontend → payment (payment's clock runs 50ms behind, and it
/// fails), with the root span delivered twice. T2: an older single-span
/// inventory trace.
fn spans() -> Vec<Span> {
    let b = base();
    let front = res(
        "frontend",
        vec![KeyValue::new("host.name", AttrValue::Str("h1".into()))],
    );
    let pay = res("payment", vec![]);
    let scope = Arc::new(Scope {
        name: "io.opentelemetry.http".into(),
        version: "1.2.0".into(),
        ..Default::default()
    });
    let root = Span {
        trace_id: T1,
        span_id: sid(1),
        name: "GET /checkout".into(),
        kind: SpanKind::Server,
        start_ns: b,
        end_ns: b + 100 * MS,
        attributes: vec![
            KeyValue::new("http.status_code", AttrValue::Int(200)),
            KeyValue::new("http.method", AttrValue::Str("GET".into())),
        ],
        events: vec![Event {
            time_ns: b + MS,
            name: "cache miss".into(),
            attributes: vec![KeyValue::new("key", AttrValue::Str("cart".into()))],
            dropped_attributes_count: 0,
        }],
        resource: front.clone(),
        scope: scope.clone(),
        flags: 1,
        ..Default::default()
    };
    let call = Span {
        trace_id: T1,
        span_id: sid(2),
        parent_span_id: Some(sid(1)),
        name: "call payment".into(),
        kind: SpanKind::Client,
        start_ns: b + 10 * MS,
        end_ns: b + 60 * MS,
        links: vec![Link {
            trace_id: T2,
            span_id: sid(9),
            ..Default::default()
        }],
        resource: front,
        scope: scope.clone(),
        ..Default::default()
    };
    let charge = Span {
        trace_id: T1,
        span_id: sid(3),
        parent_span_id: Some(sid(2)),
        name: "charge".into(),
        kind: SpanKind::Server,
        // 50ms early: starts before its parent.
        start_ns: b - 35 * MS,
        end_ns: b - 5 * MS,
        attributes: vec![
            KeyValue::new("card.type", AttrValue::Str("visa".into())),
            KeyValue::new("amount", AttrValue::Double(12.5)),
        ],
        status: Status {
            code: StatusCode::Error,
            message: "card declined".into(),
        },
        resource: pay,
        scope,
        ..Default::default()
    };
    let inv = Span {
        trace_id: T2,
        span_id: sid(9),
        name: "list items".into(),
        kind: SpanKind::Internal,
        start_ns: b - 300_000 * MS,
        end_ns: b - 300_000 * MS + 2 * MS,
        resource: res("inventory", vec![]),
        ..Default::default()
    };
    vec![root.clone(), call, charge, root, inv]
}

async fn state(ready: bool) -> web::Data<QueryState> {
    let store = MemoryStore::new();
    store.write(spans()).await.unwrap();
    web::Data::new(QueryState {
        reader: Arc::new(store),
        cfg: Default::default(),
        ready: Arc::new(AtomicBool::new(ready)),
    })
}

macro_rules! app {
    () => {
        app!(true)
    };
    ($ready:expr) => {
        test::init_service(
            App::new()
                .app_data(state($ready).await)
                .configure(configure),
        )
        .await
    };
}

struct Resp {
    status: Http,
    content_type: String,
    body: Vec<u8>,
}

impl Resp {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

async fn to_resp<B: MessageBody>(r: ServiceResponse<B>) -> Resp {
    let status = r.status();
    let content_type = r
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let body = test::read_body(r).await.to_vec();
    Resp {
        status,
        content_type,
        body,
    }
}

/// GET `uri` (optionally with an Accept header) and collect the response.
macro_rules! get {
    ($app:expr, $uri:expr) => {
        get!($app, $uri, None::<&str>)
    };
    ($app:expr, $uri:expr, $accept:expr) => {{
        let mut req = test::TestRequest::get().uri(&$uri);
        if let Some(a) = $accept {
            req = req.insert_header(("Accept", a));
        }
        to_resp(test::call_service($app, req.to_request()).await).await
    }};
}

/// Percent-encodes a query value.
fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fn is_hex(v: &Value, len: usize) -> bool {
    v.as_str().is_some_and(|s| {
        s.len() == len
            && s.bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
    })
}

fn assert_jaeger_error(r: &Resp, code: u16, mention: &str) {
    assert_eq!(r.status.as_u16(), code, "{}", r.text());
    let v = r.json();
    assert_eq!(v["data"], Value::Null);
    assert_eq!(v["errors"][0]["code"], code);
    let msg = v["errors"][0]["msg"].as_str().unwrap();
    assert!(msg.contains(mention), "{msg:?} should mention {mention:?}");
}

fn tag<'a>(span: &'a Value, key: &str) -> &'a Value {
    span["tags"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["key"] == key)
        .unwrap_or_else(|| panic!("no tag {key} in {span}"))
}

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
    let names = |v: &Value| -> Vec<String> {
        v["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["traceID"].as_str().unwrap().to_string())
            .collect()
    };

    let all = get!(&app, "/api/traces");
    assert_eq!(all.status, Http::OK);
    let v = all.json();
    assert_eq!(
        names(&v),
        vec![T1_HEX, T2_HEX],
        "cross-service search, newest first"
    );
    assert_eq!(v["total"], 2);
    assert_eq!(v["data"][0]["spans"].as_array().unwrap().len(), 3);

    assert_eq!(
        names(&get!(&app, "/api/traces?service=payment&operation=charge").json()),
        vec![T1_HEX]
    );
    assert_eq!(
        names(
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
        names(&get!(&app, &format!("/api/traces?tags={tags}")).json()),
        vec![T1_HEX]
    );
    assert_eq!(
        names(&get!(&app, "/api/traces?minDuration=1.5ms&maxDuration=3ms").json()),
        vec![T2_HEX]
    );
    assert!(names(&get!(&app, "/api/traces?minDuration=1h").json()).is_empty());
    assert_eq!(names(&get!(&app, "/api/traces?limit=1").json()).len(), 1);
    let start_us = (base() - 60_000 * MS) / 1000;
    assert_eq!(
        names(
            &get!(
                &app,
                &format!("/api/traces?start={start_us}&end={}", now_ns() / 1000)
            )
            .json()
        ),
        vec![T1_HEX]
    );
    assert!(names(&get!(&app, "/api/traces?lookback=1s").json()).is_empty());

    let multi = get!(
        &app,
        &format!("/api/traces?traceID={T1_HEX}&traceID={}", "cd".repeat(16))
    );
    assert_eq!(multi.status, Http::OK);
    let v = multi.json();
    assert_eq!(names(&v), vec![T1_HEX]);
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

fn otlp_spans(v: &Value) -> Vec<&Value> {
    v["resourceSpans"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|rs| rs["scopeSpans"].as_array().unwrap())
        .flat_map(|ss| ss["spans"].as_array().unwrap())
        .collect()
}

fn assert_otlp_span_shape(s: &Value) {
    assert!(is_hex(&s["traceId"], 32) && is_hex(&s["spanId"], 16), "{s}");
    assert!(s.get("parentSpanId").is_none_or(|p| is_hex(p, 16)));
    assert!(s["startTimeUnixNano"]
        .as_str()
        .unwrap()
        .parse::<u64>()
        .is_ok());
    assert!(s["endTimeUnixNano"]
        .as_str()
        .unwrap()
        .parse::<u64>()
        .is_ok());
    assert!(s["kind"].is_u64() && s["status"]["code"].is_u64());
    assert!(s["name"].is_string() && s["attributes"].is_array());
}

fn assert_v3_error(r: &Resp, code: u16, mention: &str) {
    assert_eq!(r.status.as_u16(), code, "{}", r.text());
    let v = r.json();
    assert_eq!(v["error"]["httpCode"], code);
    let msg = v["error"]["message"].as_str().unwrap();
    assert!(msg.contains(mention), "{msg:?} should mention {mention:?}");
}

#[actix_web::test]
async fn api_v3() {
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
        serde_json::json!({"code": 2, "message": "card declined"})
    );
    assert_eq!(charge["parentSpanId"], "0000000000000002");
    assert_eq!(
        charge["attributes"][1],
        serde_json::json!({"key": "amount", "value": {"doubleValue": 12.5}})
    );
    let root = spans.iter().find(|s| s["name"] == "GET /checkout").unwrap();
    assert_eq!(
        root["attributes"][0],
        serde_json::json!({"key": "http.status_code", "value": {"intValue": "200"}})
    );
    assert!(root["events"][0]["timeUnixNano"].is_string());
    let groups = v["result"]["resourceSpans"].as_array().unwrap();
    assert_eq!(groups.len(), 2, "one resourceSpans per service");
    let front = groups
        .iter()
        .find(|rs| rs["resource"]["attributes"][0]["value"]["stringValue"] == "frontend")
        .unwrap();
    assert_eq!(
        front["scopeSpans"][0]["scope"]["name"],
        "io.opentelemetry.http"
    );
    assert_eq!(front["scopeSpans"][0]["spans"].as_array().unwrap().len(), 2);
    assert_v3_error(
        &get!(&app, &format!("/api/v3/traces/{}", "ab".repeat(16))),
        404,
        "abab",
    );
    assert_v3_error(&get!(&app, "/api/v3/traces/xyz"), 400, "trace_id");

    assert_eq!(
        get!(&app, "/api/v3/services").json(),
        serde_json::json!({"services": ["frontend", "inventory", "payment"]})
    );
    assert_eq!(
        get!(&app, "/api/v3/operations?service=frontend&span_kind=client").json(),
        serde_json::json!({"operations": [{"name": "call payment", "spanKind": "client"}]})
    );
    assert_eq!(
        get!(&app, "/api/v3/operations").json()["operations"]
            .as_array()
            .unwrap()
            .len(),
        4
    );
    assert_v3_error(
        &get!(&app, "/api/v3/operations?span_kind=up"),
        400,
        "span_kind",
    );

    let window = "query.start_time_min=2000-01-01T00:00:00Z&query.start_time_max=2100-01-01T00:00:00.5%2B01:00";
    let v = get!(
        &app,
        &format!("/api/v3/traces?query.service_name=payment&{window}")
    )
    .json();
    let found = otlp_spans(&v["result"]);
    assert_eq!(found.len(), 3, "every span of the matching trace");
    assert!(found.iter().all(|s| s["traceId"] == T1_HEX));
    let v = get!(&app, &format!("/api/v3/traces?query.duration_min=1ms&query.duration_max=5ms&query.search_depth=5&{window}")).json();
    assert!(otlp_spans(&v["result"])
        .iter()
        .all(|s| s["traceId"] == T2_HEX));
    let attrs = enc(r#"{"card.type":"visa"}"#);
    let v = get!(&app, &format!("/api/v3/traces?query.attributes={attrs}")).json();
    assert_eq!(otlp_spans(&v["result"]).len(), 3);
    let v = get!(&app, "/api/v3/traces?query.service_name=nobody").json();
    assert_eq!(v, serde_json::json!({"result": {"resourceSpans": []}}));
    for (q, param) in [
        ("query.start_time_min=yesterday", "query.start_time_min"),
        (
            "query.start_time_max=2024-13-01T00:00:00Z",
            "query.start_time_max",
        ),
        ("query.duration_min=fast", "query.duration_min"),
        ("query.search_depth=-1", "query.search_depth"),
        ("query.attributes=x", "query.attributes"),
    ] {
        assert_v3_error(&get!(&app, &format!("/api/v3/traces?{q}")), 400, param);
        assert_v3_error(
            &get!(&app, &format!("/api/v3/trace-summaries?{q}")),
            400,
            param,
        );
    }

    let v = get!(&app, "/api/v3/trace-summaries").json();
    let list = v["summaries"].as_array().unwrap();
    assert_eq!(list.len(), 2);
    let s = &list[0];
    assert!(is_hex(&s["traceID"], 32));
    assert_eq!(s["traceID"], T1_HEX);
    assert_eq!(s["rootServiceName"], "frontend");
    assert_eq!(s["rootSpanName"], "GET /checkout");
    assert_eq!(
        (s["spanCount"].as_u64(), s["errorCount"].as_u64()),
        (Some(3), Some(1))
    );
    assert_eq!(s["services"], serde_json::json!(["frontend", "payment"]));
    assert!(s["startTime"].is_u64());
    assert_eq!(
        s["duration"], 135_000,
        "from the early payment span to the root's end (raw times)"
    );
    assert_eq!(list[1]["traceID"], T2_HEX);
}

#[actix_web::test]
async fn tempo_trace_by_id() {
    let app = app!();
    let r = get!(&app, &format!("/api/v2/traces/{T1_HEX}"));
    assert_eq!(r.status, Http::OK);
    let v = r.json();
    assert_eq!(v["status"], "complete");
    let spans = otlp_spans(&v["trace"]);
    assert_eq!(spans.len(), 3);
    spans.iter().for_each(|s| assert_otlp_span_shape(s));

    let r = get!(
        &app,
        &format!("/api/v2/traces/{T2_HEX}"),
        Some("application/protobuf")
    );
    assert_eq!(
        (r.status, r.content_type.as_str()),
        (Http::OK, "application/protobuf")
    );
    let resp = strand::query::tempo::TraceByIdResponse::decode(r.body.as_slice()).unwrap();
    let rs = resp.trace.unwrap().resource_spans;
    assert_eq!(rs[0].scope_spans[0].spans[0].trace_id, T2.0.to_vec());
    assert_eq!(rs[0].scope_spans[0].spans[0].name, "list items");

    let r = get!(&app, &format!("/api/v2/traces/{}", "ab".repeat(16)));
    assert_eq!(r.status, Http::NOT_FOUND);
    assert!(r.content_type.starts_with("text/plain"));
    assert_eq!(
        get!(&app, "/api/v2/traces/nothex").status,
        Http::BAD_REQUEST
    );
}

#[actix_web::test]
async fn tempo_search() {
    let app = app!();
    let q = enc(r#"{ resource.service.name = "payment" && status = error && span.amount > 10 }"#);
    let r = get!(&app, &format!("/api/search?q={q}"));
    assert_eq!(r.status, Http::OK, "{}", r.text());
    let v = r.json();
    let traces = v["traces"].as_array().unwrap();
    assert_eq!(traces.len(), 1);
    let t = &traces[0];
    assert!(is_hex(&t["traceID"], 32));
    assert_eq!(t["rootServiceName"], "frontend");
    assert_eq!(t["rootTraceName"], "GET /checkout");
    assert!(t["startTimeUnixNano"]
        .as_str()
        .unwrap()
        .parse::<u64>()
        .is_ok());
    assert_eq!(t["durationMs"], 135);
    let set = &t["spanSets"][0];
    assert_eq!(set["matched"], 1);
    let s = &set["spans"][0];
    assert!(is_hex(&s["spanID"], 16));
    assert_eq!(s["name"], "charge");
    assert_eq!(s["durationNanos"], "30000000");
    assert!(s["startTimeUnixNano"].is_string());
    let keys: Vec<&str> = s["attributes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["key"].as_str().unwrap())
        .collect();
    assert_eq!(keys, vec!["service.name", "amount"]);
    assert_eq!(t["spanSet"], *set);
    assert!(v["metrics"]["inspectedTraces"].is_u64());

    macro_rules! ids {
        ($uri:expr) => {{
            let uri: String = $uri;
            let r = get!(&app, uri);
            assert_eq!(r.status, Http::OK, "{uri}: {}", r.text());
            r.json()["traces"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| t["traceID"].as_str().unwrap().to_string())
                .collect::<Vec<_>>()
        }};
    }
    assert_eq!(ids!("/api/search".into()), vec![T1_HEX, T2_HEX]);
    assert_eq!(
        ids!(format!("/api/search?q={}", enc("{}"))),
        vec![T1_HEX, T2_HEX]
    );
    assert_eq!(
        ids!(format!("/api/search?q={}", enc(r#"{ kind = internal }"#))),
        vec![T2_HEX]
    );
    assert_eq!(
        ids!(format!(
            "/api/search?q={}",
            enc(r#"{ rootServiceName = "inventory" }"#)
        )),
        vec![T2_HEX]
    );
    assert_eq!(
        ids!(format!(
            "/api/search?q={}",
            enc(r#"{ .http.method = "GET" && duration >= 100ms }"#)
        )),
        vec![T1_HEX]
    );
    assert!(ids!(format!(
        "/api/search?q={}",
        enc(r#"{ span.card.type != "visa" && resource.service.name = "payment" }"#)
    ))
    .is_empty());
    assert_eq!(
        ids!(format!(
            "/api/search?tags={}",
            enc(r#"service.name=inventory"#)
        )),
        vec![T2_HEX]
    );
    assert_eq!(
        ids!(format!("/api/search?tags={}", enc(r#"card.type="visa""#))),
        vec![T1_HEX]
    );
    assert_eq!(
        ids!("/api/search?minDuration=100ms".into()),
        vec![T1_HEX],
        "trace duration"
    );
    assert_eq!(ids!("/api/search?maxDuration=10ms".into()), vec![T2_HEX]);
    assert_eq!(ids!("/api/search?limit=1".into()), vec![T1_HEX]);
    let now_s = now_ns() / 1_000_000_000;
    assert_eq!(
        ids!(format!("/api/search?start={}&end={now_s}", now_s - 700)),
        vec![T1_HEX]
    );

    for (q, mention) in [
        (enc("{ .a = 1 || .b = 2 }"), "||"),
        (enc("{ .a = 1 } | count() > 1"), "pipelines"),
        (enc("{ .a = 1 } >> { .b = 2 }"), "structural"),
        (enc("{ .a =~ \"x\" }"), "regular expression"),
        (enc("{ foo = 1 }"), "foo"),
    ] {
        let r = get!(&app, &format!("/api/search?q={q}"));
        assert_eq!(r.status, Http::BAD_REQUEST);
        assert!(r.text().contains(mention), "{}", r.text());
    }
    for (q, name) in [
        ("start=abc", "start"),
        ("minDuration=1", "minDuration"),
        ("limit=x", "limit"),
        ("tags=novalue", "tags"),
    ] {
        let r = get!(&app, &format!("/api/search?{q}"));
        assert_eq!(r.status, Http::BAD_REQUEST);
        assert!(r.text().contains(name), "{}", r.text());
    }
}

#[actix_web::test]
async fn tempo_tags_and_echo() {
    let app = app!();
    let v = get!(&app, "/api/search/tags").json();
    let names: Vec<&str> = v["tagNames"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n.as_str().unwrap())
        .collect();
    for n in ["service.name", "host.name", "http.status_code", "card.type"] {
        assert!(names.contains(&n), "{names:?}");
    }

    let v = get!(&app, "/api/v2/search/tags").json();
    let scopes = v["scopes"].as_array().unwrap();
    assert_eq!(
        scopes
            .iter()
            .map(|s| s["name"].as_str().unwrap())
            .collect::<Vec<_>>(),
        vec!["resource", "span", "intrinsic"]
    );
    assert!(scopes[0]["tags"]
        .as_array()
        .unwrap()
        .contains(&"service.name".into()));
    assert!(scopes[1]["tags"]
        .as_array()
        .unwrap()
        .contains(&"http.method".into()));
    assert!(scopes[2]["tags"]
        .as_array()
        .unwrap()
        .contains(&"status".into()));
    let v = get!(&app, "/api/v2/search/tags?scope=span").json();
    assert_eq!(v["scopes"].as_array().unwrap().len(), 1);
    assert_eq!(
        get!(&app, "/api/v2/search/tags?scope=galaxy").status,
        Http::BAD_REQUEST
    );

    let v = get!(&app, "/api/search/tag/service.name/values").json();
    assert_eq!(
        v["tagValues"],
        serde_json::json!(["frontend", "inventory", "payment"])
    );
    let v = get!(&app, "/api/search/tag/http.status_code/values").json();
    assert_eq!(v["tagValues"], serde_json::json!(["200"]));

    let v = get!(&app, "/api/v2/search/tag/resource.service.name/values").json();
    assert_eq!(
        v["tagValues"][0],
        serde_json::json!({"type": "string", "value": "frontend"})
    );
    let v = get!(&app, "/api/v2/search/tag/span.http.status_code/values").json();
    assert_eq!(
        v["tagValues"],
        serde_json::json!([{"type": "int", "value": "200"}])
    );
    let v = get!(&app, "/api/v2/search/tag/status/values").json();
    assert_eq!(
        v["tagValues"][0],
        serde_json::json!({"type": "keyword", "value": "error"})
    );
    let v = get!(&app, "/api/v2/search/tag/name/values").json();
    assert_eq!(v["tagValues"].as_array().unwrap().len(), 4);
    let q = enc(r#"{ resource.service.name = "payment" }"#);
    let v = get!(&app, &format!("/api/v2/search/tag/name/values?q={q}")).json();
    assert_eq!(
        v["tagValues"],
        serde_json::json!([{"type": "string", "value": "charge"}])
    );
    let r = get!(&app, "/api/v2/search/tag/bogus/values");
    assert_eq!(r.status, Http::BAD_REQUEST);
    assert!(r.text().contains("bogus"));

    let v = get!(&app, "/api/status/buildinfo").json();
    assert_eq!(v["version"], "2.0.0");
    assert!(v["revision"].as_str().unwrap().starts_with("strand-"));

    let r = get!(&app, "/api/echo");
    assert_eq!((r.status, r.text().as_str()), (Http::OK, "echo"));
}

#[actix_web::test]
async fn health_metrics_and_admin() {
    let app = app!(false);
    assert_eq!(get!(&app, "/readyz").status, Http::SERVICE_UNAVAILABLE);
    let r = get!(&app, "/healthz");
    assert_eq!((r.status, r.text().as_str()), (Http::OK, "ok"));
    let _ = get!(&app, "/api/services");
    let r = get!(&app, "/metrics");
    assert_eq!(r.status, Http::OK);
    assert_eq!(r.content_type, "text/plain; version=0.0.4");
    let text = r.text();
    assert!(
        text.contains(r#"strand_query_requests_total{endpoint="/api/services",code="200"}"#),
        "{text}"
    );
    assert!(
        text.contains(
            r#"strand_query_request_duration_microseconds_total{endpoint="/api/services"}"#
        ),
        "{text}"
    );
    let r = get!(&app, "/api/admin/actors");
    assert_eq!(r.status, Http::OK);
    assert!(r.json().is_object());

    let ready = app!(true);
    assert_eq!(get!(&ready, "/readyz").status, Http::OK);
    // `/`, `/static/*` and `/api/export/*` belong to other modules.
    for free in ["/", "/static/app.js", "/api/export/traces"] {
        assert_eq!(get!(&ready, free).status, Http::NOT_FOUND, "{free}");
    }
}

#[actix_web::test]
async fn traces_spread_over_tiers_are_merged_once() {
    // The hot tier has part of T1, the other tier all of it (and a copy of
    // the root): every endpoint shows each span once.
    let all = spans();
    let hot = MemoryStore::new();
    hot.write(all[..2].to_vec()).await.unwrap();
    let cold = MemoryStore::new();
    cold.write(all.clone()).await.unwrap();
    let reader = strand::store::tiered::TieredReader(vec![Arc::new(hot), Arc::new(cold)]);
    let state = web::Data::new(QueryState {
        reader: Arc::new(reader),
        cfg: Default::default(),
        ready: Arc::new(AtomicBool::new(true)),
    });
    let app = test::init_service(App::new().app_data(state).configure(configure)).await;
    let v = get!(&app, format!("/api/traces/{T1_HEX}")).json();
    assert_eq!(v["data"][0]["spans"].as_array().unwrap().len(), 3);
    let v = get!(&app, format!("/api/v3/traces/{T1_HEX}")).json();
    assert_eq!(otlp_spans(&v["result"]).len(), 3);
    let v = get!(&app, "/api/traces?service=frontend").json();
    assert_eq!(v["total"], 1);
    assert_eq!(v["data"][0]["spans"].as_array().unwrap().len(), 3);
}
