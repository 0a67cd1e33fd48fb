//! Drains the backlog into Elasticsearch with `_bulk`. Batches are bounded
//! by count, bytes and age. Per item: 2xx is indexed; 429 and 5xx are
//! retried (only those items) with capped backoff; any other status is
//! dead-lettered with its reason. A request that fails as a whole
//! (unreachable, 429, 5xx, auth) is retried until it goes through: the
//! backlog holds the data meanwhile. The checkpoint advances only when
//! every item of the batch is indexed or dead-lettered.

use std::sync::Arc;
use std::time::{Duration, Instant};

use elasticsearch::{BulkParts, Elasticsearch};
use serde::Deserialize;
use serde_json::{json, Value};

use super::backlog::{Backlog, Batch, Pending};
use super::deadletter::{DeadLetter, DeadLetterFile};
use super::retry::{item_retryable, request_retryable};
use super::writer_metrics::WriterMetrics;
use crate::backoff::Backoff;
use crate::error::{Error, Result};
use crate::metrics::ActorStats;
use crate::model::now_ns;

/// Rounds of per-item retries before an item is dead-lettered.
pub const ITEM_MAX_ATTEMPTS: u32 = 30;
const BACKOFF_START: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(30);

#[derive(Clone, Copy, Debug)]
pub struct FlushLimits {
    pub max_docs: usize,
    pub max_bytes: usize,
    pub max_delay: Duration,
}

/// What one flusher step did.
#[derive(Debug, PartialEq, Eq)]
pub enum Step {
    /// The backlog is empty.
    Idle,
    /// A partial batch waits for more documents until this long passes.
    Wait(Duration),
    /// A batch of this many records was settled.
    Flushed(usize),
}

#[derive(Deserialize)]
struct BulkResponse {
    #[serde(default)]
    items: Vec<std::collections::HashMap<String, BulkItem>>,
}

#[derive(Deserialize)]
struct BulkItem {
    status: u16,
    #[serde(default)]
    error: Option<Value>,
}

enum Outcome {
    Retry(String),
    RejectAll(u16, String),
    Items(Vec<(u16, Option<Value>)>),
}

pub struct BulkFlusher {
    client: Elasticsearch,
    backlog: Arc<Backlog>,
    dead: DeadLetterFile,
    limits: FlushLimits,
    pub metrics: WriterMetrics,
    stats: Arc<ActorStats>,
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::Internal(format!("blocking task: {e}")))?
}

impl BulkFlusher {
    pub fn new(
        client: Elasticsearch,
        backlog: Arc<Backlog>,
        dead: DeadLetterFile,
        limits: FlushLimits,
        stats: Arc<ActorStats>,
    ) -> Self {
        BulkFlusher {
            client,
            backlog,
            dead,
            limits,
            metrics: WriterMetrics::new(),
            stats,
        }
    }

    /// Updates the backlog gauges (also while Elasticsearch is unreachable
    /// and nothing flushes); returns what is pending and the age of the
    /// oldest pending document, or `None` when nothing is.
    pub async fn observe(&self) -> Result<Option<(Pending, Duration)>> {
        let p = self.backlog.pending();
        self.metrics.backlog_bytes.set(p.bytes);
        self.metrics.backlog_records.set(p.records);
        self.stats
            .queue_depth
            .store(p.records, std::sync::atomic::Ordering::Relaxed);
        if p.records == 0 {
            self.metrics.lag_ms.set(0);
            return Ok(None);
        }
        let backlog = self.backlog.clone();
        let head = blocking(move || backlog.head_append_ns()).await?;
        // No readable head while records are pending means a corrupt
        // region: flush now, which reports and skips it.
        let age = match head {
            Some(h) => Duration::from_nanos(now_ns().saturating_sub(h)),
            None => self.limits.max_delay,
        };
        self.metrics.lag_ms.set(age.as_millis() as u64);
        Ok(Some((p, age)))
    }

