//! Store-level tests: recovery after crashes, corruption handling,
//! retention, and agreement with the reference `MemoryStore`.

use std::sync::Arc;

use super::hot::{Batch, HotStore};
use super::testutil::span;
use crate::config::{IndexConfig, StorageConfig};
use crate::metrics::{ActorStats, Counter};
use crate::model::*;
use crate::model::{SpanReader, SpanWriter};
use crate::tiers::memory::MemoryStore;

fn cfg(dir: &std::path::Path) -> StorageConfig {
    StorageConfig {
        dir: dir.to_path_buf(),
        ..Default::default()
    }
}

fn open(dir: &std::path::Path) -> Arc<HotStore> {
    HotStore::open(&cfg(dir), &IndexConfig::default()).unwrap()
}

fn spans(trace: u64, n: u64, service: &str) -> Vec<Span> {
    (0..n)
        .map(|i| span(trace, i, service, &format!("op{}", i % 3)))
        .collect()
}

fn count(store: &HotStore) -> usize {
    store
        .scan_sync(&SearchQuery::default(), None, usize::MAX)
        .unwrap()
        .spans
        .len()
}

#[test]
fn acknowledged_unsealed_writes_survive_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    store
        .commit(
            0,
            vec![Batch::new(spans(1, 5, "a")), Batch::new(spans(2, 3, "b"))],
        )
        .unwrap();
    store.rotate(0).unwrap().unwrap(); // frozen, never sealed
    store.commit(0, vec![Batch::new(spans(3, 4, "c"))]).unwrap();
    assert_eq!(
        store
            .trace_sync(spans(1, 1, "a")[0].trace_id)
            .unwrap()
            .len(),
        5
    );
    drop(store); // "SIGKILL": nothing flushed beyond the fsynced WAL
    let store = open(dir.path());
    assert_eq!(
        store.trace_sync(spans(1, 1, "a")[0].trace_id).unwrap(),
        spans(1, 5, "a")
    );
    assert_eq!(
        store.trace_sync(spans(3, 1, "c")[0].trace_id).unwrap(),
        spans(3, 4, "c")
    );
    assert_eq!(count(&store), 12);
    assert_eq!(store.services_sync(), vec!["a", "b", "c"]);
}

#[test]
fn torn_wal_tail_is_truncated_on_open() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    store.commit(0, vec![Batch::new(spans(1, 5, "a"))]).unwrap();
    drop(store);
    let wal = std::fs::read_dir(dir.path().join("wal"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let good = std::fs::metadata(&wal).unwrap().len();
    let torn = Batch::new(spans(9, 5, "x")).record;
    let mut bytes = std::fs::read(&wal).unwrap();
    bytes.extend_from_slice(&torn[..torn.len() - 3]);
    std::fs::write(&wal, bytes).unwrap();
    let store = open(dir.path());
    assert_eq!(count(&store), 5);
    assert_eq!(std::fs::metadata(&wal).unwrap().len(), good);
    // And the store keeps writing after the cut.
    store.commit(0, vec![Batch::new(spans(2, 2, "a"))]).unwrap();
    drop(store);
    assert_eq!(count(&open(dir.path())), 7);
}

#[test]
fn corrupt_sealed_segment_is_quarantined_and_never_served() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let mut ids = Vec::new();
    for t in 1..=2 {
        store.commit(0, vec![Batch::new(spans(t, 4, "a"))]).unwrap();
        let seg = store.rotate(0).unwrap().unwrap();
        ids.push(store.seal(&seg).unwrap().unwrap().id);
    }
    drop(store);
    let bad = dir
        .path()
        .join("segments")
        .join(format!("{:020}.arrow", ids[0]));
    let mut bytes = std::fs::read(&bad).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    std::fs::write(&bad, bytes).unwrap();
    let corrupt = Counter::new("strand_store_corrupt_segments_total", "", &[]);
    let before = corrupt.get();
    let store = open(dir.path());
    assert!(corrupt.get() > before, "corruption counted");
    assert!(!ActorStats::get("hot_store").last_error.lock().is_empty());
    assert_eq!(store.sealed_ids(), vec![ids[1]]);
    assert!(
        store
            .trace_sync(spans(1, 1, "a")[0].trace_id)
            .unwrap()
            .is_empty(),
        "corrupt data not served"
    );
    assert_eq!(
        store
            .trace_sync(spans(2, 1, "a")[0].trace_id)
            .unwrap()
            .len(),
        4,
        "others still served"
    );
    assert!(!bad.exists());
    let q: Vec<_> = std::fs::read_dir(dir.path().join("quarantine"))
        .unwrap()
        .collect();
    assert_eq!(q.len(), 2, "data and index moved aside");
    drop(store);
    // The manifest was rewritten: a second open is clean.
    let n = corrupt.get();
    let store = open(dir.path());
    assert_eq!(corrupt.get(), n);
    assert_eq!(store.sealed_ids(), vec![ids[1]]);
}

