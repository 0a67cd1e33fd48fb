use std::collections::{HashMap, HashSet};

use rand::rngs::StdRng;
use rand::SeedableRng;

use super::*;

const ERROR: i32 = pt::status::StatusCode::Error as i32;

fn attr<'a>(s: &'a pt::Span, key: &str) -> Option<&'a pc::any_value::Value> {
    s.attributes
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_ref())
        .and_then(|v| v.value.as_ref())
}

fn traces(n: usize, seed: u64) -> Vec<Vec<GenSpan>> {
    let shop = Shop::new();
    let mut rng = StdRng::seed_from_u64(seed);
    (0..n)
        .map(|k| shop.trace(&mut rng, 1_700_000_000_000_000_000 + k as u64 * MS))
        .collect()
}

#[test]
fn every_trace_is_a_tree_rooted_at_the_frontend() {
    let mut kinds = HashSet::new();
    let mut services = HashSet::new();
    for t in traces(3_000, 1) {
        let by_id: HashMap<&[u8], usize> = t
            .iter()
            .enumerate()
            .map(|(i, g)| (g.span.span_id.as_slice(), i))
            .collect();
        assert_eq!(by_id.len(), t.len(), "span ids are unique within a trace");
        let roots: Vec<&GenSpan> = t
            .iter()
            .filter(|g| g.span.parent_span_id.is_empty())
            .collect();
        assert_eq!(roots.len(), 1);
        assert_eq!(SERVICES[roots[0].service].0, "frontend");
        assert_eq!(roots[0].span.kind, SpanKind::Server as i32);
        let mut has_children = HashSet::new();
        for g in &t {
            let s = &g.span;
            assert_eq!(s.trace_id, t[0].span.trace_id);
            assert!(s.end_time_unix_nano >= s.start_time_unix_nano);
            kinds.insert(s.kind);
            services.insert(g.service);
            // Walking up reaches the root in fewer steps than there are spans: no cycle.
            let mut cur = s;
            for _ in 0..t.len() {
                if cur.parent_span_id.is_empty() {
                    break;
                }
                let p = &t[by_id[cur.parent_span_id.as_slice()]].span;
                assert!(
                    s.start_time_unix_nano >= p.start_time_unix_nano,
                    "{} before its ancestor",
                    s.name
                );
                cur = p;
            }
            assert!(
                cur.parent_span_id.is_empty(),
                "{} does not reach the root",
                s.name
            );
            if !s.parent_span_id.is_empty() {
                has_children.insert(s.parent_span_id.clone());
            }
        }
        for g in &t {
            let s = &g.span;
            let db = attr(s, "db.system");
            if db.is_some() {
                assert_eq!(s.kind, SpanKind::Client as i32, "{}", s.name);
                assert!(
                    !has_children.contains(&s.span_id),
                    "database spans are leaves"
                );
            }
            if s.kind == SpanKind::Server as i32 && !s.parent_span_id.is_empty() {
                let p = &t[by_id[s.parent_span_id.as_slice()]];
                assert_eq!(
                    p.span.kind,
                    SpanKind::Client as i32,
                    "a server span answers a client span"
                );
                assert_ne!(p.service, g.service, "calls cross services");
            }
            if s.kind == SpanKind::Consumer as i32 {
                let p = &t[by_id[s.parent_span_id.as_slice()]].span;
                assert_eq!(p.kind, SpanKind::Producer as i32);
                assert!(
                    s.start_time_unix_nano >= p.end_time_unix_nano,
                    "consumed after it was sent"
                );
            }
        }
    }
    for k in [
        SpanKind::Server,
        SpanKind::Client,
        SpanKind::Internal,
        SpanKind::Producer,
        SpanKind::Consumer,
    ] {
        assert!(kinds.contains(&(k as i32)), "{k:?} spans occur");
    }
    assert_eq!(services.len(), SERVICES.len(), "every service takes part");
}

