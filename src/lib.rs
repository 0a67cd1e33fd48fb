//! strand: a distributed-tracing backend. See docs/ARCHITECTURE.md.

pub mod actors;
pub mod config;
pub mod elasticsearch;
pub mod error;
pub mod index;
pub mod ingest;
pub mod kafka;
pub mod metrics;
pub mod model;
pub mod otlp;
pub mod query;
pub mod sampling;
pub mod scrub;
pub mod store;
