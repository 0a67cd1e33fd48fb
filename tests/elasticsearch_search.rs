//! The Elasticsearch tier's reads against a real Elasticsearch
//! (`common::es`): every field round-trips, search agrees with the
//! reference MemoryStore, many distinct keys keep the mapping small, and
//! the shared conformance suite.

mod common;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use elasticsearch::indices::IndicesGetMappingParts;
use serde_json::Value;
use strand::config::ElasticsearchConfig;
use strand::model::*;
use strand::model::{SpanReader, SpanWriter};

use common::es::{self, Tier, DAY, HOUR};
use common::store::{memory_with, scan_all};
use common::{fixtures, wait};

#[actix_rt::test]
async fn round_trip_every_field() {
    let es = Tier::start("roundtrip").await;
    let now = now_ns();
    // Elasticsearch keeps attributes typed everywhere, not only on the
    // span: its event, link and scope get every type too.
    let mut root = fixtures::full_span(0xab, now - HOUR + 123_456_789);
    let all_types = fixtures::every_attribute_type();
    root.events[0].attributes.extend(all_types.clone());
    root.links[0].attributes.extend(all_types.clone());
    root.scope = Arc::new(Scope {
        attributes: all_types,
        dropped_attributes_count: 7,
        ..(*root.scope).clone()
    });
    let tid = root.trace_id;
    // A child on the previous UTC day's index, to read across indices.
    let child = Span {
        trace_id: tid,
        span_id: SpanId([2; 8]),
        parent_span_id: Some(root.span_id),
        start_ns: now - DAY - HOUR,
        end_ns: now - DAY,
        ..Span::default()
    };
    es.writer
        .write(vec![root.clone(), child.clone()])
        .await
        .expect("write");
    es.writer
        .write(vec![root.clone()])
        .await
        .expect("redelivery is idempotent");

    let mut got = wait::value(
        "the trace to be searchable",
        Duration::from_secs(60),
        async || {
            let spans = match es.store.trace(tid).await {
                Ok(s) => s,
                Err(e) if e.is_retryable() => return None,
                Err(e) => panic!("trace: {e}"),
            };
            (spans.len() >= 2).then_some(spans)
        },
    )
    .await;
    es.wait_indexed(2).await;
    let got_again = es.store.trace(tid).await.expect("trace");
    assert_eq!(got_again.len(), 2, "redelivery must not duplicate");
    got.sort_by_key(|s| s.span_id);
    assert_eq!(got, [child, root]);
    assert!(es
        .store
        .trace(TraceId([0xcd; 16]))
        .await
        .expect("unknown trace")
        .is_empty());

    // Long values are searchable exactly.
    let q = SearchQuery {
        tags: vec![("long".into(), "z".repeat(5000))],
        limit: 10,
        ..Default::default()
    };
    assert_eq!(es.store.search(&q).await.unwrap().len(), 1);
    let q = SearchQuery {
        tags: vec![("long".into(), "z".repeat(4999))],
        limit: 10,
        ..Default::default()
    };
    assert!(es.store.search(&q).await.unwrap().is_empty());
    es.finish().await;
}

fn queries(now: u64) -> Vec<SearchQuery> {
    let q = |f: &dyn Fn(&mut SearchQuery)| {
        let mut q = SearchQuery {
            limit: 1000,
            ..Default::default()
        };
        f(&mut q);
        q
    };
    let tag = |k: &str, v: &str| (k.to_string(), v.to_string());
    let mut out = vec![
        q(&|_| {}),
        q(&|q| q.service = Some("api".into())),
        q(&|q| q.service = Some("nope".into())),
        q(&|q| q.operation = Some("GET /a".into())),
        q(&|q| {
            q.service = Some("db".into());
            q.operation = Some("query".into());
        }),
        q(&|q| q.span_kind = Some(SpanKind::Client)),
        q(&|q| q.min_duration_ns = Some(5_000_000)),
        q(&|q| q.max_duration_ns = Some(3_000_000)),
        q(&|q| {
            q.min_duration_ns = Some(2_000_000);
            q.max_duration_ns = Some(4_000_000);
        }),
        q(&|q| q.start_ns = Some(now - 20 * HOUR)),
        q(&|q| {
            q.start_ns = Some(now - 30 * HOUR);
            q.end_ns = Some(now - 10 * HOUR);
        }),
        q(&|q| q.end_ns = Some(now - 26 * HOUR)),
        q(&|q| q.limit = 3),
        q(&|q| {
            q.service = Some("web".into());
            q.limit = 5;
        }),
        q(&|q| q.limit = 0),
    ];
    // Every allow-listed tag used by the data, an unlisted one, resource
    // tags and the pseudo-tags.
    for t in [
        tag("http.method", "POST"),
        tag("http.status_code", "404"),
        tag("user_id", "u3"),
        tag("custom.tag", "c2"),
        tag("flag", "true"),
        tag("host.name", "h1"),
        tag("service.name", "db"),
        tag("error", "true"),
        tag("error", "false"),
        tag("span.kind", "server"),
        tag("otel.status_code", "OK"),
        tag("otel.status_code", "UNSET"),
        tag("custom.tag", "missing"),
    ] {
        out.push(q(&|q| q.tags = vec![t.clone()]));
    }
    out.push(q(&|q| {
        q.service = Some("api".into());
        q.tags = vec![tag("http.method", "GET"), tag("custom.tag", "c0")];
        q.min_duration_ns = Some(1_000_000);
    }));
    out
}

