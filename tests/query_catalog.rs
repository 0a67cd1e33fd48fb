//! Autocomplete and the dependency graph over a real hot store, from all of
//! its traffic: more services than any sample holds, and an edge that only
//! older traces carry. The sampling path (`strategy=sample`) is asked the
//! same questions to show that these stores defeat it.

mod common;

use std::collections::BTreeSet;
use std::sync::Arc;

use strand::actors::writer::{start_hot_writer, HotWriterHandle};
use strand::config::IndexConfig;
use strand::model::{
    now_ns, AttrValue, KeyValue, Resource, Span, SpanId, SpanReader, SpanWriter, StatusCode,
    TraceId,
};

use common::query::{app_over, get, state_over, strs, MS};
use common::store::{storage, HotStore};

const SEC: u64 = 1000 * MS;

/// A hot store under `dir` with small segments (so answers span many
/// sealed and active segments), and its writer.
fn open(dir: &std::path::Path) -> (Arc<HotStore>, HotWriterHandle) {
    let mut cfg = storage(dir);
    cfg.segment_max_spans = 500;
    let store = HotStore::open(&cfg, &IndexConfig::default()).unwrap();
    let writer = start_hot_writer(store.clone(), None);
    (store, writer)
}

fn trace_id(n: u64) -> TraceId {
    let mut t = [0u8; 16];
    t[8..].copy_from_slice(&n.to_be_bytes());
    t[0] = 0x5a;
    TraceId(t)
}

fn span(trace: u64, id: u8, parent: Option<u8>, svc: &str, start_ns: u64) -> Span {
    Span {
        trace_id: trace_id(trace),
        span_id: SpanId([id; 8]),
        parent_span_id: parent.map(|p| SpanId([p; 8])),
        name: format!("{svc} op"),
        start_ns,
        end_ns: start_ns + MS,
        resource: Arc::new(Resource {
            attributes: vec![KeyValue::new("service.name", AttrValue::Str(svc.into()))],
            ..Default::default()
        }),
        ..Default::default()
    }
}