    /// Flushes a batch if one is due: full by count or bytes, or its oldest
    /// document has waited `max_delay`.
    pub async fn step(&mut self) -> Result<Step> {
        let Some((p, age)) = self.observe().await? else {
            return Ok(Step::Idle);
        };
        let full =
            p.records >= self.limits.max_docs as u64 || p.bytes >= self.limits.max_bytes as u64;
        if !full && age < self.limits.max_delay {
            return Ok(Step::Wait(self.limits.max_delay - age));
        }
        self.flush_batch().await.map(Step::Flushed)
    }

    /// Reads one batch from the checkpoint, settles every item, commits.
    pub async fn flush_batch(&mut self) -> Result<usize> {
        let backlog = self.backlog.clone();
        let (max_docs, max_bytes) = (self.limits.max_docs, self.limits.max_bytes);
        let batch: Batch = blocking(move || {
            let from = backlog.checkpoint();
            backlog.read(from, max_docs, max_bytes)
        })
        .await?;
        let n = batch.records.len();
        if n > 0 {
            let entries: Vec<&[u8]> = batch.records.iter().map(|r| r.payload.as_slice()).collect();
            // Not traced when it holds only strand's own spans.
            let trace = crate::selftrace::Pending::begin()
                .filter(|_| {
                    !entries
                        .iter()
                        .all(|e| crate::selftrace::hooks::is_self_document(e))
                })
                .and_then(|p| crate::selftrace::hooks::bulk_trace(p, n));
            match &trace {
                Some(t) => {
                    use opentelemetry::context::FutureExt as _;
                    let r = self.send(&entries).with_context(t.context().clone()).await;
                    if let Err(e) = &r {
                        t.set_error(e.to_string());
                    }
                    r?
                }
                None => self.send(&entries).await?,
            }
        }
        if let Some(reason) = &batch.corrupt {
            // Unreadable bytes cannot be indexed; record the loss loudly.
            tracing::error!(%reason, "elasticsearch backlog: skipping corrupt region");
            self.stats
                .record_error(&format!("backlog corruption: {reason}"));
            let letter = DeadLetter {
                status: 0,
                reason: json!({ "type": "backlog_corruption", "reason": reason }),
                entry: Vec::new(),
            };
            let dead = self.dead.clone();
            blocking(move || dead.append(&[letter], now_ns())).await?;
        }
        let backlog = self.backlog.clone();
        let end = batch.end;
        blocking(move || backlog.commit(end, n as u64)).await?;
        self.stats
            .messages_out
            .fetch_add(n as u64, std::sync::atomic::Ordering::Relaxed);
        Ok(n)
    }

    /// Sends entries until each is indexed or dead-lettered.
    async fn send(&mut self, entries: &[&[u8]]) -> Result<()> {
        let mut todo: Vec<usize> = (0..entries.len()).collect();
        let mut rounds = 0u32;
        let mut backoff = Backoff::new(BACKOFF_START, BACKOFF_MAX);
        loop {
            let body: Vec<&[u8]> = todo.iter().map(|&i| entries[i]).collect();
            match self.request(body).await {
                Outcome::Retry(reason) => {
                    self.metrics.request_failures.add(todo.len() as u64);
                    tracing::warn!(%reason, docs = todo.len(), "elasticsearch bulk request failed; retrying");
                    self.stats.record_error(&reason);
                    tokio::time::sleep(backoff.next_delay()).await;
                }
                Outcome::RejectAll(status, reason) => {
                    let letters = todo
                        .iter()
                        .map(|&i| DeadLetter {
                            status,
                            reason: json!({ "type": "request_rejected", "reason": reason }),
                            entry: entries[i].to_vec(),
                        })
                        .collect();
                    return self.dead_letter(letters).await;
                }
                Outcome::Items(items) => {
                    let mut retry = Vec::new();
                    let mut letters = Vec::new();
                    let mut last_reason = Value::Null;
                    for (&i, (status, error)) in todo.iter().zip(items) {
                        if (200..300).contains(&status) {
                            self.metrics.indexed.inc();
                        } else if item_retryable(status) {
                            self.metrics.retried.inc();
                            last_reason = error.unwrap_or(Value::Null);
                            retry.push(i);
                        } else {
                            letters.push(DeadLetter {
                                status,
                                reason: error.unwrap_or(Value::Null),
                                entry: entries[i].to_vec(),
                            });
                        }
                    }
                    self.dead_letter(letters).await?;
                    if retry.is_empty() {
                        return Ok(());
                    }
                    rounds += 1;
                    if rounds >= ITEM_MAX_ATTEMPTS {
                        let reason = json!({ "type": "retries_exhausted", "attempts": rounds, "last": last_reason });
                        let letters = retry
                            .iter()
                            .map(|&i| DeadLetter {
                                status: 429,
                                reason: reason.clone(),
                                entry: entries[i].to_vec(),
                            })
                            .collect();
                        return self.dead_letter(letters).await;
                    }
                    todo = retry;
                    tokio::time::sleep(backoff.next_delay()).await;
                }
            }
        }
    }

