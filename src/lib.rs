//! strand: a distributed-tracing backend. See docs/ARCHITECTURE.md.
//!
//! In the order data flows: `ingest` (OTLP servers) → `actors` (the
//! supervision tree, receiver pool, hot writer) → `pipeline` (validate,
//! scrub, sample, meter) → `kafka` (optional buffer) → `tiers` (composed
//! storage) → `store` + `index` (hot store), `elasticsearch` (search tier)
//! → `query`, `ui`, `export` (reads). `model`, `error`, `config`,
//! `metrics` and `backoff` are the shared vocabulary; `serve` is the
//! composition root.

pub mod actors;
pub mod backoff;
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
pub mod pipeline;
pub mod query;
pub mod security;
pub mod selftrace;
pub mod serve;
pub mod spanmetrics;
pub mod store;
pub mod strategies;
pub mod tailsampling;
pub mod tiers;
pub mod ui;
