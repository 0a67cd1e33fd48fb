//! `[span_metrics]`: accumulation, storage and Kafka publication of span
//! metrics (docs/METRICS.md, docs/CONFIG.md).

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct SpanMetricsConfig {
    /// Count calls, errors and durations of every valid span (before
    /// sampling). `false` switches accumulation, storage and the stage off.
    pub enabled: bool,
    /// Finest stored resolution in seconds; must divide 60.
    pub resolution_secs: u64,
    /// Finest-resolution points are merged into 1 min points once their
    /// hour is older than this.
    pub downsample_1m_after_hours: u64,
    /// 1 min points are merged into 1 h points once their day is older
    /// than this.
    pub downsample_1h_after_days: u64,
    /// Points older than this are deleted (longer than traces by default).
    pub retention_days: u64,
    /// Distinct operations counted per service; spans of further
    /// operations are counted under `__other__`.
    pub max_operations_per_service: usize,
    /// How often the receivers' counts are written (fsynced) to the store
    /// or published to Kafka; a crash loses at most this much counting.
    pub flush_interval_ms: u64,
    /// Kafka mode: the topic ingest nodes publish their counts to and
    /// every writer node stores in full.
    pub kafka_topic: String,
    /// Bound (MiB) of the reader's cache of each file's records per read
    /// step, which lets repeated Monitor views skip closed files; 0: off.
    pub read_cache_mib: u64,
}

impl Default for SpanMetricsConfig {
    fn default() -> Self {
        SpanMetricsConfig {
            enabled: true,
            resolution_secs: 10,
            downsample_1m_after_hours: 6,
            downsample_1h_after_days: 7,
            retention_days: 30,
            max_operations_per_service: 1000,
            flush_interval_ms: 1000,
            kafka_topic: "strand-span-metrics".into(),
            read_cache_mib: 64,
        }
    }
}

impl SpanMetricsConfig {
    pub fn validate(&self) -> Result<()> {
        let r = self.resolution_secs;
        if r == 0 || 60 % r != 0 {
            return Err(Error::config(
                "span_metrics.resolution_secs",
                "must divide 60 (1, 2, 5, 10, 15, 30 or 60)",
            ));
        }
        if self.downsample_1m_after_hours == 0 {
            return Err(Error::config(
                "span_metrics.downsample_1m_after_hours",
                "must be positive",
            ));
        }
        if self.downsample_1h_after_days * 24 < self.downsample_1m_after_hours {
            return Err(Error::config(
                "span_metrics.downsample_1h_after_days",
                "must not come before span_metrics.downsample_1m_after_hours",
            ));
        }
        if self.retention_days == 0 || self.retention_days > 10 * 366 {
            return Err(Error::config(
                "span_metrics.retention_days",
                "must be between 1 and 3660",
            ));
        }
        if self.max_operations_per_service == 0 {
            return Err(Error::config(
                "span_metrics.max_operations_per_service",
                "must be positive",
            ));
        }
        if !(100..=60_000).contains(&self.flush_interval_ms) {
            return Err(Error::config(
                "span_metrics.flush_interval_ms",
                "must be between 100 and 60000",
            ));
        }
        if self.kafka_topic.is_empty() {
            return Err(Error::config(
                "span_metrics.kafka_topic",
                "must not be empty",
            ));
        }
        if self.read_cache_mib > 65_536 {
            return Err(Error::config(
                "span_metrics.read_cache_mib",
                "must be at most 65536 (64 GiB); 0 turns the cache off",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::config::Config;

    #[test]
    fn the_section_is_strict_and_bad_values_name_their_key() {
        let c = Config::from_sources("", &[]).unwrap();
        assert!(c.span_metrics.enabled);
        assert_eq!(c.span_metrics.retention_days, 30);
        assert_eq!(c.span_metrics.read_cache_mib, 64);
        let off = Config::from_sources("[span_metrics]\nread_cache_mib = 0\n", &[]).unwrap();
        assert_eq!(off.span_metrics.read_cache_mib, 0);
        let e = Config::from_sources("[span_metrics]\nretention_dayz = 3\n", &[]).unwrap_err();
        assert!(e.to_string().contains("retention_dayz"), "{e}");
        for (text, key) in [
            ("resolution_secs = 7", "span_metrics.resolution_secs"),
            (
                "max_operations_per_service = 0",
                "span_metrics.max_operations_per_service",
            ),
            ("flush_interval_ms = 5", "span_metrics.flush_interval_ms"),
            ("retention_days = 0", "span_metrics.retention_days"),
            ("read_cache_mib = 70000", "span_metrics.read_cache_mib"),
            (
                "downsample_1h_after_days = 0",
                "span_metrics.downsample_1h_after_days",
            ),
        ] {
            let e = Config::from_sources(&format!("[span_metrics]\n{text}\n"), &[]).unwrap_err();
            assert!(e.to_string().contains(key), "{text}: {e}");
        }
        let env = vec![(
            "STRAND_SPAN_METRICS__ENABLED".to_string(),
            "false".to_string(),
        )];
        assert!(!Config::from_sources("", &env).unwrap().span_metrics.enabled);
    }
}
