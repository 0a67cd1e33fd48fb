//! A real Elasticsearch for the tests: `scripts/elasticsearch.sh start`,
//! or the node at `STRAND_ES_URL`. Tests fail (never skip) without it.
//! Each test works under an index prefix of its own and deletes it.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use strand::config::{ElasticsearchConfig, IndexConfig};
use strand::elasticsearch::sink::{start_es_writer, EsWriterHandle};
use strand::elasticsearch::EsStore;
use strand::model::{
    AttrValue, KeyValue, Resource, Span, SpanId, SpanKind, Status, StatusCode, TraceId,
};

use super::wait;

pub const NS: u64 = 1_000_000_000;
pub const HOUR: u64 = 3600 * NS;
pub const DAY: u64 = 24 * HOUR;

pub fn url() -> String {
    std::env::var("STRAND_ES_URL").unwrap_or_else(|_| "http://127.0.0.1:9200".into())
}

/// Fails the test when Elasticsearch does not answer; returns its URL.
pub async fn require() -> String {
    let url = url();
    let ok = reqwest::Client::new()
        .get(format!("{url}/_cluster/health"))
        .timeout(Duration::from_secs(5))
        .send()
        .await
        .map(|r| r.status().is_success())
        .unwrap_or(false);
    assert!(
        ok,
        "Elasticsearch is not reachable at {url}: start it with `scripts/elasticsearch.sh start` \
         (or set STRAND_ES_URL)"
    );
    url
}

/// An index prefix no other test run uses.
pub fn unique_prefix(test: &str) -> String {
    format!(
        "t-{test}-{}-{}",
        std::process::id(),
        strand::model::now_ns() % 1_000_000_000
    )
}

/// The tier's settings for `prefix`, flushing bulks quickly.
pub fn config(prefix: &str) -> ElasticsearchConfig {
    ElasticsearchConfig {
        enabled: true,
        url: url(),
        index_prefix: prefix.to_string(),
        bulk_max_delay_ms: 50,
        request_timeout_ms: 10_000,
        ..Default::default()
    }
}

/// The same as a `[elasticsearch]` section of a strand.toml.
pub fn toml_section(url: &str, prefix: &str) -> String {
    format!(
        "\n[elasticsearch]\nenabled = true\nurl = {url:?}\nindex_prefix = {prefix:?}\nbulk_max_delay_ms = 100\nrequest_timeout_ms = 5000\n"
    )
}

/// Documents of `index` (a name or pattern) matching `query`, after a
/// refresh: what Elasticsearch itself holds.
pub async fn count(url: &str, index: &str, query: Value) -> u64 {
    let c = reqwest::Client::new();
    let _ = c.post(format!("{url}/{index}/_refresh")).send().await;
    let r = c
        .post(format!("{url}/{index}/_count?allow_no_indices=true"))
        .json(&json!({ "query": query }))
        .send()
        .await
        .expect("elasticsearch reachable");
    let body: Value = r.json().await.unwrap_or(Value::Null);
    body["count"].as_u64().unwrap_or(0)
}

/// Every span document under `prefix`.
pub async fn count_all(url: &str, prefix: &str) -> u64 {
    count(url, &format!("{prefix}-spans-*"), json!({"match_all": {}})).await
}

/// Deletes the span indices and the index template of `prefix`.
pub async fn delete_indices(url: &str, prefix: &str) {
    let c = reqwest::Client::new();
    let _ = c.delete(format!("{url}/{prefix}-spans-*")).send().await;
    let _ = c
        .delete(format!("{url}/_index_template/{prefix}-spans"))
        .send()
        .await;
}

/// Waits until exactly `n` documents are indexed under `prefix` (never
/// more), then refreshes so searches see them all.
pub async fn wait_indexed(store: &EsStore, prefix: &str, n: u64) {
    let url = url();
    wait::until(
        &format!("{n} documents in {prefix}"),
        Duration::from_secs(60),
        async || {
            let c = count_all(&url, prefix).await;
            assert!(c <= n, "more documents than written: {c} > {n}");
            c == n
        },
    )
    .await;
    store.refresh().await.expect("refresh");
}

