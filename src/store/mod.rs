//! The hot store: recent spans in an active in-memory segment with its
//! write-ahead log, frozen segments waiting to be sealed, and sealed,
//! checksummed Arrow IPC segments read through mmap. It knows files and
//! spans only; how tiers are composed and served lives above it
//! (`crate::tiers`, `crate::query`).

pub mod active;
#[cfg(test)]
mod catalog_tests;
pub mod edges;
pub mod format;
pub mod hot;
#[cfg(test)]
mod hot_tests;
pub mod manifest;
mod read;
mod read_catalog;
mod recover;
pub mod rows;
pub mod schema;
mod search;
#[cfg(test)]
mod search_tests;
pub mod segment;
#[cfg(test)]
pub(crate) mod testutil;
pub mod wal;
mod walcodec;

pub use hot::HotStore;
pub use recover::lock_data_dir;
