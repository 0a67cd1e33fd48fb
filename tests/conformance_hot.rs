//! The conformance suite against the hot store: once while the spans sit in
//! the active segment (WAL + memory), once after they were sealed into an
//! mmapped Arrow segment with its persisted roaring index.

mod common;

use std::sync::Arc;

use strand::actors::writer::start_hot_writer;
use strand::config::{IndexConfig, StorageConfig};
use strand::store::HotStore;

fn storage(dir: &std::path::Path) -> StorageConfig {
    StorageConfig {
        dir: dir.to_path_buf(),
        ..Default::default()
    }
}

#[actix_rt::test]
async fn active_segment_passes_the_suite() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = storage(dir.path());
    let store = HotStore::open(&cfg, &IndexConfig::default()).unwrap();
    let writer = start_hot_writer(store.clone(), None);
    common::conformance::run(Arc::new(writer), store, |_| async {}).await;
}

#[actix_rt::test]
async fn sealed_segment_passes_the_suite() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = storage(dir.path());
    let store = HotStore::open(&cfg, &IndexConfig::default()).unwrap();
    let writer = start_hot_writer(store.clone(), None);
    let sealer = writer.clone();
    common::conformance::run(Arc::new(writer), store, |_| async move {
        let sealed = sealer.seal_now().await.expect("seal");
        assert!(
            !sealed.is_empty(),
            "the fixtures were sealed into a segment"
        );
    })
    .await;
}
