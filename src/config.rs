//! Strict configuration: TOML file, then `STRAND_*` environment variables,
//! then flags. Unknown keys are an error naming the key; every default is a
//! named function; `validate` runs at load and reports the offending key.

use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

pub use crate::elasticsearch::config::ElasticsearchConfig;
use crate::error::{Error, Result};
pub use crate::kafka::config::KafkaConfig;
pub use crate::security::config::{IngestClient, TlsConfig};
pub use crate::selftrace::config::SelfTracingConfig;
pub use crate::spanmetrics::config::SpanMetricsConfig;
pub use crate::strategies::config::{
    AdaptiveConfig as AdaptiveSamplingConfig, RemoteConfig as RemoteSamplingConfig, SamplingRule,
};
pub use crate::tailsampling::config::TailSamplingConfig;
pub use crate::ui::config::UiConfig;

#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub ingest: IngestConfig,
    pub storage: StorageConfig,
    pub index: IndexConfig,
    pub query: QueryConfig,
    pub sampling: SamplingConfig,
    pub scrub: ScrubConfig,
    pub kafka: KafkaConfig,
    pub elasticsearch: ElasticsearchConfig,
    pub self_tracing: SelfTracingConfig,
    pub span_metrics: SpanMetricsConfig,
    pub ui: UiConfig,
    pub tls: TlsConfig,
}

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct IngestConfig {
    /// OTLP/gRPC listen address.
    pub grpc_addr: String,
    /// OTLP/HTTP listen address.
    pub http_addr: String,
    /// Zipkin v2 (`POST /api/v2/spans`, JSON or protobuf) listen address;
    /// empty turns the Zipkin receiver off.
    pub zipkin_addr: String,
    /// Largest accepted request body, after decompression.
    pub max_request_bytes: usize,
    /// Request bytes admitted but not yet durable; beyond it clients get
    /// RESOURCE_EXHAUSTED / HTTP 429 and retry.
    pub max_inflight_bytes: usize,
    /// Attribute values longer than this are truncated (and counted).
    pub max_attribute_value_bytes: usize,
    /// Shared secret required in `authorization: Bearer <key>` or
    /// `x-strand-api-key`; empty means no authentication. Legacy: it is
    /// the client named `default`; prefer `clients` (docs/SECURITY.md).
    pub api_key: String,
    /// Named senders (`[[ingest.clients]]`: API-key hash or mTLS subject,
    /// optional rate); with any, unauthenticated requests are refused.
    pub clients: Vec<IngestClient>,
    /// Receiver workers (decode, validate, scrub, sample, convert run on
    /// them) and OTLP/gRPC runtime threads; 0 means one per core.
    pub workers: usize,
}

impl IngestConfig {
    /// `workers`, with 0 resolved to the number of cores.
    pub fn worker_count(&self) -> usize {
        match self.workers {
            0 => std::thread::available_parallelism().map_or(2, |n| n.get()),
            n => n,
        }
    }
}

impl Default for IngestConfig {
    fn default() -> Self {
        IngestConfig {
            grpc_addr: "0.0.0.0:4317".into(),
            http_addr: "0.0.0.0:4318".into(),
            zipkin_addr: "0.0.0.0:9411".into(),
            max_request_bytes: 16 << 20,
            max_inflight_bytes: 256 << 20,
            max_attribute_value_bytes: 64 << 10,
            api_key: String::new(),
            clients: Vec::new(),
            workers: 0,
        }
    }
}

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct StorageConfig {
    /// Hot-store directory (WAL, segments, manifest).
    pub dir: PathBuf,
    /// Spans older than this (by start time) are deleted with their segment.
    pub retention_hours: u64,
    /// Disk budget for sealed segments; the oldest go first when exceeded.
    pub max_disk_bytes: u64,
    /// The active segment is sealed when it holds this many spans...
    pub segment_max_spans: usize,
    /// ...or this many seconds after its first span, whichever is first.
    pub segment_max_age_secs: u64,
    /// fsync the WAL before acknowledging. Turning it off trades durability
    /// for speed and is meant for benchmarks only.
    pub fsync: bool,
    /// Write shards: each has its own WAL, active segment and writer
    /// thread; spans go to a shard by trace id. 0 means one per two cores
    /// (at least one).
    pub writer_shards: usize,
}

impl StorageConfig {
    /// `writer_shards`, with 0 resolved from the number of cores.
    pub fn shard_count(&self) -> usize {
        match self.writer_shards {
            0 => (std::thread::available_parallelism().map_or(1, |n| n.get()) / 2).max(1),
            n => n,
        }
    }
}

