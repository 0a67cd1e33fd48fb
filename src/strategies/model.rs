//! Jaeger's sampling-strategy types: the answer (the JSON mapping of
//! `jaeger.api_v2.SamplingStrategyResponse`, camelCase, as Jaeger's
//! `/sampling` endpoint and the OpenTelemetry SDKs' jaeger_remote samplers
//! read it) and the strategies file (`default_strategy`,
//! `service_strategies`, `operation_strategies`, `type`, `param`).

use serde::{Deserialize, Serialize};

/// `strategyType`: serialized by name, as the proto JSON mapping does.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum StrategyType {
    Probabilistic,
    RateLimiting,
}

#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Probabilistic {
    pub sampling_rate: f64,
}

#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RateLimiting {
    pub max_traces_per_second: i32,
}

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct OperationStrategy {
    pub operation: String,
    pub probabilistic_sampling: Probabilistic,
}

/// Every field is always written: some SDKs (the OpenTelemetry Rust one)
/// require all four, although the proto mapping may omit zeros.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PerOperation {
    pub default_sampling_probability: f64,
    pub default_lower_bound_traces_per_second: f64,
    pub per_operation_strategies: Vec<OperationStrategy>,
    pub default_upper_bound_traces_per_second: f64,
}

/// The answer for one service. `strategyType` is always present; the
/// other fields only when set (per-operation answers also carry the
/// service-wide probabilistic strategy, for SDKs that ignore them).
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Response {
    pub strategy_type: StrategyType,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub probabilistic_sampling: Option<Probabilistic>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate_limiting_sampling: Option<RateLimiting>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub operation_sampling: Option<PerOperation>,
}

impl Response {
    pub fn probabilistic(rate: f64) -> Response {
        Response {
            strategy_type: StrategyType::Probabilistic,
            probabilistic_sampling: Some(Probabilistic {
                sampling_rate: rate,
            }),
            rate_limiting_sampling: None,
            operation_sampling: None,
        }
    }

    pub fn rate_limiting(per_sec: i32) -> Response {
        Response {
            strategy_type: StrategyType::RateLimiting,
            probabilistic_sampling: None,
            rate_limiting_sampling: Some(RateLimiting {
                max_traces_per_second: per_sec,
            }),
            operation_sampling: None,
        }
    }

    /// The service-wide probability (1.0 under a rate limit, which has no
    /// probability of its own).
    pub fn default_probability(&self) -> f64 {
        match (&self.operation_sampling, &self.probabilistic_sampling) {
            (Some(o), _) => o.default_sampling_probability,
            (None, Some(p)) => p.sampling_rate,
            (None, None) => 1.0,
        }
    }
}

/// `type` in the strategies file.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum FileType {
    Probabilistic,
    Ratelimiting,
}

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct FileOperation {
    pub operation: String,
    #[serde(rename = "type")]
    pub kind: FileType,
    pub param: f64,
}

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct FileStrategy {
    #[serde(default)]
    pub service: String,
    #[serde(rename = "type")]
    pub kind: FileType,
    pub param: f64,
    #[serde(default)]
    pub operation_strategies: Vec<FileOperation>,
}

#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct StrategiesFile {
    #[serde(default)]
    pub default_strategy: Option<FileStrategy>,
    #[serde(default)]
    pub service_strategies: Vec<FileStrategy>,
}
