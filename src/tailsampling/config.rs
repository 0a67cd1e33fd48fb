//! `[sampling.tail]`: when a trace is complete enough to decide, the memory
//! it may use while waiting, and the named policies. The vocabulary follows
//! the OpenTelemetry Collector's tail_sampling processor (`decision_wait`,
//! `policies` with `name` and `type`, `status_code`, `latency`,
//! `string_attribute`, `probabilistic`, `rate_limiting`, `and`), see
//! docs/SAMPLING.md.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct TailSamplingConfig {
    /// Tail sampling in the writer: spans wait until their trace is
    /// decided by `policies`. Off keeps every span the head sampler kept.
    pub enabled: bool,
    /// A trace is decided once no span of it arrived for this long.
    pub decision_wait_ms: u64,
    /// ...or, once its root span arrived, after this much quiet.
    pub settle_ms: u64,
    /// ...and at the latest this long after its first span, however busy.
    pub max_trace_age_ms: u64,
    /// Bytes of waiting spans; beyond it the oldest traces are decided
    /// early (counted in `strand_tail_early_decisions_total`).
    pub max_pending_bytes: u64,
    /// Decisions remembered (trace id → keep/drop, oldest forgotten first),
    /// so spans arriving after the decision follow it.
    pub decision_cache_size: usize,
    /// How often `latency_quantile` policies re-read the per-operation
    /// histograms of the span metrics.
    pub quantile_refresh_secs: u64,
    /// Evaluated in order; a trace is kept when any policy keeps it (types
    /// and their keys: docs/SAMPLING.md).
    pub policies: Vec<PolicyConfig>,
}

impl Default for TailSamplingConfig {
    fn default() -> Self {
        TailSamplingConfig {
            enabled: false,
            decision_wait_ms: 10_000,
            settle_ms: 2_000,
            max_trace_age_ms: 60_000,
            max_pending_bytes: 256 << 20,
            decision_cache_size: 100_000,
            quantile_refresh_secs: 30,
            policies: Vec::new(),
        }
    }
}

/// One policy. Which keys apply depends on `type`; a key that does not
/// belong to the type is an error, as is a missing required one.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct PolicyConfig {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: String,
    /// `status_code`: e.g. `["ERROR"]` (also `OK`, `UNSET`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status_codes: Option<Vec<String>>,
    /// `latency`: trace duration (first start to last end) at least this.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub threshold_ms: Option<u64>,
    /// `latency_quantile`: the root operation's quantile to exceed (0.99).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub quantile: Option<f64>,
    /// `latency_quantile`: calls the operation needs in the window before
    /// its quantile is trusted (100).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_calls: Option<u64>,
    /// `string_attribute`: span or resource attribute key.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// `string_attribute`: any of these values; absent or empty means the
    /// key being present is enough.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub values: Option<Vec<String>>,
    /// `probabilistic`: percent of traces, by trace id (consistent).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sampling_percentage: Option<f64>,
    /// `rate_limiting`: traces per second per service (of the root span).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub traces_per_second: Option<f64>,
    /// `and`: every sub-policy must keep the trace (evaluated in order,
    /// stopping at the first that does not).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub and_sub_policy: Option<Vec<PolicyConfig>>,
    /// `or`: any sub-policy keeps the trace.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub or_sub_policy: Option<Vec<PolicyConfig>>,
}

pub const TYPES: &[&str] = &[
    "always_sample",
    "status_code",
    "latency",
    "latency_quantile",
    "string_attribute",
    "probabilistic",
    "rate_limiting",
    "and",
    "or",
];