#[test]
fn trace_ids_are_random_and_never_repeat() {
    let ids: Vec<Vec<u8>> = traces(10_000, 2)
        .iter()
        .map(|t| t[0].span.trace_id.clone())
        .collect();
    assert!(ids.iter().all(|id| id.len() == 16));
    assert_eq!(ids.iter().collect::<HashSet<_>>().len(), ids.len());
    // Both halves vary (not a counter in one half, not a fixed prefix).
    assert_eq!(
        ids.iter().map(|id| &id[..8]).collect::<HashSet<_>>().len(),
        ids.len()
    );
    assert_eq!(
        ids.iter().map(|id| &id[8..]).collect::<HashSet<_>>().len(),
        ids.len()
    );
    // Consecutive ids are not sequential.
    let close = ids
        .windows(2)
        .filter(|w| {
            let a = u128::from_be_bytes(w[0].clone().try_into().unwrap());
            let b = u128::from_be_bytes(w[1].clone().try_into().unwrap());
            a.abs_diff(b) < 1 << 64
        })
        .count();
    assert_eq!(close, 0);
    // Two generators seeded differently (as every demo run is) differ.
    assert_ne!(
        traces(1, 3)[0][0].span.trace_id,
        traces(1, 4)[0][0].span.trace_id
    );
}

#[test]
fn declines_and_slow_quotes_happen_at_their_rates() {
    let (mut charges, mut declined, mut quotes, mut slow) = (0, 0, 0, 0);
    let (mut failed_roots, mut checkouts) = (0, 0);
    for t in traces(20_000, 5) {
        let root = t.iter().find(|g| g.span.parent_span_id.is_empty()).unwrap();
        let root_failed = root.span.status.as_ref().is_some_and(|s| s.code == ERROR);
        if root.span.name == "POST /api/checkout" {
            checkouts += 1;
        }
        let mut declined_here = false;
        for g in &t {
            let s = &g.span;
            let server = s.kind == SpanKind::Server as i32;
            if server && s.name.ends_with("/Charge") {
                charges += 1;
                if s.status.as_ref().is_some_and(|st| st.code == ERROR) {
                    declined += 1;
                    declined_here = true;
                    assert!(s.events.iter().any(|e| e.name == "exception"));
                }
            }
            if server && s.name.ends_with("/GetQuote") {
                quotes += 1;
                if s.end_time_unix_nano - s.start_time_unix_nano > 250 * MS {
                    slow += 1;
                }
            }
        }
        assert_eq!(
            root_failed, declined_here,
            "a decline, and only a decline, fails the request"
        );
        if root_failed {
            failed_roots += 1;
            assert!(
                !t.iter().any(|g| g.span.name == "orders publish"),
                "no confirmation for a declined order"
            );
        }
    }
    assert!(checkouts > 3_000, "{checkouts} checkouts");
    let decline_rate = declined as f64 / charges as f64;
    assert!(
        (0.01..0.03).contains(&decline_rate),
        "decline rate {decline_rate} of {charges}"
    );
    let slow_rate = slow as f64 / quotes as f64;
    assert!(
        (0.005..0.02).contains(&slow_rate),
        "slow quote rate {slow_rate} of {quotes}"
    );
    assert_eq!(failed_roots, declined);
}

#[test]
fn requests_group_spans_by_service_with_resources() {
    let shop = Shop::new();
    let ts = traces(50, 6);
    let n: usize = ts.iter().map(Vec::len).sum();
    let req = shop.request(ts);
    let mut seen = 0;
    for rs in &req.resource_spans {
        let res = rs.resource.as_ref().unwrap();
        let name = res
            .attributes
            .iter()
            .find(|kv| kv.key == "service.name")
            .unwrap();
        let Some(pc::any_value::Value::StringValue(name)) =
            name.value.as_ref().and_then(|v| v.value.as_ref())
        else {
            panic!("service.name is a string");
        };
        assert!(SERVICES.iter().any(|(s, _)| s == name));
        seen += rs.scope_spans.iter().map(|s| s.spans.len()).sum::<usize>();
    }
    assert_eq!(seen, n);
    let systems: HashSet<String> = req
        .resource_spans
        .iter()
        .flat_map(|r| &r.scope_spans)
        .flat_map(|s| &s.spans)
        .filter_map(|s| match attr(s, "db.system") {
            Some(pc::any_value::Value::StringValue(v)) => Some(v.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(
        systems,
        HashSet::from(["redis".to_string(), "postgresql".to_string()])
    );
}