#[actix_web::test]
async fn autocomplete_lists_every_one_of_2000_services() {
    let dir = tempfile::tempdir().unwrap();
    let (store, writer) = open(dir.path());
    let base = now_ns() - 600 * SEC;
    let want: BTreeSet<String> = (0..2000).map(|i| format!("svc-{i:04}")).collect();
    let spans: Vec<Span> = want
        .iter()
        .enumerate()
        .map(|(i, svc)| span(i as u64, 1, None, svc, base + i as u64 * MS))
        .collect();
    for chunk in spans.chunks(250) {
        writer.write(chunk.to_vec()).await.unwrap();
    }
    writer.seal_now().await.unwrap();
    assert!(store.sealed_ids().len() >= 2, "the services span segments");
    let reader: Arc<dyn SpanReader> = store.clone();
    let app = app_over!(state_over(reader, true));

    let v = get!(&app, "/api/search/tag/service.name/values").json();
    let got: BTreeSet<String> = strs(&v["tagValues"])
        .into_iter()
        .map(String::from)
        .collect();
    assert_eq!(got, want, "every service of the default window");
    let v = get!(&app, "/api/v2/search/tag/resource.service.name/values").json();
    assert_eq!(v["tagValues"].as_array().unwrap().len(), 2000);
    assert!(v.get("warnings").is_none(), "complete: {v}");
    let v = get!(&app, "/api/v2/search/tag/name/values").json();
    assert_eq!(v["tagValues"].as_array().unwrap().len(), 2000);
    let v = get!(&app, "/api/v2/search/tag/rootServiceName/values").json();
    assert_eq!(v["tagValues"].as_array().unwrap().len(), 2000);

    // Scoped by service: that service's span names only.
    let q = common::http::enc(r#"{ resource.service.name = "svc-0042" }"#);
    let v = get!(&app, &format!("/api/v2/search/tag/name/values?q={q}")).json();
    assert_eq!(
        v["tagValues"],
        serde_json::json!([{"type": "string", "value": "svc-0042 op"}])
    );
    // A window before the traffic has none of it.
    let end = base / SEC - 3600;
    let v = get!(
        &app,
        &format!(
            "/api/search/tag/service.name/values?start={}&end={end}",
            end - 60
        )
    )
    .json();
    assert_eq!(v["tagValues"], serde_json::json!([]));

    // The sampling path sees the newest traces only.
    let v = get!(&app, "/api/search/tag/service.name/values?strategy=sample").json();
    let sampled = v["tagValues"].as_array().unwrap().len();
    assert!(sampled < 2000, "a sample of {sampled}");
}

#[actix_web::test]
async fn an_edge_only_older_traces_carry_is_counted_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let (store, writer) = open(dir.path());
    let now = now_ns();
    let old = now - 1800 * SEC;
    // 7 older traces legacy → ledger (3 of them failing), the child
    // written before its parent in some.
    let mut spans = Vec::new();
    for t in 0..7u64 {
        let mut child = span(t, 2, Some(1), "ledger", old + t * SEC + MS);
        if t % 2 == 0 {
            child.status.code = StatusCode::Error;
        }
        let parent = span(t, 1, None, "legacy", old + t * SEC);
        if t < 3 {
            spans.extend([child, parent]);
        } else {
            spans.extend([parent, child]);
        }
    }
    writer.write(spans).await.unwrap();
    // Then 1,200 newer traces front → api, none with the old edge.
    let recent = now - 300 * SEC;
    let newer: Vec<Span> = (100..1300u64)
        .flat_map(|t| {
            let start = recent + t * MS;
            [
                span(t, 1, None, "front", start),
                span(t, 2, Some(1), "api", start + 10),
            ]
        })
        .collect();
    for chunk in newer.chunks(400) {
        writer.write(chunk.to_vec()).await.unwrap();
    }
    writer.seal_now().await.unwrap();
    let reader: Arc<dyn SpanReader> = store.clone();
    let app = app_over!(state_over(reader, true));

    let url = format!("/api/dependencies?endTs={}&lookback=3600000", now / MS + 1);
    let v = get!(&app, &url).json();
    let edges = v["data"].as_array().unwrap();
    let find = |p: &str| {
        edges
            .iter()
            .find(|e| e["parent"] == p)
            .unwrap_or_else(|| panic!("no edge from {p}: {v}"))
    };
    assert_eq!(
        find("legacy"),
        &serde_json::json!({"parent": "legacy", "child": "ledger", "callCount": 7, "errorCount": 4})
    );
    assert_eq!(find("front")["callCount"], 1200);
    assert_eq!(v["total"], 2);

    // A window that ends before the old traces has neither edge.
    let url = format!(
        "/api/dependencies?endTs={}&lookback=600000",
        (old - 120 * SEC) / MS
    );
    assert_eq!(get!(&app, &url).json()["data"], serde_json::json!([]));

    // The old computation, over the newest 1,000 traces, misses it.
    let url = format!(
        "/api/dependencies?endTs={}&lookback=3600000&strategy=sample",
        now / MS + 1
    );
    let v = get!(&app, &url).json();
    let sampled = v["data"].as_array().unwrap();
    assert!(sampled.iter().all(|e| e["parent"] != "legacy"), "{v}");
    assert!(get!(&app, "/api/dependencies?strategy=nope")
        .status
        .is_client_error());
}

/// Service `i`'s span of trace `k`: its own key `feature.<i>`, a host, and
/// `http.route` `/svc-<i>/r<k % 3>`, or `/svc-<i>/legacy` for its oldest
/// trace (`k` 0).
fn service_span(i: u64, k: u64, start_ns: u64) -> Span {
    let svc = format!("svc-{i}");
    let mut s = span(i * 1000 + k, 1, None, &svc, start_ns);
    s.resource = Arc::new(Resource {
        attributes: vec![
            KeyValue::new("service.name", AttrValue::Str(svc.clone())),
            KeyValue::new("host.name", AttrValue::Str(format!("host-{i}"))),
        ],
        ..Default::default()
    });
    let route = if k == 0 {
        format!("/{svc}/legacy")
    } else {
        format!("/{svc}/r{}", k % 3)
    };
    s.attributes = vec![
        KeyValue::new("http.route", AttrValue::Str(route)),
        KeyValue::new(format!("feature.{i}"), AttrValue::Bool(true)),
    ];
    s
}