impl TailSamplingConfig {
    /// Checks every key, naming it as `sampling.tail....` in the error.
    /// `span_metrics` tells whether per-operation quantiles exist.
    pub fn validate(&self, span_metrics: bool) -> Result<()> {
        if !self.enabled {
            return Ok(());
        }
        let k = |s: &str| format!("sampling.tail.{s}");
        for (key, v) in [
            ("decision_wait_ms", self.decision_wait_ms),
            ("settle_ms", self.settle_ms),
            ("max_trace_age_ms", self.max_trace_age_ms),
            ("quantile_refresh_secs", self.quantile_refresh_secs),
        ] {
            if v == 0 {
                return Err(Error::config(k(key), "must be positive"));
            }
        }
        if self.max_trace_age_ms < self.decision_wait_ms {
            return Err(Error::config(
                k("max_trace_age_ms"),
                "must be at least sampling.tail.decision_wait_ms",
            ));
        }
        if self.max_pending_bytes < 1 << 20 {
            return Err(Error::config(
                k("max_pending_bytes"),
                "must be at least 1 MiB",
            ));
        }
        if self.decision_cache_size == 0 {
            return Err(Error::config(k("decision_cache_size"), "must be positive"));
        }
        if self.policies.is_empty() {
            return Err(Error::config(
                k("policies"),
                "at least one policy is needed when tail sampling is enabled",
            ));
        }
        let mut names = std::collections::HashSet::new();
        for (i, p) in self.policies.iter().enumerate() {
            let at = k(&format!("policies[{i}]"));
            if !names.insert(p.name.as_str()) {
                return Err(Error::config(
                    format!("{at}.name"),
                    format!("{:?} is used by two policies", p.name),
                ));
            }
            p.validate(&at, span_metrics)?;
        }
        Ok(())
    }
}

