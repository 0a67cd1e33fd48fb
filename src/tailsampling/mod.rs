//! Tail sampling in the writer, where a whole trace meets (Kafka keys by
//! trace id; the hot store routes a trace to one write shard). Spans wait
//! until their trace is quiet (`decision_wait_ms`, or `settle_ms` once its
//! root arrived, at most `max_trace_age_ms`), then named policies decide
//! keep or drop; later spans follow the cached decision.
//!
//! Durability: a waiting span is acknowledged only once it is in the
//! shard's pending log (`log`), so a crash while its trace waits loses
//! nothing; at start-up the waiting traces are re-read and decided again.
//! See docs/SAMPLING.md for the contract and its trade-offs.

pub mod config;
pub mod log;
pub mod policy;
pub mod quantiles;
pub mod sampler;

use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use config::TailSamplingConfig;
pub use sampler::TailSampler;

/// What the writers need to sample: the config and the shared quantiles.
#[derive(Clone)]
pub struct TailSetup {
    pub cfg: Arc<TailSamplingConfig>,
    pub quantiles: Arc<quantiles::Quantiles>,
}

/// `<data_dir>/tail/<shard>`: one pending log per write shard.
pub fn shard_dir(data_dir: &Path, shard: usize) -> PathBuf {
    data_dir.join("tail").join(shard.to_string())
}

/// Milliseconds on a monotonic clock, for due times.
pub fn now_ms() -> u64 {
    use std::sync::OnceLock;
    use std::time::Instant;
    static START: OnceLock<Instant> = OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_millis() as u64
}