impl Default for StorageConfig {
    fn default() -> Self {
        StorageConfig {
            dir: PathBuf::from("./data"),
            retention_hours: 7 * 24,
            max_disk_bytes: 50 << 30,
            segment_max_spans: 200_000,
            segment_max_age_secs: 60,
            fsync: true,
            writer_shards: 0,
        }
    }
}

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct IndexConfig {
    /// Attribute keys (span or resource) that get roaring postings. Other
    /// keys are still searchable, by scanning the candidate rows.
    pub attribute_keys: Vec<String>,
}

pub fn default_indexed_keys() -> Vec<String> {
    [
        "http.request.method",
        "http.method",
        "http.response.status_code",
        "http.status_code",
        "http.route",
        "rpc.service",
        "db.system",
        "user_id",
        "enduser.id",
        "error",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

impl Default for IndexConfig {
    fn default() -> Self {
        IndexConfig {
            attribute_keys: default_indexed_keys(),
        }
    }
}

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct QueryConfig {
    /// Query API and web UI listen address.
    pub addr: String,
    /// Default and maximum number of traces a search returns.
    pub default_limit: usize,
    /// Largest `limit` a search may ask for.
    pub max_limit: usize,
    /// Base URLs of the nodes holding the data (writers in Kafka mode),
    /// e.g. `["http://writer-1:16686"]`. A `--target query` node with peers
    /// reads them over HTTP and merges; empty means the local store.
    pub peers: Vec<String>,
}

impl Default for QueryConfig {
    fn default() -> Self {
        QueryConfig {
            addr: "0.0.0.0:16686".into(),
            default_limit: 20,
            max_limit: 1500,
            peers: Vec::new(),
        }
    }
}

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct SamplingConfig {
    /// Head sampling ratio by trace id, 0.0..=1.0 (1.0 keeps everything).
    pub ratio: f64,
    /// Keep every span of a trace that has an error span in the same
    /// request, whatever the ratio.
    pub keep_errors: bool,
    /// Adaptive sampling: when positive, the effective ratio is lowered
    /// (never raised above `ratio`) to keep the stored span rate near this
    /// many spans per second per receiver. 0 turns it off.
    pub target_spans_per_sec: f64,
    /// Per-service and per-operation ratios (docs/SAMPLING.md).
    pub rules: Vec<SamplingRule>,
    /// The Jaeger remote-sampling endpoint.
    pub remote: RemoteSamplingConfig,
    /// Per-operation adaptive probabilities from span metrics.
    pub adaptive: AdaptiveSamplingConfig,
    /// Tail sampling in the writer (docs/SAMPLING.md).
    pub tail: TailSamplingConfig,
}

impl Default for SamplingConfig {
    fn default() -> Self {
        SamplingConfig {
            ratio: 1.0,
            keep_errors: true,
            target_spans_per_sec: 0.0,
            rules: Vec::new(),
            remote: RemoteSamplingConfig::default(),
            adaptive: AdaptiveSamplingConfig::default(),
            tail: TailSamplingConfig::default(),
        }
    }
}

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ScrubConfig {
    /// Redact credit-card numbers (Luhn-checked), e-mail addresses and
    /// bearer tokens in string attribute values before anything is stored.
    pub enabled: bool,
    /// Attribute keys whose values are always replaced.
    pub redact_keys: Vec<String>,
}

impl Default for ScrubConfig {
    fn default() -> Self {
        ScrubConfig {
            enabled: true,
            redact_keys: vec![
                "password".into(),
                "http.request.header.authorization".into(),
            ],
        }
    }
}

impl Config {
    /// Loads a TOML file (if given), applies `STRAND_SECTION__KEY`
    /// environment overrides, and validates.
    pub fn load(path: Option<&Path>) -> Result<Config> {
        let text = match path {
            Some(p) => std::fs::read_to_string(p)
                .map_err(|e| Error::config(p.display().to_string(), e.to_string()))?,
            None => String::new(),
        };
        let env: Vec<(String, String)> = std::env::vars().collect();
        Self::from_sources(&text, &env)
    }

    pub fn from_sources(toml_text: &str, env: &[(String, String)]) -> Result<Config> {
        let mut table: toml::Table =
            toml::from_str(toml_text).map_err(|e| Error::config("config file", e.message()))?;
        for (k, v) in env {
            let Some(rest) = k.strip_prefix("STRAND_") else {
                continue;
            };
            let Some((section, key)) = rest.split_once("__") else {
                continue;
            };
            let section = section.to_ascii_lowercase();
            let key = key.to_ascii_lowercase();
            let value = parse_env_value(v);
            let entry = table
                .entry(section.clone())
                .or_insert_with(|| toml::Value::Table(Default::default()));
            match entry {
                toml::Value::Table(t) => {
                    t.insert(key, value);
                }
                _ => return Err(Error::config(section, "is not a table")),
            }
        }
        let cfg: Config = serde_path_to_error(table)?;
        cfg.validate()?;
        Ok(cfg)
    }

    pub fn validate(&self) -> Result<()> {
        let r = &self.sampling.ratio;
        if !(0.0..=1.0).contains(r) {
            return Err(Error::config(
                "sampling.ratio",
                "must be between 0.0 and 1.0",
            ));
        }
        let t = self.sampling.target_spans_per_sec;
        if !t.is_finite() || t < 0.0 {
            return Err(Error::config(
                "sampling.target_spans_per_sec",
                "must be a non-negative number (0 = off)",
            ));
        }
        crate::strategies::config::validate(
            &self.sampling.rules,
            &self.sampling.remote,
            &self.sampling.adaptive,
        )?;
        for (key, addr) in [
            ("ingest.grpc_addr", &self.ingest.grpc_addr),
            ("ingest.http_addr", &self.ingest.http_addr),
            ("ingest.zipkin_addr", &self.ingest.zipkin_addr),
            ("query.addr", &self.query.addr),
        ] {
            if key == "ingest.zipkin_addr" && addr.is_empty() {
                continue;
            }
            addr.parse::<std::net::SocketAddr>()
                .map_err(|e| Error::config(key, format!("{addr:?}: {e}")))?;
        }
        if self.ingest.max_request_bytes < 1024 {
            return Err(Error::config(
                "ingest.max_request_bytes",
                "must be at least 1024",
            ));
        }
        if self.ingest.max_inflight_bytes < self.ingest.max_request_bytes {
            return Err(Error::config(
                "ingest.max_inflight_bytes",
                "must be at least ingest.max_request_bytes",
            ));
        }
        if self.storage.segment_max_spans == 0 {
            return Err(Error::config(
                "storage.segment_max_spans",
                "must be positive",
            ));
        }
        if self.storage.retention_hours == 0 {
            return Err(Error::config("storage.retention_hours", "must be positive"));
        }
        if self.query.default_limit == 0 || self.query.default_limit > self.query.max_limit {
            return Err(Error::config(
                "query.default_limit",
                "must be between 1 and query.max_limit",
            ));
        }
        for peer in &self.query.peers {
            let host = peer
                .strip_prefix("http://")
                .or_else(|| peer.strip_prefix("https://"))
                .unwrap_or_default();
            if host.is_empty() || host.starts_with('/') || host.contains(char::is_whitespace) {
                return Err(Error::config(
                    "query.peers",
                    format!("{peer:?} is not an http(s) base URL"),
                ));
            }
        }
        if self.kafka.enabled && self.kafka.partitions < 1 {
            return Err(Error::config("kafka.partitions", "must be positive"));
        }
        if self.kafka.enabled && !(1024..=64 << 20).contains(&self.kafka.max_message_bytes) {
            return Err(Error::config(
                "kafka.max_message_bytes",
                "must be between 1 KiB and 64 MiB",
            ));
        }
        if self.kafka.enabled && self.kafka.max_inflight_bytes < self.kafka.max_message_bytes {
            return Err(Error::config(
                "kafka.max_inflight_bytes",
                "must be at least kafka.max_message_bytes",
            ));
        }
        if self.kafka.enabled && self.kafka.batch_max_messages == 0 {
            return Err(Error::config(
                "kafka.batch_max_messages",
                "must be positive",
            ));
        }
        if self.kafka.enabled && self.kafka.stall_timeout_ms < 1_000 {
            return Err(Error::config(
                "kafka.stall_timeout_ms",
                "must be at least 1000",
            ));
        }
        if self.kafka.enabled && self.kafka.retention_hours == 0 {
            return Err(Error::config("kafka.retention_hours", "must be positive"));
        }
        if self.elasticsearch.enabled {
            self.elasticsearch.validate()?;
        }
        if self.kafka.enabled {
            self.kafka.validate_extra_topics()?;
        }
        self.self_tracing.validate()?;
        self.span_metrics.validate()?;
        self.sampling.tail.validate(self.span_metrics.enabled)?;
        self.ui.validate()?;
        self.tls.validate()?;
        crate::security::config::validate_clients(
            &self.ingest.clients,
            &self.ingest.api_key,
            &self.tls,
        )?;
        Ok(())
    }
}

/// Environment values are typed by their look: integers, floats and
/// booleans become TOML numbers and booleans, `[a,b]` a string array.
fn parse_env_value(v: &str) -> toml::Value {
    if let Ok(i) = v.parse::<i64>() {
        return toml::Value::Integer(i);
    }
    if let Ok(f) = v.parse::<f64>() {
        return toml::Value::Float(f);
    }
    if let Ok(b) = v.parse::<bool>() {
        return toml::Value::Boolean(b);
    }
    if let Some(inner) = v.strip_prefix('[').and_then(|s| s.strip_suffix(']')) {
        return toml::Value::Array(
            inner
                .split(',')
                .map(|s| s.trim())
                .filter(|s| !s.is_empty())
                .map(|s| toml::Value::String(s.into()))
                .collect(),
        );
    }
    toml::Value::String(v.to_string())
}

/// Deserializes and, on failure, names the offending key path.
fn serde_path_to_error(table: toml::Table) -> Result<Config> {
    let text = toml::to_string(&table).map_err(|e| Error::config("config", e.to_string()))?;
    toml::from_str::<Config>(&text).map_err(|e| {
        let msg = e.message().to_string();
        // toml reports unknown fields as "unknown field `x`, expected ..."
        let key = msg
            .split('`')
            .nth(1)
            .map(|k| k.to_string())
            .unwrap_or_else(|| "config".into());
        Error::config(key, msg)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_config_is_the_embedded_default() {
        let c = Config::from_sources("", &[]).unwrap();
        assert_eq!(c, Config::default());
        assert!(!c.kafka.enabled && !c.elasticsearch.enabled);
    }

    #[test]
    fn unknown_key_is_rejected_by_name() {
        let e = Config::from_sources("[storage]\nretention_hourz = 3\n", &[]).unwrap_err();
        assert!(e.to_string().contains("retention_hourz"), "{e}");
        let e = Config::from_sources("[nonsense]\n", &[]).unwrap_err();
        assert!(e.to_string().contains("nonsense"), "{e}");
    }

    #[test]
    fn env_overrides_file_and_bad_values_name_their_key() {
        let env = vec![(
            "STRAND_STORAGE__SEGMENT_MAX_SPANS".to_string(),
            "42".to_string(),
        )];
        let c = Config::from_sources("[storage]\nsegment_max_spans = 7\n", &env).unwrap();
        assert_eq!(c.storage.segment_max_spans, 42);
        let e = Config::from_sources("[sampling]\nratio = 2.0\n", &[]).unwrap_err();
        assert!(e.to_string().contains("sampling.ratio"), "{e}");
        let c = Config::from_sources(
            "[[sampling.rules]]\nservice = \"a\"\noperation = \"GET /\"\nratio = 0.5\n",
            &[],
        )
        .unwrap();
        assert_eq!(c.sampling.rules[0].ratio, 0.5);
        for (bad, key) in [
            (
                "[[sampling.rules]]\nservice = \"a\"\nratio = 1.5\n",
                "sampling.rules[0].ratio",
            ),
            (
                "[[sampling.rules]]\nservice = \"\"\nratio = 0.5\n",
                "sampling.rules[0].service",
            ),
            (
                "[[sampling.rules]]\nservice = \"a\"\nratio = 0.5\nratoi = 1\n",
                "ratoi",
            ),
            (
                "[sampling.remote]\nhttp_addr = \"x\"\n",
                "sampling.remote.http_addr",
            ),
            (
                "[sampling.adaptive]\nsmoothing = 0.0\n",
                "sampling.adaptive.smoothing",
            ),
        ] {
            let e = Config::from_sources(bad, &[]).unwrap_err();
            assert!(e.to_string().contains(key), "{bad}: {e}");
        }
        let e = Config::from_sources("[ingest]\nzipkin_addr = \"nope\"\n", &[]).unwrap_err();
        assert!(e.to_string().contains("ingest.zipkin_addr"), "{e}");
        let c = Config::from_sources("[ingest]\nzipkin_addr = \"\"\n", &[]).unwrap();
        assert!(c.ingest.zipkin_addr.is_empty(), "empty turns Zipkin off");
        let e = Config::from_sources("[query]\naddr = \"nope\"\n", &[]).unwrap_err();
        assert!(e.to_string().contains("query.addr"), "{e}");
        let c = Config::from_sources("[query]\npeers = [\"http://w1:16686\"]\n", &[]).unwrap();
        assert_eq!(c.query.peers, vec!["http://w1:16686"]);
        let e = Config::from_sources("[query]\npeers = [\"w1:16686\"]\n", &[]).unwrap_err();
        assert!(e.to_string().contains("query.peers"), "{e}");
    }
}
