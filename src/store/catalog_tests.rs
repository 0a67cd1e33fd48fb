//! The hot store's tag catalog and dependency edges: counted on write,
//! kept through sealing, rebuilt by WAL replay, selected by window.

use std::sync::Arc;

use super::hot::{Batch, HotStore};
use super::testutil::span;
use crate::config::{IndexConfig, StorageConfig};
use crate::model::catalog::{EdgeCounts, Graph};
use crate::model::Span;

fn open(dir: &std::path::Path) -> Arc<HotStore> {
    let cfg = StorageConfig {
        dir: dir.to_path_buf(),
        ..Default::default()
    };
    HotStore::open(&cfg, &IndexConfig::default()).unwrap()
}

/// Trace `t`: a root in `parent_svc` and one child of it in `child_svc`.
fn call(t: u64, parent_svc: &str, child_svc: &str) -> (Span, Span) {
    (
        span(t, 0, parent_svc, "root"),
        span(t, 1, child_svc, "work"),
    )
}

const ALL: (u64, u64) = (0, 120_000_000_000);

fn edge(g: &Graph, p: &str, c: &str) -> Option<EdgeCounts> {
    g.edges.get(&(p.to_string(), c.to_string())).copied()
}

#[test]
fn edges_resolve_across_segments_and_survive_seal_and_replay() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let (p1, c1) = call(1, "front", "api");
    let (p2, c2) = call(2, "front", "api");
    // Parent before child, across a rotation; child before parent.
    store.commit(0, vec![Batch::new(vec![p1])]).unwrap();
    let frozen = store.rotate(0).unwrap().unwrap();
    store.commit(0, vec![Batch::new(vec![c1, c2])]).unwrap();
    store.commit(0, vec![Batch::new(vec![p2])]).unwrap();
    let want = Some(EdgeCounts {
        calls: 2,
        errors: 0,
    });
    assert_eq!(
        edge(&store.dependencies_sync(ALL.0, ALL.1), "front", "api"),
        want
    );
    store.seal(&frozen).unwrap().unwrap();
    assert_eq!(
        edge(&store.dependencies_sync(ALL.0, ALL.1), "front", "api"),
        want
    );
    drop(store);
    // The active segment's WAL is replayed: the edge of trace 2 (both
    // spans in it) comes back; trace 1's parent is sealed, out of the
    // replayed cache, so its edge is the documented loss of a restart.
    let store = open(dir.path());
    assert_eq!(
        edge(&store.dependencies_sync(ALL.0, ALL.1), "front", "api"),
        Some(EdgeCounts {
            calls: 1,
            errors: 0
        }),
        "rebuilt by replay, less the call whose parent was sealed"
    );
    let later = 3 * 60_000_000_000;
    assert!(store.dependencies_sync(later, later * 2).edges.is_empty());
}

#[test]
fn catalog_lists_services_names_and_attributes_of_the_window() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let (p, c) = call(1, "front", "api");
    store.commit(0, vec![Batch::new(vec![p, c])]).unwrap();
    let frozen = store.rotate(0).unwrap().unwrap();
    store.seal(&frozen).unwrap();
    let mut late = span(9, 0, "late", "tick");
    late.start_ns = 10_000_000_000_000;
    late.end_ns = late.start_ns + 1;
    store.commit(0, vec![Batch::new(vec![late])]).unwrap();
    let cat = store.tag_catalog_sync(ALL.0, ALL.1);
    assert_eq!(cat.services.keys().collect::<Vec<_>>(), ["api", "front"]);
    assert!(cat.services["front"].values.contains_key("root"));
    assert!(cat.span["user_id"].values.contains_key("u0"));
    assert!(cat.root_services.values.contains_key("front"));
    assert!(!cat.root_services.values.contains_key("api"));
    let all = store.tag_catalog_sync(0, u64::MAX);
    assert!(all.services.contains_key("late"));
    // Sealing more changes the cached answer of the same window.
    let (p, c) = call(2, "billing", "api");
    store.commit(0, vec![Batch::new(vec![p, c])]).unwrap();
    let frozen = store.rotate(0).unwrap().unwrap();
    store.seal(&frozen).unwrap();
    assert!(store
        .tag_catalog_sync(ALL.0, ALL.1)
        .services
        .contains_key("billing"));
    let g = store.dependencies_sync(ALL.0, ALL.1);
    assert_eq!(edge(&g, "billing", "api").map(|e| e.calls), Some(1));
    assert_eq!(edge(&g, "front", "api").map(|e| e.calls), Some(1));
}