    async fn request(&mut self, body: Vec<&[u8]>) -> Outcome {
        let n = body.len();
        let t0 = Instant::now();
        // Only what settles each item: the full per-item answer costs
        // Elasticsearch and strand more than the documents themselves.
        let resp = self
            .client
            .bulk(BulkParts::None)
            .filter_path(&["errors", "items.*.status", "items.*.error"])
            .body(body)
            .send()
            .await;
        let ms = t0.elapsed().as_millis() as u64;
        self.metrics.bulk_latency_ms_total.add(ms);
        self.metrics.bulk_last_latency_ms.set(ms);
        let outcome = match resp {
            Err(e) => Outcome::Retry(format!("elasticsearch bulk: {e}")),
            Ok(resp) => {
                let status = resp.status_code().as_u16();
                let bytes = resp.bytes().await;
                match bytes {
                    Err(e) => Outcome::Retry(format!("elasticsearch bulk response: {e}")),
                    Ok(b) if (200..300).contains(&status) => {
                        match serde_json::from_slice::<BulkResponse>(&b) {
                            Ok(r) if r.items.len() == n => Outcome::Items(
                                r.items
                                    .into_iter()
                                    .map(|m| {
                                        m.into_values()
                                            .next()
                                            .map_or((500, None), |it| (it.status, it.error))
                                    })
                                    .collect(),
                            ),
                            Ok(r) => Outcome::Retry(format!(
                                "elasticsearch bulk: {} items answered for {n}",
                                r.items.len()
                            )),
                            Err(e) => Outcome::Retry(format!(
                                "elasticsearch bulk: unreadable response: {e}"
                            )),
                        }
                    }
                    Ok(b) => {
                        let text: String = String::from_utf8_lossy(&b).chars().take(1000).collect();
                        let reason = format!("elasticsearch bulk: HTTP {status}: {text}");
                        if request_retryable(status) {
                            Outcome::Retry(reason)
                        } else {
                            Outcome::RejectAll(status, reason)
                        }
                    }
                }
            }
        };
        match outcome {
            Outcome::Items(_) => self.metrics.bulk_ok.inc(),
            _ => self.metrics.bulk_failed.inc(),
        }
        outcome
    }

    async fn dead_letter(&mut self, letters: Vec<DeadLetter>) -> Result<()> {
        if letters.is_empty() {
            return Ok(());
        }
        self.metrics.rejected.add(letters.len() as u64);
        let first = letters[0].reason.to_string();
        tracing::warn!(count = letters.len(), reason = %first, "elasticsearch refused span documents; dead-lettered");
        self.stats.record_error(&format!(
            "dead-lettered {} documents: {first}",
            letters.len()
        ));
        let dead = self.dead.clone();
        blocking(move || dead.append(&letters, now_ns())).await
    }

    pub fn client(&self) -> &Elasticsearch {
        &self.client
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classification() {
        for s in [429, 500, 502, 503] {
            assert!(item_retryable(s) && request_retryable(s));
        }
        for s in [400, 409, 413] {
            assert!(!item_retryable(s));
        }
        assert!(!request_retryable(400));
        assert!(request_retryable(401));
    }
}
