//! The Tempo query endpoints in-process (`/api/v2/traces`, `/api/search`,
//! tags and values, build info, echo), and the process endpoints served
//! beside them (health, readiness, metrics, admin).

mod common;

use actix_web::http::StatusCode as Http;
use prost::Message;

use common::http::enc;
use common::query::*;
use strand::model::now_ns;

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
        (enc("{ .a = 1 } | count() > 1"), "aggregate `count()`"),
        (enc("{ .a = 1 } >> { .b = 2 }"), "structural"),
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

/// The trace ids `/api/search?q=<query>` answers, newest first.
macro_rules! traceql_ids {
    ($app:expr, $query:expr) => {{
        let query: &str = $query;
        let r = get!($app, &format!("/api/search?q={}", enc(query)));
        assert_eq!(r.status, Http::OK, "{query}: {}", r.text());
        r.json()["traces"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["traceID"].as_str().unwrap().to_string())
            .collect::<Vec<String>>()
    }};
}

#[actix_web::test]
async fn tempo_traceql_grammar() {
    let app = app!();
    let both = vec![T1_HEX.to_string(), T2_HEX.to_string()];
    let t1 = vec![T1_HEX.to_string()];
    let t2 = vec![T2_HEX.to_string()];
    let none: Vec<String> = Vec::new();
    for (q, want) in [
        // What Grafana's query builder writes.
        ("{}", &both),
        (r#"{ resource.service.name =~ "payment|inventory" }"#, &both),
        (
            r#"{ (resource.service.name = "inventory" || resource.service.name = "payment") }"#,
            &both,
        ),
        ("{ span.http.status_code >= 200 }", &t1),
        ("{ duration > 20ms && status = error }", &t1),
        ("{ duration > 40ms && status = error }", &none),
        // Regexes are anchored at both ends.
        (r#"{ resource.service.name =~ "pay" }"#, &none),
        (r#"{ resource.service.name =~ "ayment" }"#, &none),
        (r#"{ resource.service.name =~ "pay.*" }"#, &t1),
        (r#"{ name !~ ".* .*" }"#, &t1),
        // Precedence: `&&` before `||`.
        (
            r#"{ kind = internal || kind = server && status = error }"#,
            &both,
        ),
        (
            r#"{ (kind = internal || kind = server) && status = error }"#,
            &t1,
        ),
        // Spansets joined over the trace.
        (
            r#"{ resource.service.name = "payment" } && { span.http.method = "GET" }"#,
            &t1,
        ),
        (
            r#"{ resource.service.name = "payment" } && { kind = internal }"#,
            &none,
        ),
        (
            r#"{ resource.service.name = "inventory" } || { span.card.type = "visa" }"#,
            &both,
        ),
        (
            r#"({ kind = internal } || { kind = client }) && { rootName = "list items" }"#,
            &t2,
        ),
        // Literals and quoted names.
        (r#"{ span."card.type" = "visa" }"#, &t1),
        ("{ span.amount > -1 && span.amount < 12.6 }", &t1),
        ("{ span.amount != nil }", &t1),
        (
            r#"{ span.amount = nil && resource.service.name = "payment" }"#,
            &none,
        ),
        ("{ true && traceDuration < 10ms }", &t2),
        ("{ false }", &none),
        (r#"{ statusMessage = "card declined" && name >= "c" }"#, &t1),
    ] {
        assert_eq!(traceql_ids!(&app, q), *want, "{q}");
    }

    // `select` adds the named attributes and intrinsics to matched spans.
    let q = enc(r#"{ status = error } | select(span.card.type, statusMessage)"#);
    let v = get!(&app, &format!("/api/search?q={q}")).json();
    let span = &v["traces"][0]["spanSets"][0]["spans"][0];
    assert_eq!(span["name"], "charge");
    let attrs: Vec<(String, String)> = span["attributes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            let val = &a["value"]["stringValue"];
            (
                a["key"].as_str().unwrap().into(),
                val.as_str().unwrap_or("").into(),
            )
        })
        .collect();
    assert_eq!(
        attrs,
        vec![
            ("card.type".into(), "visa".into()),
            ("service.name".into(), "payment".into()),
            ("statusMessage".into(), "card declined".into()),
        ]
    );
    // `{a} && {b}` returns the spans of both sides.
    let q = enc(r#"{ resource.service.name = "payment" } && { span.http.method = "GET" }"#);
    let v = get!(&app, &format!("/api/search?q={q}")).json();
    let set = &v["traces"][0]["spanSets"][0];
    let mut names: Vec<&str> = set["spans"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    names.sort();
    assert_eq!(
        (set["matched"].as_u64(), names),
        (Some(2), vec!["GET /checkout", "charge"])
    );

    // Each class of what stays unsupported answers 400 naming it.
    let hostile = format!("{{ span.x =~ \"{}\" }}", "(a{1000}){1000}");
    for (q, mention) in [
        ("{ } | count() > 1", "aggregate `count()`"),
        ("{ } | avg(duration) > 1s", "aggregate `avg()`"),
        ("{ } | by(resource.service.name)", "grouping `by()`"),
        ("{ } | coalesce()", "`coalesce()`"),
        ("{ } | rate()", "metrics function `rate()`"),
        ("{ .a = 1 } >> { .b = 2 }", "structural operator `>>`"),
        ("{ .a = 1 } > { .b = 2 }", "structural operator `>`"),
        ("{ .a = 1 } ~ { .b = 2 }", "structural operator `~`"),
        ("{ .a = 1 } | { .b = 2 }", "pipeline stages"),
        ("{ span.a * 2 > 1 }", "arithmetic"),
        ("{ !(span.a = 1) }", "negation"),
        ("{ event.a = 1 }", "`event.` attribute scope"),
        ("{ span:id = \"1\" }", "intrinsic `span:id`"),
        ("{ span.a = span.b }", "comparing two fields"),
        ("{ } with (most_recent=true)", "query hints"),
        (hostile.as_str(), "regular expression"),
        (r#"{ span.x =~ "(" }"#, "regular expression"),
    ] {
        let r = get!(&app, &format!("/api/search?q={}", enc(q)));
        assert_eq!(r.status, Http::BAD_REQUEST, "{q}");
        assert!(r.text().contains(mention), "{q}: {}", r.text());
        if !mention.contains("regular") {
            assert!(
                r.text().contains("unsupported TraceQL"),
                "{q}: {}",
                r.text()
            );
        }
    }
}

#[actix_web::test]
async fn tempo_tags_and_echo() {
    let app = app!();
    let v = get!(&app, "/api/search/tags").json();
    let names = strs(&v["tagNames"]);
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
    for (scope, tag) in scopes.iter().zip(["service.name", "http.method", "status"]) {
        assert!(strs(&scope["tags"]).contains(&tag), "{scope}");
    }
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

/// A storage tier that is down: every read is `Unavailable`.
struct Down;

#[async_trait::async_trait]
impl strand::model::SpanReader for Down {
    async fn trace(
        &self,
        _: strand::model::TraceId,
    ) -> strand::error::Result<Vec<strand::model::Span>> {
        Err(down())
    }
    async fn search(
        &self,
        _: &strand::model::SearchQuery,
    ) -> strand::error::Result<Vec<strand::model::TraceHit>> {
        Err(down())
    }
    async fn services(&self) -> strand::error::Result<Vec<String>> {
        Err(down())
    }
    async fn operations(
        &self,
        _: Option<&str>,
    ) -> strand::error::Result<Vec<strand::model::Operation>> {
        Err(down())
    }
    async fn scan(
        &self,
        _: &strand::model::SearchQuery,
        _: Option<&str>,
        _: usize,
    ) -> strand::error::Result<strand::model::ScanPage> {
        Err(down())
    }
}

fn down() -> strand::error::Error {
    strand::error::Error::Unavailable("storage tier down".into())
}

/// Retry hints are decided in one place and reach every API alike:
/// Jaeger v1, api_v3 and Tempo (JSON and protobuf) answer 503 with
/// `Retry-After` when the store cannot answer now.
#[actix_web::test]
async fn every_api_tells_clients_when_to_retry() {
    let app = app_over!(state_over(std::sync::Arc::new(Down), true));
    let uris = [
        (format!("/api/traces/{T1_HEX}"), None),
        ("/api/traces?service=frontend".to_string(), None),
        ("/api/services".to_string(), None),
        (format!("/api/v3/traces/{T1_HEX}"), None),
        (format!("/api/v2/traces/{T1_HEX}"), None),
        (
            format!("/api/traces/{T1_HEX}"),
            Some("application/protobuf"),
        ),
        ("/api/search?tags=service.name%3Dfrontend".to_string(), None),
    ];
    for (uri, accept) in uris {
        let mut req = actix_web::test::TestRequest::get().uri(&uri);
        if let Some(a) = accept {
            req = req.insert_header(("Accept", a));
        }
        let resp = actix_web::test::call_service(&app, req.to_request()).await;
        assert_eq!(resp.status(), Http::SERVICE_UNAVAILABLE, "{uri} {accept:?}");
        let hint = resp
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok());
        assert_eq!(hint, Some("1"), "{uri} {accept:?}");
    }
}
