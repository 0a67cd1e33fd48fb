//! The trace walk of `search` against the reference tier, over segments
//! whose times overlap, traces split across segments and late spans: the
//! shapes where stopping early is easiest to get wrong.

use std::sync::Arc;

use proptest::prelude::*;

use super::hot::{Batch, HotStore};
use super::testutil::span;
use crate::config::{IndexConfig, StorageConfig};
use crate::model::{SearchQuery, Span, SpanReader, SpanWriter};
use crate::tiers::memory::MemoryStore;

/// (trace, span number, service, start offset) of a written span.
type Write = (u64, u64, usize, u64);

/// Each written span, in write order, and after which writes a segment is
/// rotated (and sealed).
fn layout() -> impl Strategy<Value = (Vec<Write>, Vec<(usize, bool)>)> {
    (
        prop::collection::vec((0u64..30, 0u64..6, 0usize..3, 0u64..2_000), 1..120),
        prop::collection::vec((0usize..120, any::<bool>()), 0..6),
    )
}

fn query() -> impl Strategy<Value = SearchQuery> {
    (
        prop::option::of(0usize..3),
        1usize..12,
        prop::option::of(0u64..2_000),
        prop::option::of(0u64..2_000),
        prop::option::of(400u64..520),
    )
        .prop_map(|(svc, limit, a, b, min_d)| SearchQuery {
            service: svc.map(|s| ["a", "b", "c"][s].to_string()),
            limit,
            start_ns: a.map(|a| 1_000_000 + a),
            end_ns: b.map(|b| 1_000_000 + b + 3_000),
            min_duration_ns: min_d,
            ..Default::default()
        })
}

fn build(
    writes: &[Write],
    cuts: &[(usize, bool)],
) -> (Arc<HotStore>, MemoryStore, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let cfg = StorageConfig {
        dir: dir.path().to_path_buf(),
        ..Default::default()
    };
    let store = HotStore::open(&cfg, &IndexConfig::default()).unwrap();
    let reference = MemoryStore::new();
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    for (n, &(t, i, svc, at)) in writes.iter().enumerate() {
        let mut s: Span = span(t, i, ["a", "b", "c"][svc], "op");
        let d = s.end_ns - s.start_ns;
        s.start_ns = 1_000_000 + at;
        s.end_ns = s.start_ns + d;
        rt.block_on(reference.write(vec![s.clone()])).unwrap();
        store.commit(0, vec![Batch::new(vec![s])]).unwrap();
        for &(after, seal) in cuts {
            if after == n {
                if let Some(seg) = store.rotate(0).unwrap() {
                    if seal {
                        store.seal(&seg).unwrap();
                    }
                }
            }
        }
    }
    (store, reference, dir)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    #[test]
    fn the_walk_answers_as_the_reference_does((writes, cuts) in layout(), qs in prop::collection::vec(query(), 1..8)) {
        let (store, reference, _dir) = build(&writes, &cuts);
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        for q in &qs {
            let want = rt.block_on(reference.search(q)).unwrap();
            let got = store.search_sync(q).unwrap();
            prop_assert_eq!(got, want, "query {:?}", q);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]
    /// The same spans answer alike while they sit in unsealed (active and
    /// frozen) segments and after every segment is sealed: the in-memory
    /// indexes and the sealed ones must agree.
    #[test]
    fn unsealed_and_sealed_segments_answer_alike((writes, cuts) in layout(), qs in prop::collection::vec(query(), 1..8)) {
        let unsealed_cuts: Vec<(usize, bool)> = cuts.iter().map(|&(n, _)| (n, false)).collect();
        let (store, _reference, _dir) = build(&writes, &unsealed_cuts);
        let before: Vec<_> = qs.iter().map(|q| store.search_sync(q).unwrap()).collect();
        loop {
            for seg in store.frozen() {
                store.seal(&seg).unwrap();
            }
            if store.rotate(0).unwrap().is_none() {
                break;
            }
        }
        prop_assert!(store.frozen().is_empty());
        prop_assert!(!store.sealed_ids().is_empty());
        for (q, want) in qs.iter().zip(&before) {
            let got = store.search_sync(q).unwrap();
            prop_assert_eq!(&got, want, "query {:?}", q);
        }
    }
}
