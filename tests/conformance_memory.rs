//! The conformance suite against the reference tier itself, so a wrong
//! expectation in the suite shows up here first.

mod common;

use std::sync::Arc;

use common::store::MemoryStore;

#[actix_rt::test]
async fn reference_tier_passes_the_suite() {
    let store = Arc::new(MemoryStore::new());
    let spans = common::conformance::run(store.clone(), store.clone(), |_| async {}).await;
    common::conformance::check_per_service_complete(store.as_ref(), &spans).await;
}
