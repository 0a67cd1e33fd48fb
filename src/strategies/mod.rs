//! Remote sampling (Jaeger protocol) and adaptive sampling: the strategies
//! SDKs poll (`GET /sampling?service=`, `/api/sampling` on the query port,
//! gRPC `jaeger.api_v2.SamplingManager`), loaded from a Jaeger strategies
//! file that is reloaded on change, with adaptive per-operation
//! probabilities computed from span metrics. See docs/SAMPLING.md.

pub mod config;
pub mod model;
pub mod store;