#[test]
fn interrupted_seal_is_redone_from_the_wal() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    store.commit(0, vec![Batch::new(spans(1, 6, "a"))]).unwrap();
    let seg = store.rotate(0).unwrap().unwrap();
    // Segment files written, but the process dies before the manifest.
    {
        let g = seg.read();
        super::segment::write(
            &dir.path().join("segments"),
            seg.id,
            &g.spans,
            &g.index.finish(),
        )
        .unwrap();
    }
    drop((store, seg));
    let store = open(dir.path());
    assert!(
        store.sealed_ids().is_empty(),
        "unlisted files are not served"
    );
    assert_eq!(count(&store), 6, "replayed from the WAL");
    let seg = store.frozen().pop().unwrap();
    store.seal(&seg).unwrap().unwrap();
    drop((store, seg));
    let store = open(dir.path());
    assert_eq!(store.sealed_ids().len(), 1);
    assert_eq!(count(&store), 6, "no duplicates");
}

#[test]
fn retention_drops_oldest_over_disk_budget() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = cfg(dir.path());
    let store = HotStore::open(&c, &IndexConfig::default()).unwrap();
    for t in 1..=3 {
        store
            .commit(0, vec![Batch::new(spans(t, 20, "a"))])
            .unwrap();
        let seg = store.rotate(0).unwrap().unwrap();
        store.seal(&seg).unwrap();
    }
    let ids = store.sealed_ids();
    drop(store);
    let one = std::fs::metadata(
        dir.path()
            .join("segments")
            .join(format!("{:020}.arrow", ids[2])),
    )
    .unwrap()
    .len();
    c.max_disk_bytes = one * 2 + one / 2; // room for about two segments
    let store = HotStore::open(&c, &IndexConfig::default()).unwrap();
    // Spans are dated t≈1ms, "now" is t=2ms: all inside retention.
    let gone = store.enforce_retention(2_000_000).unwrap();
    assert_eq!(gone, vec![ids[0]]);
    assert_eq!(store.sealed_ids(), ids[1..].to_vec());
    drop(store);
    assert_eq!(
        open(dir.path()).sealed_ids(),
        ids[1..].to_vec(),
        "manifest updated"
    );
}

/// The hot store answers exactly like the reference tier, whatever mix of
/// sealed, frozen and active segments holds the data.
#[actix_rt::test]
async fn agrees_with_the_memory_store() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let reference = MemoryStore::new();
    let mut all = Vec::new();
    for t in 0..40u64 {
        let mut b = spans(t, 1 + t % 7, ["a", "b", "c"][(t % 3) as usize]);
        if t % 4 == 0 {
            Arc::make_mut(&mut b[0].resource)
                .attributes
                .push(KeyValue::new("error", AttrValue::Str("true".into())));
        }
        all.extend(b.clone());
        reference.write(b.clone()).await.unwrap();
        store.commit(0, vec![Batch::new(b)]).unwrap();
        if t % 10 == 9 {
            let seg = store.rotate(0).unwrap().unwrap();
            if t < 25 {
                store.seal(&seg).unwrap();
            }
        }
    }
    assert!(!store.sealed_ids().is_empty() && !store.frozen().is_empty());
    let queries = vec![
        SearchQuery {
            limit: 100,
            ..Default::default()
        },
        SearchQuery {
            service: Some("a".into()),
            limit: 5,
            ..Default::default()
        },
        // Small limits: the search stops before the older segments, which
        // must not change the answer (segment time ranges overlap here).
        SearchQuery {
            limit: 1,
            ..Default::default()
        },
        SearchQuery {
            limit: 3,
            ..Default::default()
        },
        SearchQuery {
            service: Some("c".into()),
            limit: 2,
            ..Default::default()
        },
        SearchQuery {
            service: Some("b".into()),
            operation: Some("op1".into()),
            limit: 100,
            ..Default::default()
        },
        SearchQuery {
            span_kind: Some(SpanKind::Server),
            limit: 100,
            ..Default::default()
        },
        SearchQuery {
            tags: vec![("http.status_code".into(), "500".into())],
            limit: 100,
            ..Default::default()
        },
        SearchQuery {
            tags: vec![("error".into(), "true".into())],
            limit: 100,
            ..Default::default()
        },
        SearchQuery {
            tags: vec![("error".into(), "false".into())],
            limit: 100,
            ..Default::default()
        },
        SearchQuery {
            tags: vec![("otel.status_code".into(), "ERROR".into())],
            limit: 100,
            ..Default::default()
        },
        SearchQuery {
            tags: vec![("span.kind".into(), "client".into())],
            limit: 100,
            ..Default::default()
        },
        SearchQuery {
            tags: vec![("service.name".into(), "c".into())],
            limit: 100,
            ..Default::default()
        },
        SearchQuery {
            service: Some("a".into()),
            tags: vec![("user_id".into(), "u2".into())],
            min_duration_ns: Some(503),
            limit: 100,
            ..Default::default()
        },
        SearchQuery {
            start_ns: Some(1_003_010),
            end_ns: Some(1_005_020),
            limit: 100,
            ..Default::default()
        },
        SearchQuery {
            service: Some("nope".into()),
            limit: 100,
            ..Default::default()
        },
    ];
    for q in &queries {
        assert_eq!(
            store.search(q).await.unwrap(),
            reference.search(q).await.unwrap(),
            "{q:?}"
        );
    }
    for t in [0u64, 9, 17, 39, 99] {
        let id = spans(t, 1, "a")[0].trace_id;
        assert_eq!(
            store.trace(id).await.unwrap(),
            reference.trace(id).await.unwrap()
        );
    }
    assert_eq!(
        store.services().await.unwrap(),
        reference.services().await.unwrap()
    );
    for svc in [None, Some("a"), Some("zzz")] {
        assert_eq!(
            store.operations(svc).await.unwrap(),
            reference.operations(svc).await.unwrap()
        );
    }
    // Paging through a scan returns every matching span exactly once, in
    // write order.
    for q in &queries {
        let mut got = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let page = store.scan(q, cursor.as_deref(), 7).await.unwrap();
            assert!(page.spans.len() <= 7);
            got.extend(page.spans);
            match page.next {
                Some(c) => cursor = Some(c),
                None => break,
            }
        }
        let want: Vec<Span> = all.iter().filter(|s| q.matches(s)).cloned().collect();
        assert_eq!(got, want, "{q:?}");
    }
    assert!(store.scan(&queries[0], Some("garbage"), 5).await.is_err());
    let id = spans(5, 1, "a")[0].trace_id;
    let (lo, hi) = store.trace_bounds(id).unwrap();
    let t = reference.trace(id).await.unwrap();
    assert_eq!(lo, t.iter().map(|s| s.start_ns).min().unwrap());
    assert_eq!(hi, t.iter().map(|s| s.end_ns).max().unwrap());
}

