//! The `[self_tracing]` config section (strict like every section).

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct SelfTracingConfig {
    /// Trace strand's own work (ingest requests, segment seals,
    /// Elasticsearch bulks, Kafka batches, queries) as service `strand`.
    pub enabled: bool,
    /// Most self-traces started per second (token bucket at the root;
    /// children and callers' sampled `traceparent`s follow their parent).
    pub traces_per_second: f64,
    /// OTLP/HTTP base URL to send self-traces to (e.g.
    /// `http://collector:4318`; `/v1/traces` is appended). Empty: into
    /// this process's own pipeline (nowhere on a `--target query` node).
    pub endpoint: String,
}

impl Default for SelfTracingConfig {
    fn default() -> Self {
        SelfTracingConfig {
            enabled: true,
            traces_per_second: 2.0,
            endpoint: String::new(),
        }
    }
}

impl SelfTracingConfig {
    pub fn validate(&self) -> Result<()> {
        let rate = self.traces_per_second;
        if !(rate.is_finite() && rate > 0.0 && rate <= 1000.0) {
            return Err(Error::config(
                "self_tracing.traces_per_second",
                format!("must be in (0, 1000], got {rate}"),
            ));
        }
        let e = &self.endpoint;
        if !(e.is_empty() || e.starts_with("http://") || e.starts_with("https://")) {
            return Err(Error::config(
                "self_tracing.endpoint",
                format!("must be an http:// or https:// URL, got {e:?}"),
            ));
        }
        Ok(())
    }

    /// The URL self-traces are POSTed to, when sent out of process.
    pub fn traces_url(&self) -> Option<String> {
        if self.endpoint.is_empty() {
            return None;
        }
        let base = self.endpoint.trim_end_matches('/');
        Some(if base.ends_with("/v1/traces") {
            base.to_string()
        } else {
            format!("{base}/v1/traces")
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_bad_rates_and_endpoints_by_key() {
        for text in [
            "[self_tracing]\ntraces_per_second = 0.0\n",
            "[self_tracing]\ntraces_per_second = -1.0\n",
            "[self_tracing]\nendpoint = \"collector:4318\"\n",
        ] {
            let err = crate::config::Config::from_sources(text, &[]).unwrap_err();
            assert!(err.to_string().contains("self_tracing"), "{text}: {err}");
        }
        let unknown = crate::config::Config::from_sources("[self_tracing]\nsample = 1\n", &[]);
        assert!(unknown.unwrap_err().to_string().contains("sample"));
        let ok = crate::config::Config::from_sources(
            "[self_tracing]\nenabled = false\ntraces_per_second = 0.5\n",
            &[],
        )
        .unwrap();
        assert!(!ok.self_tracing.enabled);
    }

    #[test]
    fn endpoint_gets_the_traces_path_once() {
        let mut c = SelfTracingConfig::default();
        assert_eq!(c.traces_url(), None);
        c.endpoint = "http://c:4318/".into();
        assert_eq!(c.traces_url().unwrap(), "http://c:4318/v1/traces");
        c.endpoint = "http://c:4318/v1/traces".into();
        assert_eq!(c.traces_url().unwrap(), "http://c:4318/v1/traces");
    }
}
