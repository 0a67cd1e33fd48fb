//! What receivers apply to spans between decoding and writing: validation
//! and truncation, PII scrubbing, head sampling, conversion to the span
//! model (`process`), and per-transport metering (`meter`). Pure CPU work,
//! run on the receiver workers (`crate::actors::receiver`).

pub mod consistent;
pub mod meter;
pub mod process;
pub mod sampling;
pub mod sampling_rules;
pub mod scrub;

pub use meter::{Transport, TransportMetrics};
pub use process::{Processed, Processor};
