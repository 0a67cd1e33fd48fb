//! The conformance suite on the reader the query layer really gets: what
//! `tiers::compose` builds from a node's parts.
//!
//! - Hot store + Elasticsearch (a real node, indices of their own): once
//!   written as a node writes (every span to both tiers), once with the
//!   spans split between the tiers, so traces, hits, services and scans
//!   must be merged from both.
//! - A query node over two writer peers, each a real `strand serve` fed
//!   part of the spans over OTLP/HTTP (some to both, as at-least-once
//!   delivery leaves them).

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use parking_lot::Mutex;
use prost::Message;

use common::conformance::Layout;
use common::es;
use common::process::Strand;
use strand::actors::writer::start_hot_writer;
use strand::config::{IndexConfig, StorageConfig};
use strand::elasticsearch::sink::{start_es_writer, EsWriterHandle};
use strand::elasticsearch::EsStore;
use strand::error::{Error, Result};
use strand::model::{Span, SpanReader, SpanWriter};
use strand::otlp::proto::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use strand::store::HotStore;
use strand::tiers::{compose, Parts};

/// Which of two places span number `i` goes to: both (every third), else
/// alternately the first or the second.
fn places(i: usize) -> (bool, bool) {
    match i % 3 {
        0 => (true, true),
        1 => (true, false),
        _ => (false, true),
    }
}

/// Splits `spans` by [`places`].
fn split(spans: Vec<Span>) -> (Vec<Span>, Vec<Span>) {
    let (mut a, mut b) = (Vec::new(), Vec::new());
    for (i, s) in spans.into_iter().enumerate() {
        match places(i) {
            (true, true) => {
                a.push(s.clone());
                b.push(s);
            }
            (true, false) => a.push(s),
            _ => b.push(s),
        }
    }
    (a, b)
}

/// Distinct Elasticsearch documents `spans` make: one per (daily index,
/// trace id, span id).
fn es_docs(prefix: &str, spans: &[Span]) -> u64 {
    let docs: BTreeSet<_> = spans
        .iter()
        .map(|s| {
            (
                strand::elasticsearch::daily_index(prefix, s.start_ns),
                s.trace_id,
                s.span_id,
            )
        })
        .collect();
    docs.len() as u64
}

/// A hot store with its writer, and the Elasticsearch tier with its
/// writer, on indices of their own.
struct HotAndEs {
    store: Arc<HotStore>,
    hot_writer: Arc<dyn SpanWriter>,
    es: Arc<EsStore>,
    es_writer: Arc<EsWriterHandle>,
    prefix: String,
}

async fn hot_and_es(name: &str, dir: &Path) -> HotAndEs {
    es::require().await;
    let cfg = es::config(&es::unique_prefix(name));
    let index = IndexConfig::default();
    let es = EsStore::connect(&cfg, &index).await.expect("connect");
    let es_writer = Arc::new(start_es_writer(&cfg, &index, &dir.join("es"), None).unwrap());
    let storage = StorageConfig {
        dir: dir.join("hot"),
        ..Default::default()
    };
    let store = HotStore::open(&storage, &index).unwrap();
    let hot_writer = Arc::new(start_hot_writer(store.clone(), None));
    HotAndEs {
        store,
        hot_writer,
        es,
        es_writer,
        prefix: cfg.index_prefix,
    }
}

impl HotAndEs {
    /// What `strand serve` composes from these parts.
    fn compose(&self) -> strand::tiers::Tiers {
        let es: Arc<dyn SpanReader> = self.es.clone();
        let es_writer: Arc<dyn SpanWriter> = self.es_writer.clone();
        compose(Parts {
            hot: Some(self.store.clone()),
            hot_writer: Some(self.hot_writer.clone()),
            elasticsearch: Some(es),
            elasticsearch_writer: Some(es_writer),
            ..Default::default()
        })
        .unwrap()
    }

    async fn close(self) {
        self.es_writer.shutdown().await;
        es::delete_indices(&es::url(), &self.prefix).await;
    }
}

