//! The query endpoints in-process: an actix test app with
//! `strand::query::configure` over a MemoryStore holding constructed
//! traces, and checks of the answers' shapes.

use std::sync::Arc;

use actix_web::body::MessageBody;
use actix_web::dev::ServiceResponse;
use actix_web::http::StatusCode as Http;
use actix_web::{test, web};
use serde_json::Value;

use strand::actors::tree::Health;
use strand::model::SpanReader;
use strand::model::{
    now_ns, AttrValue, Event, KeyValue, Link, Resource, Scope, Span, SpanId, SpanKind, Status,
    StatusCode, TraceId,
};
use strand::query::QueryState;

use super::store::memory_with;

pub const T1: TraceId = TraceId([0x11; 16]);
// A 64-bit trace id: still rendered as 32 hex digits.
pub const T2: TraceId = TraceId([
    0, 0, 0, 0, 0, 0, 0, 0, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22,
]);
pub const T1_HEX: &str = "11111111111111111111111111111111";
pub const T2_HEX: &str = "00000000000000002222222222222222";
pub const MS: u64 = 1_000_000;

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
pub fn base() -> u64 {
    now_ns() - 600_000 * MS
}

/// T1: frontend → payment (payment's clock runs 50ms behind, and it
/// fails), with the root span delivered twice. T2: an older single-span
/// inventory trace.
pub fn spans() -> Vec<Span> {
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

/// The endpoints' state over `reader`.
pub fn state_over(reader: Arc<dyn SpanReader>, ready: bool) -> web::Data<QueryState> {
    let health = Health::default();
    health.set_started(ready);
    web::Data::new(QueryState {
        reader,
        cfg: Default::default(),
        health,
        span_metrics: Arc::new(strand::spanmetrics::empty::NoMetrics::default()),
    })
}

/// The endpoints' state over a MemoryStore holding [`spans`].
pub async fn state(ready: bool) -> web::Data<QueryState> {
    state_over(Arc::new(memory_with(spans()).await), ready)
}

/// The test app over [`state`]: `app!()` ready, `app!(false)` not yet.
#[allow(unused_macros)]
macro_rules! app {
    () => {
        $crate::common::query::app!(true)
    };
    ($ready:expr) => {
        $crate::common::query::app_over!($crate::common::query::state($ready).await)
    };
}

/// The test app over the given state.
#[allow(unused_macros)]
macro_rules! app_over {
    ($state:expr) => {
        ::actix_web::test::init_service(
            ::actix_web::App::new()
                .app_data($state)
                .configure(::strand::query::configure),
        )
        .await
    };
}

/// GET `uri` (optionally with an Accept header) and collect the response.
#[allow(unused_macros)]
macro_rules! get {
    ($app:expr, $uri:expr) => {
        $crate::common::query::get!($app, $uri, None::<&str>)
    };
    ($app:expr, $uri:expr, $accept:expr) => {{
        let mut req = ::actix_web::test::TestRequest::get().uri(&$uri);
        if let Some(a) = $accept {
            req = req.insert_header(("Accept", a));
        }
        $crate::common::query::to_resp(
            ::actix_web::test::call_service($app, req.to_request()).await,
        )
        .await
    }};
}

/// POST `body` to `uri` with a content type and collect the response.
#[allow(unused_macros)]
macro_rules! post {
    ($app:expr, $uri:expr, $content_type:expr, $body:expr) => {{
        let req = ::actix_web::test::TestRequest::post()
            .uri(&$uri)
            .insert_header(("Content-Type", $content_type))
            .set_payload($body);
        $crate::common::query::to_resp(
            ::actix_web::test::call_service($app, req.to_request()).await,
        )
        .await
    }};
}

#[allow(unused_imports)]
pub(crate) use {app, app_over, get, post};

pub struct Resp {
    pub status: Http,
    pub content_type: String,
    pub body: Vec<u8>,
}

impl Resp {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

pub async fn to_resp<B: MessageBody>(r: ServiceResponse<B>) -> Resp {
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

/// A lower-case hex string of `len` digits.
pub fn is_hex(v: &Value, len: usize) -> bool {
    v.as_str().is_some_and(|s| {
        s.len() == len
            && s.bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
    })
}

/// The strings of a JSON array.
pub fn strs(v: &Value) -> Vec<&str> {
    v.as_array()
        .unwrap_or_else(|| panic!("not an array: {v}"))
        .iter()
        .map(|s| s.as_str().unwrap_or_else(|| panic!("not a string: {s}")))
        .collect()
}

pub fn assert_jaeger_error(r: &Resp, code: u16, mention: &str) {
    assert_eq!(r.status.as_u16(), code, "{}", r.text());
    let v = r.json();
    assert_eq!(v["data"], Value::Null);
    assert_eq!(v["errors"][0]["code"], code);
    let msg = v["errors"][0]["msg"].as_str().unwrap();
    assert!(msg.contains(mention), "{msg:?} should mention {mention:?}");
}

pub fn assert_v3_error(r: &Resp, code: u16, mention: &str) {
    assert_eq!(r.status.as_u16(), code, "{}", r.text());
    let v = r.json();
    assert_eq!(v["error"]["httpCode"], code);
    let msg = v["error"]["message"].as_str().unwrap();
    assert!(msg.contains(mention), "{msg:?} should mention {mention:?}");
}

/// Every span of an OTLP/JSON `{resourceSpans: ...}`.
pub fn otlp_spans(v: &Value) -> Vec<&Value> {
    v["resourceSpans"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|rs| rs["scopeSpans"].as_array().unwrap())
        .flat_map(|ss| ss["spans"].as_array().unwrap())
        .collect()
}

pub fn assert_otlp_span_shape(s: &Value) {
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