/// A reader and a writer over a fresh prefix, with the writer's backlog
/// in a temporary directory.
pub struct Tier {
    pub prefix: String,
    pub cfg: ElasticsearchConfig,
    pub index: IndexConfig,
    pub store: Arc<EsStore>,
    pub writer: Arc<EsWriterHandle>,
    pub dir: tempfile::TempDir,
}

impl Tier {
    pub async fn start(test: &str) -> Tier {
        Tier::start_with(test, |cfg| cfg).await
    }

    /// As [`Tier::start`], with the settings changed by `edit`.
    pub async fn start_with(
        test: &str,
        edit: impl FnOnce(ElasticsearchConfig) -> ElasticsearchConfig,
    ) -> Tier {
        require().await;
        let prefix = unique_prefix(test);
        let cfg = edit(config(&prefix));
        let index = IndexConfig::default();
        let store = EsStore::connect(&cfg, &index).await.expect("connect");
        let dir = tempfile::tempdir().unwrap();
        let writer = Arc::new(start_es_writer(&cfg, &index, dir.path(), None).expect("writer"));
        Tier {
            prefix,
            cfg,
            index,
            store,
            writer,
            dir,
        }
    }

    pub async fn wait_indexed(&self, n: u64) {
        wait_indexed(&self.store, &self.prefix, n).await
    }

    /// Stops the writer and deletes the prefix's indices.
    pub async fn finish(self) {
        self.writer.shutdown().await;
        delete_indices(&url(), &self.prefix).await;
    }
}

/// A resource of `service` with `extra` attributes.
pub fn resource(service: &str, extra: Vec<KeyValue>) -> Arc<Resource> {
    let mut attributes = vec![KeyValue::new(
        "service.name",
        AttrValue::Str(service.into()),
    )];
    attributes.extend(extra);
    Arc::new(Resource {
        attributes,
        dropped_attributes_count: 0,
        schema_url: String::new(),
    })
}

/// A varied, deterministic data set: 3 services, several operations and
/// kinds, error and ok statuses, allow-listed and other tags, resource
/// tags, spans over the last two days.
pub fn dataset(now: u64, traces: usize) -> Vec<Span> {
    let services = ["api", "db", "web"];
    let ops = ["GET /a", "GET /b", "query", "render"];
    let mut spans = Vec::new();
    for t in 0..traces {
        let mut tid = [0u8; 16];
        tid[..8].copy_from_slice(&(t as u64 + 1).to_be_bytes());
        tid[8..].copy_from_slice(&now.to_be_bytes());
        let base = now - (t as u64 * 37 * 60 * NS) % (2 * DAY) - HOUR;
        for s in 0..(1 + t % 4) {
            let i = t * 7 + s;
            let mut attributes = vec![
                KeyValue::new("http.method", AttrValue::Str(["GET", "POST"][i % 2].into())),
                KeyValue::new("http.status_code", AttrValue::Int([200, 404, 500][i % 3])),
                KeyValue::new("user_id", AttrValue::Str(format!("u{}", i % 5))),
                KeyValue::new("custom.tag", AttrValue::Str(format!("c{}", i % 4))),
                KeyValue::new("flag", AttrValue::Bool(i % 2 == 0)),
            ];
            if i % 11 == 0 {
                attributes.push(KeyValue::new("error", AttrValue::Bool(i % 2 == 0)));
            }
            let start = base + s as u64 * 1_000_123;
            spans.push(Span {
                trace_id: TraceId(tid),
                span_id: SpanId((i as u64 + 1).to_be_bytes()),
                parent_span_id: (s > 0).then(|| SpanId((t as u64 * 7 + 1).to_be_bytes())),
                name: ops[i % ops.len()].into(),
                kind: SpanKind::from_i32((i % 5) as i32 + 1),
                start_ns: start,
                end_ns: start + (i as u64 % 9 + 1) * 1_000_000,
                attributes,
                status: Status {
                    code: StatusCode::from_i32((i % 3) as i32),
                    message: String::new(),
                },
                resource: resource(
                    services[i % 3],
                    vec![KeyValue::new(
                        "host.name",
                        AttrValue::Str(format!("h{}", i % 2)),
                    )],
                ),
                ..Default::default()
            });
        }
    }
    spans
}