#[actix_rt::test]
async fn hot_and_elasticsearch_as_composed_pass_the_suite() {
    let dir = tempfile::tempdir().unwrap();
    let parts = hot_and_es("tiers-both", dir.path()).await;
    let tiers = parts.compose();
    let reader = tiers.reader.clone().expect("a reader");
    let n = es_docs(&parts.prefix, &common::fixtures::load_all());
    let (es, prefix) = (parts.es.clone(), parts.prefix.clone());
    // The composed write is durable in both tiers.
    common::conformance::run(tiers.durable.clone(), reader, |_| async move {
        es::wait_indexed(&es, &prefix, n).await
    })
    .await;
    assert!(
        parts.store.unsealed_spans() > 0,
        "the hot tier has the spans"
    );
    parts.close().await;
}

/// Writes each span to the hot tier, Elasticsearch, or both, by
/// [`places`], as after hot retention dropped what Elasticsearch keeps.
struct SplitTiers {
    hot: Arc<dyn SpanWriter>,
    es: Arc<dyn SpanWriter>,
    es_spans: Mutex<Vec<Span>>,
}

#[async_trait]
impl SpanWriter for SplitTiers {
    async fn write(&self, spans: Vec<Span>) -> Result<()> {
        let (hot, es) = split(spans);
        assert!(!hot.is_empty() && !es.is_empty(), "both tiers get spans");
        self.es_spans.lock().extend(es.iter().cloned());
        self.hot.write(hot).await?;
        self.es.write(es).await
    }
}

#[actix_rt::test]
async fn traces_split_between_hot_and_elasticsearch_pass_the_suite() {
    let dir = tempfile::tempdir().unwrap();
    let parts = hot_and_es("tiers-split", dir.path()).await;
    let reader = parts.compose().reader.expect("a reader");
    let writer = Arc::new(SplitTiers {
        hot: parts.hot_writer.clone(),
        es: parts.es_writer.clone(),
        es_spans: Mutex::default(),
    });
    let (es, prefix, w) = (parts.es.clone(), parts.prefix.clone(), writer.clone());
    common::conformance::run_with(
        writer.clone(),
        reader,
        |total| async move {
            let n = es_docs(&prefix, &w.es_spans.lock());
            assert!(n > 0 && (n as usize) < total, "a part of the spans");
            es::wait_indexed(&es, &prefix, n).await
        },
        Layout::Split,
    )
    .await;
    parts.close().await;
}

/// Sends spans over OTLP/HTTP (protobuf) to two `strand serve` writers by
/// [`places`]; a write returns once both answered, i.e. once durable.
struct OtlpPeers {
    http: [String; 2],
    client: reqwest::Client,
}

impl OtlpPeers {
    async fn export(&self, url: &str, spans: Vec<Span>) -> Result<()> {
        let n = spans.len() as i64;
        let body = ExportTraceServiceRequest {
            resource_spans: strand::otlp::convert::spans_to_proto(&spans),
        }
        .encode_to_vec();
        let r = self
            .client
            .post(format!("{url}/v1/traces"))
            .header("content-type", "application/x-protobuf")
            .body(body)
            .send()
            .await
            .map_err(|e| Error::Unavailable(format!("{url}: {e}")))?;
        let status = r.status();
        let bytes = r
            .bytes()
            .await
            .map_err(|e| Error::Unavailable(e.to_string()))?;
        assert!(status.is_success(), "{url} answered {status}");
        let resp = ExportTraceServiceResponse::decode(bytes.as_ref()).expect("OTLP response");
        if let Some(p) = resp.partial_success {
            assert_eq!(p.rejected_spans, 0, "{url} rejected spans of {n}: {p:?}");
        }
        Ok(())
    }
}

#[async_trait]
impl SpanWriter for OtlpPeers {
    async fn write(&self, spans: Vec<Span>) -> Result<()> {
        let (a, b) = split(spans);
        self.export(&self.http[0], a).await?;
        self.export(&self.http[1], b).await
    }
}

#[actix_rt::test]
async fn a_query_node_over_two_writer_peers_passes_the_suite() {
    let dir = tempfile::tempdir().unwrap();
    let a = Strand::start(&dir.path().join("a"), "");
    let b = Strand::start(&dir.path().join("b"), "");
    let tiers = compose(Parts {
        peers: vec![a.query.clone(), b.query.clone()],
        ..Default::default()
    })
    .unwrap();
    let writer = Arc::new(OtlpPeers {
        http: [a.http.clone(), b.http.clone()],
        client: reqwest::Client::new(),
    });
    let reader = tiers.reader.expect("a reader over the peers");
    common::conformance::run_with(writer, reader, |_| async {}, Layout::Split).await;
}
