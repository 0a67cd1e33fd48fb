//! Config of the sampling features beyond the global ratio: per-service
//! and per-operation ratio rules, the remote sampling endpoint and
//! adaptive sampling. Referenced from `config::SamplingConfig`.

use serde::{Deserialize, Serialize};
use std::path::PathBuf;

use crate::error::{Error, Result};

/// `[[sampling.rules]]`: a head-sampling ratio for one service, or one
/// operation (span name) of it. The most specific rule wins.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SamplingRule {
    pub service: String,
    /// Empty (or absent): every operation of the service.
    #[serde(default)]
    pub operation: String,
    pub ratio: f64,
}

/// `[sampling.remote]`: the Jaeger remote-sampling endpoint.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct RemoteConfig {
    /// `GET /sampling?service=` (Jaeger's HTTP sampling port); empty
    /// turns it off. The query port serves `/api/sampling` either way.
    pub http_addr: String,
    /// gRPC `jaeger.api_v2.SamplingManager`; empty turns it off.
    pub grpc_addr: String,
    /// Jaeger strategies JSON (`default_strategy`, `service_strategies`);
    /// empty serves the `[sampling]` ratio and rules as strategies.
    pub strategies_file: PathBuf,
    /// How often the file's modification time is checked.
    pub reload_interval_ms: u64,
}

impl Default for RemoteConfig {
    fn default() -> Self {
        RemoteConfig {
            http_addr: "0.0.0.0:5778".into(),
            grpc_addr: "0.0.0.0:5779".into(),
            strategies_file: PathBuf::new(),
            reload_interval_ms: 2_000,
        }
    }
}

/// `[sampling.adaptive]`: per-operation probabilities from span metrics.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct AdaptiveConfig {
    /// Recompute per-operation probabilities from the span metrics of all
    /// traffic and serve (and, by default, apply) them.
    pub enabled: bool,
    /// Traces per second to keep per (service, entry operation).
    pub target_traces_per_sec: f64,
    /// How often probabilities are recomputed.
    pub interval_ms: u64,
    /// No operation goes below this probability, so rare ones stay visible.
    pub min_probability: f64,
    /// Published as `defaultLowerBoundTracesPerSecond` (per SDK instance).
    pub lower_bound_traces_per_sec: f64,
    /// Weight of the newest interval's rate in the smoothed rate (0..=1].
    pub smoothing: f64,
    /// Apply the probabilities in the receivers (true), or only publish
    /// them for SDKs that sample at the edge (false: the arriving rate is
    /// then already sampled, and the controller compensates for it).
    pub apply_at_receiver: bool,
    /// Base URLs whose span metrics hold every receiver's traffic (the
    /// writers, or a query node, in Kafka mode); empty reads this node's
    /// own metrics store.
    pub metrics_peers: Vec<String>,
}

impl Default for AdaptiveConfig {
    fn default() -> Self {
        AdaptiveConfig {
            enabled: false,
            target_traces_per_sec: 10.0,
            interval_ms: 10_000,
            min_probability: 0.001,
            lower_bound_traces_per_sec: 0.1,
            smoothing: 0.5,
            apply_at_receiver: true,
            metrics_peers: Vec::new(),
        }
    }
}

fn ratio_ok(r: f64) -> bool {
    (0.0..=1.0).contains(&r)
}

/// Checks the three sections, naming the offending key.
pub fn validate(rules: &[SamplingRule], remote: &RemoteConfig, a: &AdaptiveConfig) -> Result<()> {
    let mut seen = std::collections::HashSet::new();
    for (i, r) in rules.iter().enumerate() {
        let key = format!("sampling.rules[{i}]");
        if r.service.is_empty() {
            return Err(Error::config(format!("{key}.service"), "must not be empty"));
        }
        if !ratio_ok(r.ratio) {
            return Err(Error::config(
                format!("{key}.ratio"),
                "must be between 0.0 and 1.0",
            ));
        }
        if !seen.insert((r.service.as_str(), r.operation.as_str())) {
            return Err(Error::config(
                key,
                format!("duplicate rule for {:?} {:?}", r.service, r.operation),
            ));
        }
    }
    for (key, addr) in [
        ("sampling.remote.http_addr", &remote.http_addr),
        ("sampling.remote.grpc_addr", &remote.grpc_addr),
    ] {
        if !addr.is_empty() {
            addr.parse::<std::net::SocketAddr>()
                .map_err(|e| Error::config(key, format!("{addr:?}: {e}")))?;
        }
    }
    if !(100..=3_600_000).contains(&remote.reload_interval_ms) {
        return Err(Error::config(
            "sampling.remote.reload_interval_ms",
            "must be between 100 and 3600000",
        ));
    }
    if !(a.target_traces_per_sec.is_finite() && a.target_traces_per_sec > 0.0) {
        return Err(Error::config(
            "sampling.adaptive.target_traces_per_sec",
            "must be a positive number",
        ));
    }
    if a.interval_ms < 100 {
        return Err(Error::config(
            "sampling.adaptive.interval_ms",
            "must be at least 100",
        ));
    }
    if !(a.min_probability > 0.0 && a.min_probability <= 1.0) {
        return Err(Error::config(
            "sampling.adaptive.min_probability",
            "must be in (0.0, 1.0]",
        ));
    }
    if !(a.lower_bound_traces_per_sec.is_finite() && a.lower_bound_traces_per_sec >= 0.0) {
        return Err(Error::config(
            "sampling.adaptive.lower_bound_traces_per_sec",
            "must be a non-negative number",
        ));
    }
    if !(a.smoothing > 0.0 && a.smoothing <= 1.0) {
        return Err(Error::config(
            "sampling.adaptive.smoothing",
            "must be in (0.0, 1.0]",
        ));
    }
    for p in &a.metrics_peers {
        if !(p.starts_with("http://") || p.starts_with("https://")) {
            return Err(Error::config(
                "sampling.adaptive.metrics_peers",
                format!("{p:?} is not an http(s) base URL"),
            ));
        }
    }
    Ok(())
}