impl PolicyConfig {
    fn set_keys(&self) -> Vec<&'static str> {
        let mut out = Vec::new();
        let mut add = |set: bool, name| {
            if set {
                out.push(name)
            }
        };
        add(self.status_codes.is_some(), "status_codes");
        add(self.threshold_ms.is_some(), "threshold_ms");
        add(self.quantile.is_some(), "quantile");
        add(self.min_calls.is_some(), "min_calls");
        add(self.key.is_some(), "key");
        add(self.values.is_some(), "values");
        add(self.sampling_percentage.is_some(), "sampling_percentage");
        add(self.traces_per_second.is_some(), "traces_per_second");
        add(self.and_sub_policy.is_some(), "and_sub_policy");
        add(self.or_sub_policy.is_some(), "or_sub_policy");
        out
    }

    fn validate(&self, at: &str, span_metrics: bool) -> Result<()> {
        if self.name.trim().is_empty() {
            return Err(Error::config(format!("{at}.name"), "required"));
        }
        let at = format!("{at} ({})", self.name);
        let (required, optional): (&[&str], &[&str]) = match self.kind.as_str() {
            "always_sample" => (&[], &[]),
            "status_code" => (&["status_codes"], &[]),
            "latency" => (&["threshold_ms"], &[]),
            "latency_quantile" => (&[], &["quantile", "min_calls"]),
            "string_attribute" => (&["key"], &["values"]),
            "probabilistic" => (&["sampling_percentage"], &[]),
            "rate_limiting" => (&["traces_per_second"], &[]),
            "and" => (&["and_sub_policy"], &[]),
            "or" => (&["or_sub_policy"], &[]),
            other => {
                return Err(Error::config(
                    format!("{at}.type"),
                    format!("unknown policy type {other:?}; one of {}", TYPES.join(", ")),
                ))
            }
        };
        let set = self.set_keys();
        for key in &set {
            if !required.contains(key) && !optional.contains(key) {
                return Err(Error::config(
                    format!("{at}.{key}"),
                    format!("does not apply to type {:?}", self.kind),
                ));
            }
        }
        for key in required {
            if !set.contains(key) {
                return Err(Error::config(
                    format!("{at}.{key}"),
                    format!("required for type {:?}", self.kind),
                ));
            }
        }
        if let Some(codes) = &self.status_codes {
            if codes.is_empty() {
                return Err(Error::config(format!("{at}.status_codes"), "empty"));
            }
            for c in codes {
                if !matches!(c.as_str(), "ERROR" | "OK" | "UNSET") {
                    return Err(Error::config(
                        format!("{at}.status_codes"),
                        format!("{c:?} is not one of ERROR, OK, UNSET"),
                    ));
                }
            }
        }
        if let Some(q) = self.quantile {
            if !(q > 0.0 && q < 1.0) {
                return Err(Error::config(format!("{at}.quantile"), "must be in (0, 1)"));
            }
        }
        if self.kind == "latency_quantile" && !span_metrics {
            return Err(Error::config(
                format!("{at}.type"),
                "latency_quantile needs span_metrics.enabled = true",
            ));
        }
        if self.key.as_deref().is_some_and(|k| k.is_empty()) {
            return Err(Error::config(format!("{at}.key"), "must not be empty"));
        }
        if let Some(p) = self.sampling_percentage {
            if !(0.0..=100.0).contains(&p) {
                return Err(Error::config(
                    format!("{at}.sampling_percentage"),
                    "must be between 0 and 100",
                ));
            }
        }
        if let Some(r) = self.traces_per_second {
            if !(r.is_finite() && r > 0.0) {
                return Err(Error::config(
                    format!("{at}.traces_per_second"),
                    "must be a positive number",
                ));
            }
        }
        for (key, subs) in [
            ("and_sub_policy", &self.and_sub_policy),
            ("or_sub_policy", &self.or_sub_policy),
        ] {
            let Some(subs) = subs else { continue };
            if subs.is_empty() {
                return Err(Error::config(format!("{at}.{key}"), "empty"));
            }
            for (i, s) in subs.iter().enumerate() {
                s.validate(&format!("{at}.{key}[{i}]"), span_metrics)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn load(tail: &str) -> Result<Config> {
        Config::from_sources(&format!("[sampling.tail]\nenabled = true\n{tail}"), &[])
    }

    #[test]
    fn a_full_policy_set_loads() {
        let c = load(
            r#"
[[sampling.tail.policies]]
name = "errors"
type = "status_code"
status_codes = ["ERROR"]
[[sampling.tail.policies]]
name = "slow"
type = "and"
[[sampling.tail.policies.and_sub_policy]]
name = "checkout"
type = "string_attribute"
key = "http.route"
values = ["/checkout"]
[[sampling.tail.policies.and_sub_policy]]
name = "over-p99"
type = "latency_quantile"
"#,
        )
        .unwrap();
        let p = &c.sampling.tail.policies;
        assert_eq!(p.len(), 2);
        assert_eq!(
            p[1].and_sub_policy.as_ref().unwrap()[1].kind,
            "latency_quantile"
        );
        assert!(!Config::default().sampling.tail.enabled, "off by default");
    }

    #[test]
    fn bad_policies_name_their_key() {
        let cases = [
            ("", "sampling.tail.policies"),
            (
                "[[sampling.tail.policies]]\nname = \"x\"\ntype = \"latency\"\n",
                "policies[0] (x).threshold_ms",
            ),
            (
                "[[sampling.tail.policies]]\nname = \"x\"\ntype = \"latenzy\"\n",
                "policies[0] (x).type",
            ),
            (
                "[[sampling.tail.policies]]\nname = \"x\"\ntype = \"latency\"\nthreshold_ms = 5\nkey = \"a\"\n",
                "policies[0] (x).key",
            ),
            (
                "[[sampling.tail.policies]]\nname = \"x\"\ntype = \"probabilistic\"\nsampling_percentage = 101.0\n",
                "sampling_percentage",
            ),
            (
                "[[sampling.tail.policies]]\nname = \"x\"\ntype = \"status_code\"\nstatus_codes = [\"BAD\"]\n",
                "status_codes",
            ),
            (
                "[[sampling.tail.policies]]\nname = \"x\"\ntype = \"and\"\n[[sampling.tail.policies.and_sub_policy]]\nname = \"y\"\ntype = \"rate_limiting\"\n",
                "and_sub_policy[0] (y).traces_per_second",
            ),
            ("decision_wait_ms = 0\n", "sampling.tail.decision_wait_ms"),
            ("decisoin_wait_ms = 5\n", "decisoin_wait_ms"),
        ];
        for (text, key) in cases {
            let e = load(text).unwrap_err().to_string();
            assert!(e.contains(key), "{text:?}: {e}");
        }
        let e = Config::from_sources(
            "[span_metrics]\nenabled = false\n[sampling.tail]\nenabled = true\n[[sampling.tail.policies]]\nname = \"p\"\ntype = \"latency_quantile\"\n",
            &[],
        )
        .unwrap_err();
        assert!(e.to_string().contains("span_metrics.enabled"), "{e}");
    }
}