fn values_of(v: &serde_json::Value) -> BTreeSet<String> {
    v["tagValues"]
        .as_array()
        .unwrap_or_else(|| panic!("no tagValues: {v}"))
        .iter()
        .map(|t| t["value"].as_str().unwrap().to_string())
        .collect()
}

#[actix_web::test]
async fn service_scoped_values_and_keys_are_that_services_all_of_them() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = storage(dir.path());
    cfg.segment_max_spans = 10_000;
    let store = HotStore::open(&cfg, &IndexConfig::default()).unwrap();
    let writer = start_hot_writer(store.clone(), None);
    let (services, per_service) = (500u64, 101u64);
    let base = now_ns() - 1200 * SEC;
    // Every service's oldest trace first, then 100 newer ones each.
    let old: Vec<Span> = (0..services)
        .map(|i| service_span(i, 0, base + i * MS))
        .collect();
    writer.write(old).await.unwrap();
    let newer: Vec<Span> = (1..per_service)
        .flat_map(|k| (0..services).map(move |i| (i, k)))
        .map(|(i, k)| service_span(i, k, base + 60 * SEC + (k * services + i) * MS))
        .collect();
    for chunk in newer.chunks(2500) {
        writer.write(chunk.to_vec()).await.unwrap();
    }
    writer.seal_now().await.unwrap();
    assert!(store.sealed_ids().len() >= 2, "the traffic spans segments");
    let reader: Arc<dyn SpanReader> = store.clone();
    let app = app_over!(state_over(reader, true));

    let q = common::http::enc(r#"{resource.service.name="svc-7"}"#);
    let url = format!("/api/v2/search/tag/span.http.route/values?q={q}");
    let v = get!(&app, &url).json();
    let want: BTreeSet<String> = ["legacy", "r0", "r1", "r2"]
        .iter()
        .map(|r| format!("/svc-7/{r}"))
        .collect();
    assert_eq!(values_of(&v), want, "svc-7's routes, the old one too: {v}");
    assert!(v.get("warnings").is_none(), "complete: {v}");

    let v = get!(&app, &format!("/api/v2/search/tags?q={q}")).json();
    let scope = |name: &str| -> Vec<String> {
        let s = v["scopes"].as_array().unwrap();
        let s = s.iter().find(|s| s["name"] == name).unwrap();
        strs(&s["tags"]).into_iter().map(String::from).collect()
    };
    assert_eq!(scope("resource"), ["host.name", "service.name"]);
    assert_eq!(scope("span"), ["feature.7", "http.route"], "{v}");
    let v = get!(
        &app,
        &format!("/api/v2/search/tag/resource.host.name/values?q={q}")
    )
    .json();
    assert_eq!(values_of(&v), BTreeSet::from(["host-7".to_string()]));

    // A regex on the service: the union of the services it matches.
    let re = common::http::enc(r#"{resource.service.name=~"svc-(7|8)"}"#);
    let v = get!(
        &app,
        &format!("/api/v2/search/tag/span.http.route/values?q={re}")
    )
    .json();
    assert_eq!(values_of(&v).len(), 8, "{v}");
    assert!(values_of(&v).contains("/svc-8/legacy"));

    // A span-name condition narrows the services only, and says so.
    let named = common::http::enc(r#"{resource.service.name="svc-7" && name="svc-7 op"}"#);
    let v = get!(
        &app,
        &format!("/api/v2/search/tag/span.http.route/values?q={named}")
    )
    .json();
    assert_eq!(values_of(&v), want);
    assert!(v["warnings"].to_string().contains("name condition"), "{v}");

    // The sampling path sees svc-7's newest 100 traces, not the old one.
    let v = get!(&app, &format!("{url}&strategy=sample")).json();
    let sampled = values_of(&v);
    assert!(sampled.contains("/svc-7/r1"), "{v}");
    assert!(!sampled.contains("/svc-7/legacy"), "{v}");
    // Any other filter still samples, and says so.
    let other = common::http::enc(r#"{span.http.route="/svc-7/r1"}"#);
    let v = get!(&app, &format!("/api/v2/search/tags?q={other}")).json();
    assert!(v["warnings"].to_string().contains("sampled"), "{v}");
}
