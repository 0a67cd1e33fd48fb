//! The conformance suite against the hot store: once while the spans sit in
//! the active segment (WAL + memory), once after they were sealed into an
//! mmapped Arrow segment with its persisted roaring index.

mod common;

use std::path::Path;
use std::sync::Arc;

use strand::actors::writer::{start_hot_writer, HotWriterHandle};
use strand::config::IndexConfig;

use common::store::{storage, HotStore};

/// A hot store with its data under `dir`, and its writer.
fn open(dir: &Path) -> (Arc<HotStore>, HotWriterHandle) {
    let cfg = storage(dir);
    let store = HotStore::open(&cfg, &IndexConfig::default()).unwrap();
    let writer = start_hot_writer(store.clone(), None);
    (store, writer)
}

#[actix_rt::test]
async fn active_segment_passes_the_suite() {
    let dir = tempfile::tempdir().unwrap();
    let (store, writer) = open(dir.path());
    let spans = common::conformance::run(Arc::new(writer), store.clone(), |_| async {}).await;
    common::conformance::check_per_service_complete(store.as_ref(), &spans).await;
}

#[actix_rt::test]
async fn sealed_segment_passes_the_suite() {
    let dir = tempfile::tempdir().unwrap();
    let (store, writer) = open(dir.path());
    let sealer = writer.clone();
    let spans = common::conformance::run(Arc::new(writer), store.clone(), |_| async move {
        let sealed = sealer.seal_now().await.expect("seal");
        assert!(
            !sealed.is_empty(),
            "the fixtures were sealed into a segment"
        );
    })
    .await;
    common::conformance::check_per_service_complete(store.as_ref(), &spans).await;
}
