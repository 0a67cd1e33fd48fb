//! A query node's span metrics in Kafka mode: its writer peers each hold a
//! full replica of the metrics topic (see [`super::kafka_store`]), so the
//! answer is, per series and window, the largest of the peers' points —
//! a replica that lags holds a prefix of the same deltas, never more, so
//! the maximum is exact as soon as one replica is up to date, and nothing
//! is added twice. A peer that is down is skipped while another answers.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use super::store::codec::decode_block;
use super::{point, MetricsReader, Point, RangeQuery, SeriesKey};
use crate::error::{Error, Result};

/// The internal endpoints (served by `query::internal_metrics`).
pub const RANGE: &str = "/internal/v1/span-metrics/range";
pub const TOTALS: &str = "/internal/v1/span-metrics/totals";
pub const SERVICES: &str = "/internal/v1/span-metrics/services";

pub struct PeerMetrics {
    peers: Vec<String>,
    client: reqwest::Client,
    /// The trait is synchronous; peer requests run on this runtime.
    rt: tokio::runtime::Runtime,
    min_step_ns: u64,
    /// The configured retention (the query node's `[span_metrics]`, as
    /// the writers' should be): what a lookback is checked against.
    retention_ns: u64,
}

impl PeerMetrics {
    pub fn new(
        peers: &[String],
        min_step_ns: u64,
        retention_ns: u64,
        timeout: Duration,
    ) -> Result<PeerMetrics> {
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(5)))
            .build()
            .map_err(|e| Error::Internal(format!("http client: {e}")))?;
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("metrics-peers")
            .enable_all()
            .build()
            .map_err(|e| Error::Internal(format!("peer runtime: {e}")))?;
        Ok(PeerMetrics {
            peers: peers
                .iter()
                .map(|p| p.trim_end_matches('/').to_string())
                .collect(),
            client,
            rt,
            min_step_ns,
            retention_ns,
        })
    }

    /// Every peer's answer to `path_query`; an error only if none answered.
    fn fetch(&self, path_query: &str) -> Result<Vec<bytes::Bytes>> {
        let futs: Vec<_> = self
            .peers
            .iter()
            .map(|base| {
                let req = self.client.get(format!("{base}{path_query}"));
                let base = base.clone();
                async move {
                    let resp = req
                        .send()
                        .await
                        .map_err(|e| format!("peer {base} unreachable: {e}"))?;
                    let status = resp.status();
                    let body = resp
                        .bytes()
                        .await
                        .map_err(|e| format!("peer {base}: {e}"))?;
                    if status.is_success() {
                        Ok(body)
                    } else if status.as_u16() == 400 {
                        Err(format!("400:{}", String::from_utf8_lossy(&body)))
                    } else {
                        Err(format!("peer {base} answered {status}"))
                    }
                }
            })
            .collect();
        let handle = self.rt.spawn(futures::future::join_all(futs));
        let results = futures::executor::block_on(handle)
            .map_err(|e| Error::Internal(format!("peer request task: {e}")))?;
        let mut ok = Vec::new();
        let mut errors = Vec::new();
        for r in results {
            match r {
                Ok(b) => ok.push(b),
                Err(e) => match e.strip_prefix("400:") {
                    Some(why) => return Err(Error::InvalidArgument(why.to_string())),
                    None => errors.push(e),
                },
            }
        }
        if ok.is_empty() {
            return Err(Error::Unavailable(format!(
                "no span-metrics peer answered: {}",
                errors.join("; ")
            )));
        }
        for e in errors {
            tracing::warn!("span metrics from the other peers: {e}");
        }
        Ok(ok)
    }

    fn records(&self, path_query: &str) -> Result<BTreeMap<(SeriesKey, u64), Point>> {
        let mut out: BTreeMap<(SeriesKey, u64), Point> = BTreeMap::new();
        for body in self.fetch(path_query)? {
            let b = decode_block(&body)?;
            for (k, p) in b.records {
                match out.get_mut(&(k.clone(), p.start_ns)) {
                    Some(m) => point::max_merge(m, &p),
                    None => {
                        out.insert((k, p.start_ns), p);
                    }
                }
            }
        }
        Ok(out)
    }
}

/// The query string of a range request.
pub fn range_query_string(q: &RangeQuery) -> String {
    let mut s = format!("?start={}&end={}&step={}", q.start_ns, q.end_ns, q.step_ns);
    if let Some(svc) = &q.service {
        let enc: String = form_urlencoded(svc);
        s.push_str(&format!("&service={enc}"));
    }
    if !q.kinds.is_empty() {
        let kinds: Vec<String> = q.kinds.iter().map(|k| (*k as u8).to_string()).collect();
        s.push_str(&format!("&kinds={}", kinds.join(",")));
    }
    s
}

/// Percent-encodes everything but unreserved characters.
fn form_urlencoded(v: &str) -> String {
    v.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

impl MetricsReader for PeerMetrics {
    fn range(&self, q: &RangeQuery) -> Result<Vec<(SeriesKey, Vec<Point>)>> {
        let recs = self.records(&format!("{RANGE}{}", range_query_string(q)))?;
        let mut out: Vec<(SeriesKey, Vec<Point>)> = Vec::new();
        for ((k, _), p) in recs {
            match out.last_mut() {
                Some((lk, pts)) if *lk == k => pts.push(p),
                _ => out.push((k, vec![p])),
            }
        }
        Ok(out)
    }

    fn totals(&self) -> Result<Vec<(SeriesKey, Point)>> {
        let recs = self.records(TOTALS)?;
        Ok(recs.into_iter().map(|((k, _), p)| (k, p)).collect())
    }

    fn min_step_ns(&self) -> u64 {
        self.min_step_ns
    }

    fn retention_ns(&self) -> u64 {
        self.retention_ns
    }

    fn services(&self) -> Result<Vec<String>> {
        let mut all = BTreeSet::new();
        for body in self.fetch(SERVICES)? {
            let v: Vec<String> = serde_json::from_slice(&body)
                .map_err(|e| Error::Internal(format!("peer sent bad JSON: {e}")))?;
            all.extend(v);
        }
        Ok(all.into_iter().collect())
    }
}
