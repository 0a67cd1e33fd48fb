//! The library's stores as the tests use them, named in one place.

use std::path::Path;

use strand::config::StorageConfig;
use strand::model::{SearchQuery, Span};
use strand::model::{SpanReader, SpanWriter};

pub use strand::tiers::memory::MemoryStore;
// Re-exported for the binaries that use them; unused in the others.
#[allow(unused_imports)]
pub use strand::store::HotStore;
#[allow(unused_imports)]
pub use strand::tiers::TieredReader;

/// A reference store holding `spans`.
pub async fn memory_with(spans: Vec<Span>) -> MemoryStore {
    let store = MemoryStore::new();
    store.write(spans).await.expect("MemoryStore write");
    store
}

/// Hot-store settings with the data under `dir`, defaults otherwise.
pub fn storage(dir: &Path) -> StorageConfig {
    StorageConfig {
        dir: dir.to_path_buf(),
        ..Default::default()
    }
}

/// Every span `q` matches, scanned `page` at a time; each page must
/// respect the page size.
pub async fn scan_all(reader: &dyn SpanReader, q: &SearchQuery, page: usize) -> Vec<Span> {
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..100_000 {
        let p = reader
            .scan(q, cursor.as_deref(), page)
            .await
            .expect("scan page");
        assert!(p.spans.len() <= page, "page size is honoured");
        out.extend(p.spans);
        match p.next {
            Some(c) => cursor = Some(c),
            None => return out,
        }
    }
    panic!("scan did not end after 100000 pages");
}