#[actix_rt::test]
async fn search_agrees_with_memory_store() {
    // Several shards with trace-id routing: collapse and trace fetch must
    // still see every span.
    let es = Tier::start_with("search", |cfg| ElasticsearchConfig {
        route_by_trace_id: true,
        number_of_shards: 3,
        ..cfg
    })
    .await;
    let store = &es.store;
    let now = now_ns();
    let spans = es::dataset(now, 120);
    let mem = memory_with(spans.clone()).await;
    for chunk in spans.chunks(50) {
        es.writer.write(chunk.to_vec()).await.expect("write");
    }
    es.wait_indexed(spans.len() as u64).await;

    for q in queries(now) {
        let want = mem.search(&q).await.unwrap();
        let got = store.search(&q).await.expect("search");
        assert_eq!(got, want, "query {q:?}");
        if q.limit == 1000
            && q.service.as_deref() != Some("nope")
            && q.tags.iter().all(|t| t.1 != "missing")
        {
            assert!(!want.is_empty(), "query should match something: {q:?}");
        }
    }
    for t in spans.iter().step_by(9).map(|s| s.trace_id) {
        let mut got = store.trace(t).await.expect("trace");
        let mut want = mem.trace(t).await.unwrap();
        got.sort_by_key(|s| s.span_id);
        want.sort_by_key(|s| s.span_id);
        assert_eq!(got, want);
    }
    assert_eq!(
        store.services().await.unwrap(),
        mem.services().await.unwrap()
    );
    for svc in [None, Some("api"), Some("nope")] {
        assert_eq!(
            store.operations(svc).await.unwrap(),
            mem.operations(svc).await.unwrap(),
            "{svc:?}"
        );
    }

    // Scan returns exactly the matching spans, page by page.
    let q = SearchQuery {
        service: Some("api".into()),
        limit: 1,
        ..Default::default()
    };
    let scanned = scan_all(store.as_ref(), &q, 7).await;
    let key = |s: &Span| (s.trace_id, s.span_id);
    let got: BTreeSet<_> = scanned.iter().map(key).collect();
    let want: BTreeSet<_> = spans.iter().filter(|s| q.matches(s)).map(key).collect();
    assert_eq!(scanned.len(), want.len(), "scan repeated or skipped spans");
    assert_eq!(got, want);
    assert!(store.scan(&q, Some("not a cursor"), 7).await.is_err());
    es.finish().await;
}

#[actix_rt::test]
async fn many_distinct_keys_do_not_explode_the_mapping() {
    let es = Tier::start("keys").await;
    let now = now_ns();
    // 200 spans × 10 keys = 2,000 distinct attribute keys.
    let spans: Vec<Span> = (0..200u64)
        .map(|i| Span {
            trace_id: TraceId([(i % 251) as u8 + 1; 16]),
            span_id: SpanId((i + 1).to_be_bytes()),
            name: "op".into(),
            start_ns: now - HOUR + i,
            end_ns: now - HOUR + i + 10,
            attributes: (0..10)
                .map(|k| KeyValue::new(format!("key.{i}.{k}"), AttrValue::Int((i * 10 + k) as i64)))
                .collect(),
            resource: es::resource("many", vec![]),
            ..Default::default()
        })
        .collect();
    es.writer.write(spans.clone()).await.expect("write");
    es.wait_indexed(200).await;

    let pattern = format!("{}-spans-*", es.prefix);
    let resp = es
        .store
        .client()
        .indices()
        .get_mapping(IndicesGetMappingParts::Index(&[&pattern]))
        .send()
        .await
        .unwrap();
    let mappings: Value = resp.json().await.unwrap();
    fn leaf_fields(v: &Value) -> usize {
        v.get("properties")
            .and_then(Value::as_object)
            .map_or(1, |p| p.values().map(leaf_fields).sum())
    }
    for (name, m) in mappings.as_object().unwrap() {
        let n = leaf_fields(&m["mappings"]);
        assert!(n < 40, "index {name} has {n} mapped fields: {m}");
    }
    for s in spans.iter().step_by(13) {
        let k = &s.attributes[7];
        let q = SearchQuery {
            tags: vec![(k.key.clone(), k.value.as_text())],
            limit: 10,
            ..Default::default()
        };
        let hits = es.store.search(&q).await.unwrap();
        assert_eq!(hits.len(), 1, "{q:?}");
        assert_eq!(hits[0].trace_id, s.trace_id);
        assert_eq!(hits[0].start_ns, s.start_ns);
    }
    es.finish().await;
}

#[actix_rt::test]
async fn conformance_suite() {
    let es = Tier::start("conformance").await;
    // One document per (daily index, trace id, span id): redelivered spans
    // overwrite their document.
    let docs: BTreeSet<_> = fixtures::load_all()
        .iter()
        .map(|s| {
            (
                strand::elasticsearch::daily_index(&es.prefix, s.start_ns),
                s.trace_id,
                s.span_id,
            )
        })
        .collect();
    let n = docs.len() as u64;
    let tier = &es;
    common::conformance::run(es.writer.clone(), es.store.clone(), |_| async move {
        tier.wait_indexed(n).await
    })
    .await;
    es.finish().await;
}
