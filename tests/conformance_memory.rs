//! The conformance suite against the reference tier itself, so a wrong
//! expectation in the suite shows up here first.

mod common;

use std::sync::Arc;

use strand::tiers::memory::MemoryStore;

#[actix_rt::test]
async fn reference_tier_passes_the_suite() {
    let store = Arc::new(MemoryStore::new());
    common::conformance::run(store.clone(), store, |_| async {}).await;
}
