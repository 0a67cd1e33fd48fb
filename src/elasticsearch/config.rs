//! The `[elasticsearch]` config section (read by `crate::config`, strict
//! like every section), with the checks of its values.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ElasticsearchConfig {
    /// Off by default: the embedded mode needs no Elasticsearch.
    pub enabled: bool,
    /// Elasticsearch base URL.
    pub url: String,
    /// Daily indices are named `<prefix>-spans-YYYY.MM.DD`.
    pub index_prefix: String,
    /// Daily indices older than this are deleted by the janitor.
    pub retention_days: u32,
    /// A _bulk request carries at most this many documents...
    pub bulk_max_docs: usize,
    /// ...and at most this many bytes...
    pub bulk_max_bytes: usize,
    /// ...and waits at most this long for more documents.
    pub bulk_max_delay_ms: u64,
    /// Disk budget of the durable backlog between `write` and `_bulk`; when
    /// full, writes get `Overloaded` (retryable) until it drains.
    pub backlog_max_bytes: u64,
    /// Per-request timeout of every Elasticsearch call.
    pub request_timeout_ms: u64,
    /// Route span documents by trace id, so a trace lives on one shard.
    pub route_by_trace_id: bool,
    /// Primary shards of each daily index (index template).
    pub number_of_shards: u32,
    /// Replicas of each daily index (0 for a single node).
    pub number_of_replicas: u32,
    /// How often the janitor deletes daily indices past `retention_days`.
    pub janitor_interval_secs: u64,
}

impl Default for ElasticsearchConfig {
    fn default() -> Self {
        ElasticsearchConfig {
            enabled: false,
            url: "http://127.0.0.1:9200".into(),
            index_prefix: "strand".into(),
            retention_days: 7,
            bulk_max_docs: 5_000,
            bulk_max_bytes: 5 << 20,
            bulk_max_delay_ms: 1_000,
            backlog_max_bytes: 1 << 30,
            request_timeout_ms: 30_000,
            route_by_trace_id: false,
            number_of_shards: 1,
            number_of_replicas: 0,
            janitor_interval_secs: 3_600,
        }
    }
}

impl ElasticsearchConfig {
    pub fn validate(&self) -> Result<()> {
        let es = self;
        if es.retention_days == 0 {
            return Err(Error::config(
                "elasticsearch.retention_days",
                "must be positive",
            ));
        }
        if es.bulk_max_docs == 0 {
            return Err(Error::config(
                "elasticsearch.bulk_max_docs",
                "must be positive",
            ));
        }
        if es.bulk_max_bytes < 1024 {
            return Err(Error::config(
                "elasticsearch.bulk_max_bytes",
                "must be at least 1024",
            ));
        }
        if es.backlog_max_bytes < es.bulk_max_bytes as u64 {
            return Err(Error::config(
                "elasticsearch.backlog_max_bytes",
                "must be at least elasticsearch.bulk_max_bytes",
            ));
        }
        if es.request_timeout_ms == 0 {
            return Err(Error::config(
                "elasticsearch.request_timeout_ms",
                "must be positive",
            ));
        }
        if es.number_of_shards == 0 {
            return Err(Error::config(
                "elasticsearch.number_of_shards",
                "must be positive",
            ));
        }
        if es.janitor_interval_secs == 0 {
            return Err(Error::config(
                "elasticsearch.janitor_interval_secs",
                "must be positive",
            ));
        }
        if es.index_prefix.is_empty()
            || !es
                .index_prefix
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
            || es.index_prefix.starts_with(['-', '_'])
        {
            return Err(Error::config(
                "elasticsearch.index_prefix",
                "must be lower-case letters, digits, '-' or '_', not starting with '-' or '_'",
            ));
        }
        Ok(())
    }
}
