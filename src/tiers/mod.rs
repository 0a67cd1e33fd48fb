//! Composing storage tiers behind `SpanReader` / `SpanWriter`: what the
//! query layer reads and what the pipeline writes, built once by
//! [`compose`] from the parts a node runs.
//!
//! - [`fanout`]: a write is durable only once every tier has it.
//! - [`tiered`]: reads merged over tiers, hot first, spans deduplicated;
//!   `PartitionedReader` for tiers holding disjoint traffic (peers).
//! - [`offload`]: hot-store reads run on the blocking pool.
//! - [`secondary`]: a tier that may be down (Elasticsearch) without taking
//!   reads with it.
//! - [`peer`] + [`wire`]: another node's store over `/internal/v1`.
//! - [`memory`]: the reference in-memory tier (tests and the conformance
//!   suite's own check).

pub mod fanout;
pub mod memory;
pub mod offload;
pub mod peer;
pub mod secondary;
pub mod tiered;
pub mod wire;

use std::sync::Arc;

use crate::error::Result;
use crate::model::{SpanReader, SpanWriter};
use crate::store::HotStore;

#[cfg(test)]
pub(crate) mod testutil {
    use crate::model::{Span, SpanId, TraceId};

    /// A bare span of trace `[t; 16]`, id `[s; 8]`, 10 ns long.
    pub fn span(t: u8, s: u8, start: u64) -> Span {
        Span {
            trace_id: TraceId([t; 16]),
            span_id: SpanId([s; 8]),
            start_ns: start,
            end_ns: start + 10,
            ..Default::default()
        }
    }
}

pub use fanout::FanoutWriter;
pub use tiered::TieredReader;

/// What a node runs, before composition.
#[derive(Default)]
pub struct Parts {
    /// The local hot store, read here (writer and query nodes).
    pub hot: Option<Arc<HotStore>>,
    /// Its durable write path (the hot writer), where this node writes.
    pub hot_writer: Option<Arc<dyn SpanWriter>>,
    /// The Elasticsearch tier's reader, when enabled.
    pub elasticsearch: Option<Arc<dyn SpanReader>>,
    /// Its write side, where this node writes.
    pub elasticsearch_writer: Option<Arc<dyn SpanWriter>>,
    /// Query addresses of writer peers to read instead of a local store.
    pub peers: Vec<String>,
}

/// The composed read and write sides.
pub struct Tiers {
    /// What the query layer reads (`None` on a node that stores nothing).
    pub reader: Option<Arc<dyn SpanReader>>,
    /// Durable once every write tier has the spans.
    pub durable: Arc<dyn SpanWriter>,
}

/// Hot store (or peers) first, Elasticsearch as a secondary tier that may
/// be down; writes fan out to every local write tier.
pub fn compose(parts: Parts) -> Result<Tiers> {
    let mut readers: Vec<Arc<dyn SpanReader>> = Vec::new();
    let mut peers: Vec<Arc<dyn SpanReader>> = Vec::new();
    for p in &parts.peers {
        peers.push(Arc::new(peer::PeerReader::new(p, peer::DEFAULT_TIMEOUT)?));
    }
    // Peers hold disjoint traffic (their graphs add up); the other tiers
    // hold copies of the same traffic.
    match peers.len() {
        0 => {}
        1 => readers.extend(peers),
        _ => readers.push(Arc::new(tiered::PartitionedReader(TieredReader(peers)))),
    }
    if let Some(hot) = parts.hot {
        readers.push(Arc::new(offload::OffloadedHotStore(hot)));
    }
    if let Some(es) = parts.elasticsearch {
        readers.push(Arc::new(secondary::SecondaryTier::new("elasticsearch", es)));
    }
    let reader: Option<Arc<dyn SpanReader>> = match readers.len() {
        0 => None,
        1 => readers.pop(),
        _ => Some(Arc::new(TieredReader(readers))),
    };
    let writers: Vec<Arc<dyn SpanWriter>> = parts
        .hot_writer
        .into_iter()
        .chain(parts.elasticsearch_writer)
        .collect();
    Ok(Tiers {
        reader,
        durable: Arc::new(FanoutWriter(writers)),
    })
}
