//! strand: a distributed-tracing backend. See docs/ARCHITECTURE.md.

pub mod actors;
pub mod config;
pub mod elasticsearch;
pub mod error;
pub mod export;
pub mod index;
pub mod ingest;
pub mod kafka;
pub mod loadgen;
pub mod metrics;
pub mod model;
pub mod otlp;
pub mod query;
pub mod sampling;
pub mod scrub;
pub mod serve;
pub mod store;
pub mod ui;