#[test]
fn a_lost_manifest_adopts_verified_segments() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    store.commit(0, vec![Batch::new(spans(1, 4, "a"))]).unwrap();
    let seg = store.rotate(0).unwrap().unwrap();
    store.seal(&seg).unwrap();
    drop((store, seg));
    std::fs::remove_file(dir.path().join("MANIFEST")).unwrap();
    let store = open(dir.path());
    assert_eq!(store.sealed_ids().len(), 1);
    assert_eq!(count(&store), 4);
    drop(store);
    assert_eq!(open(dir.path()).sealed_ids().len(), 1, "manifest rewritten");
}

#[test]
fn too_many_frozen_segments_backlog_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let c = StorageConfig {
        segment_max_spans: 2,
        ..cfg(dir.path())
    };
    let store = HotStore::open(&c, &IndexConfig::default()).unwrap();
    for t in 0..super::hot::MAX_FROZEN as u64 {
        store.commit(0, vec![Batch::new(spans(t, 2, "a"))]).unwrap();
        assert!(store.should_rotate(0));
        assert!(store.rotate(0).unwrap().is_some());
    }
    store
        .commit(0, vec![Batch::new(spans(99, 2, "a"))])
        .unwrap();
    assert!(
        store.is_backlogged(0),
        "writes must be refused, not buffered"
    );
    assert!(
        store.rotate(0).unwrap().is_none(),
        "no fifth frozen segment"
    );
    let seg = store.frozen().remove(0);
    store.seal(&seg).unwrap();
    assert!(!store.is_backlogged(0));
    assert_eq!(count(&store), 2 * (super::hot::MAX_FROZEN + 1));
}

#[test]
fn an_oversized_trace_is_refused_not_loaded() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    // 20 spans sealed, 10 more in the active segment.
    store
        .commit(0, vec![Batch::new(spans(9, 20, "a"))])
        .unwrap();
    let seg = store.rotate(0).unwrap().unwrap();
    store.seal(&seg).unwrap();
    let more: Vec<Span> = (20..30).map(|i| span(9, i, "a", "op")).collect();
    store.commit(0, vec![Batch::new(more)]).unwrap();
    let id = spans(9, 1, "a")[0].trace_id;
    assert_eq!(store.trace_capped(id, 30).unwrap().len(), 30);
    for cap in [29, 15] {
        let e = store.trace_capped(id, cap).unwrap_err();
        assert!(
            matches!(&e, crate::error::Error::TooLarge(m) if m.contains(&cap.to_string())),
            "{e}"
        );
    }
}
