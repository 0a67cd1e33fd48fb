//! [`EsStore`]: the `SpanReader` over the daily span indices. Search
//! collapses matching spans on `trace_id` (newest matching span first), so
//! results agree with `MemoryStore` on the same data.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use base64::Engine as _;
use elasticsearch::{Elasticsearch, SearchParts};
use serde_json::{json, Value};

use super::query::{compile, MAX_DATE_NANOS};
use super::{check_status, client, client_error, daily_indices, document, index_pattern, mapping};
use crate::backoff::Backoff;
use crate::config::{ElasticsearchConfig, IndexConfig};
use crate::error::{Error, Result};
use crate::model::storage_sampling::{sample_traces, SAMPLE_TRACES};
use crate::model::{Graph, Operation, ScanPage, SpanReader, TagCatalog, TraceHit, MAX_TRACE_SPANS};
use crate::model::{SearchQuery, Span, SpanKind, TraceId};

/// Spans fetched per request when reading a whole trace.
const TRACE_PAGE: usize = 1_000;
/// How a partial search answer (failed or timed-out shards) is reported.
const PARTIAL: &str = "elasticsearch search partial";
/// Largest page Elasticsearch serves without raising max_result_window.
const MAX_PAGE: usize = 10_000;
/// Distinct services or operations listed at most.
const MAX_BUCKETS: usize = 100_000;
/// A window of at most this many days searches the named daily indices;
/// longer ones use the pattern.
const MAX_LISTED_DAYS: u64 = 60;
/// Retries of a search that failed with 503 or answered partially (50 ms,
/// doubling: about 3 s in all, enough for a search queue to drain).
const SEARCH_RETRIES: usize = 6;

pub struct EsStore {
    client: Elasticsearch,
    prefix: String,
    route_by_trace_id: bool,
}

impl EsStore {
    /// Connects and installs the index template (so indices created by a
    /// writer elsewhere get the same mapping).
    pub async fn connect(cfg: &ElasticsearchConfig, index: &IndexConfig) -> Result<Arc<EsStore>> {
        let client = client(cfg)?;
        mapping::install(&client, cfg, &index.attribute_keys).await?;
        Ok(Arc::new(EsStore {
            client,
            prefix: cfg.index_prefix.clone(),
            route_by_trace_id: cfg.route_by_trace_id,
        }))
    }

    /// The reader alone, without contacting Elasticsearch: `strand serve`
    /// must start while the node is down (the writer installs the template
    /// before it indexes anything, retrying until the node answers).
    pub fn open(cfg: &ElasticsearchConfig) -> Result<Arc<EsStore>> {
        Ok(Arc::new(EsStore {
            client: client(cfg)?,
            prefix: cfg.index_prefix.clone(),
            route_by_trace_id: cfg.route_by_trace_id,
        }))
    }

    pub fn client(&self) -> &Elasticsearch {
        &self.client
    }

    /// Makes every indexed document searchable now (tests, exports).
    pub async fn refresh(&self) -> Result<()> {
        let pattern = index_pattern(&self.prefix);
        let resp = self
            .client
            .indices()
            .refresh(elasticsearch::indices::IndicesRefreshParts::Index(&[
                &pattern,
            ]))
            .allow_no_indices(true)
            .ignore_unavailable(true)
            .send()
            .await
            .map_err(|e| client_error("refresh", e))?;
        check_status("refresh", resp).await.map(|_| ())
    }

    /// The indices a query needs: the days of its window when bounded on
    /// both sides, else every span index.
    fn indices_for(&self, q: &SearchQuery) -> Vec<String> {
        if let (Some(s), Some(e)) = (q.start_ns, q.end_ns) {
            if let Some(days) =
                daily_indices(&self.prefix, s, e.min(MAX_DATE_NANOS), MAX_LISTED_DAYS)
            {
                return days;
            }
        }
        vec![index_pattern(&self.prefix)]
    }

    /// A search, retried briefly on 503: a daily index that was created a
    /// moment ago has no started shard yet and fails as a whole.
    async fn search_raw(
        &self,
        indices: &[String],
        body: Value,
        routing: Option<&str>,
    ) -> Result<Value> {
        let mut backoff = Backoff::new(Duration::from_millis(50), Duration::from_secs(2));
        for _ in 0..SEARCH_RETRIES {
            match self.search_once(indices, body.clone(), routing).await {
                Err(Error::Unavailable(m)) if m.contains("HTTP 503") || m.starts_with(PARTIAL) => {
                    tokio::time::sleep(backoff.next_delay()).await
                }
                other => return other,
            }
        }
        self.search_once(indices, body, routing).await
    }

    async fn search_once(
        &self,
        indices: &[String],
        body: Value,
        routing: Option<&str>,
    ) -> Result<Value> {
        let names: Vec<&str> = indices.iter().map(String::as_str).collect();
        let routing: Vec<&str> = routing.into_iter().collect();
        let mut req = self
            .client
            .search(SearchParts::Index(&names))
            .allow_no_indices(true)
            .ignore_unavailable(true)
            .body(body);
        if !routing.is_empty() {
            req = req.routing(&routing);
        }
        let resp = req.send().await.map_err(|e| client_error("search", e))?;
        let resp = check_status("search", resp).await?;
        let v = resp
            .json::<Value>()
            .await
            .map_err(|e| client_error("search response", e))?;
        refuse_partial(&v)?;
        Ok(v)
    }

    /// Pages through every composite bucket of `sources` under `query`.
    async fn composite(&self, query: Value, sources: Value) -> Result<Vec<Value>> {
        let mut out = Vec::new();
        let mut after: Option<Value> = None;
        loop {
            let mut comp = json!({ "size": 1000, "sources": sources });
            if let Some(a) = &after {
                comp["after"] = a.clone();
            }
            let body = json!({ "size": 0, "query": query, "aggs": { "c": { "composite": comp } } });
            let resp = self
                .search_raw(&[index_pattern(&self.prefix)], body, None)
                .await?;
            let agg = &resp["aggregations"]["c"];
            let buckets = agg["buckets"].as_array().cloned().unwrap_or_default();
            let done = buckets.is_empty();
            out.extend(buckets.into_iter().map(|mut b| b["key"].take()));
            if out.len() > MAX_BUCKETS {
                return Err(Error::TooLarge(format!(
                    "more than {MAX_BUCKETS} distinct values"
                )));
            }
            match agg.get("after_key") {
                Some(a) if !done => after = Some(a.clone()),
                _ => return Ok(out),
            }
        }
    }
}

fn hits(resp: &Value) -> &[Value] {
    resp["hits"]["hits"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

fn encode_cursor(sort: &Value) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sort.to_string())
}

fn decode_cursor(c: &str) -> Result<Value> {
    let bad = || Error::InvalidArgument(format!("bad scan cursor {c:?}"));
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(c)
        .map_err(|_| bad())?;
    let v: Value = serde_json::from_slice(&bytes).map_err(|_| bad())?;
    if v.as_array().is_none_or(|a| a.len() != 3) {
        return Err(bad());
    }
    Ok(v)
}

/// A 200 can still be partial: shards that failed (e.g. a search queue
/// full under indexing load) or timed out contribute nothing. Serving that
/// as the answer would hide data, so it is an error (retried, then
/// `Unavailable`).
fn refuse_partial(v: &Value) -> Result<()> {
    let failed = v["_shards"]["failed"].as_u64().unwrap_or(0);
    if failed == 0 && v["timed_out"].as_bool() != Some(true) {
        return Ok(());
    }
    let reason = v["_shards"]["failures"][0]["reason"].to_string();
    Err(Error::Unavailable(format!(
        "{PARTIAL}: {failed} of {} shards failed, timed_out={}: {}",
        v["_shards"]["total"],
        v["timed_out"],
        reason.chars().take(300).collect::<String>()
    )))
}

#[async_trait]
impl SpanReader for EsStore {
    async fn trace(&self, id: TraceId) -> Result<Vec<Span>> {
        let hex = id.to_hex();
        let routing = self.route_by_trace_id.then_some(hex.as_str());
        let mut spans = Vec::new();
        let mut after: Option<Value> = None;
        loop {
            let mut body = json!({
                "size": TRACE_PAGE,
                "query": { "term": { "trace_id": hex } },
                "sort": [{ "start_time": "asc" }, { "span_id": "asc" }],
                "track_total_hits": false,
            });
            if let Some(a) = after.take() {
                body["search_after"] = a;
            }
            let resp = self
                .search_raw(&[index_pattern(&self.prefix)], body, routing)
                .await?;
            let page = hits(&resp);
            for h in page {
                spans.push(document::from_source(&h["_source"])?);
            }
            if spans.len() > MAX_TRACE_SPANS {
                return Err(Error::TooLarge(format!(
                    "trace {hex} has more than {MAX_TRACE_SPANS} spans"
                )));
            }
            match page.last() {
                Some(last) if page.len() == TRACE_PAGE => after = Some(last["sort"].clone()),
                _ => return Ok(spans),
            }
        }
    }

    async fn search(&self, q: &SearchQuery) -> Result<Vec<TraceHit>> {
        if q.limit == 0 {
            return Ok(Vec::new());
        }
        let Some(query) = compile(q) else {
            return Ok(Vec::new());
        };
        // One hit per trace: its newest matching span; traces ordered by
        // it, ties by trace id (as model::sort_hits does).
        let body = json!({
            "size": q.limit.min(MAX_PAGE),
            "_source": false,
            "query": query,
            "collapse": { "field": "trace_id" },
            "sort": [{ "start_time": "desc" }, { "trace_id": "asc" }],
            "track_total_hits": false,
        });
        let resp = self.search_raw(&self.indices_for(q), body, None).await?;
        hits(&resp)
            .iter()
            .map(|h| {
                let sort = &h["sort"];
                let start_ns = sort[0]
                    .as_u64()
                    .ok_or_else(|| Error::Internal(format!("bad sort value {sort}")))?;
                let tid = sort[1].as_str().and_then(TraceId::from_hex);
                let trace_id =
                    tid.ok_or_else(|| Error::Internal(format!("bad trace id in {sort}")))?;
                Ok(TraceHit { trace_id, start_ns })
            })
            .collect()
    }

    async fn services(&self) -> Result<Vec<String>> {
        let keys = self
            .composite(
                json!({ "match_all": {} }),
                json!([{ "service": { "terms": { "field": "service" } } }]),
            )
            .await?;
        Ok(keys
            .iter()
            .filter_map(|k| k["service"].as_str().map(str::to_string))
            .collect())
    }

    async fn operations(&self, service: Option<&str>) -> Result<Vec<Operation>> {
        let query = match service {
            Some(s) => json!({ "term": { "service": s } }),
            None => json!({ "match_all": {} }),
        };
        let sources = json!([
            { "operation": { "terms": { "field": "operation" } } },
            { "kind": { "terms": { "field": "kind" } } },
        ]);
        let keys = self.composite(query, sources).await?;
        let mut ops: Vec<Operation> = keys
            .iter()
            .filter_map(|k| {
                let name = k["operation"].as_str()?.to_string();
                let kind = k["kind"]
                    .as_str()
                    .and_then(SpanKind::parse)
                    .unwrap_or_default();
                Some(Operation { name, kind })
            })
            .collect();
        ops.sort();
        ops.dedup();
        Ok(ops)
    }

    /// Services and span names of the window from a composite terms
    /// aggregation (complete); attribute keys and values, root services
    /// and names from a sample of the newest traces of the window (the
    /// documents index attributes without their scope or type). It keeps
    /// no per-service keys and values (`by_service` is empty and marked
    /// missing), so service-scoped autocomplete over a window that needs
    /// Elasticsearch falls back to the sample of the newest traces.
    async fn tag_catalog(&self, from_ns: u64, to_ns: u64) -> Result<TagCatalog> {
        let window = SearchQuery {
            start_ns: Some(from_ns),
            end_ns: Some(to_ns),
            ..Default::default()
        };
        let mut cat = TagCatalog::default();
        cat.by_service.missing = true;
        let Some(query) = compile(&window) else {
            return Ok(cat);
        };
        for spans in sample_traces(self, from_ns, to_ns, SAMPLE_TRACES).await? {
            for s in &spans {
                cat.add_span_attrs(
                    s,
                    crate::model::catalog::ANSWER_KEYS,
                    crate::model::catalog::ANSWER_VALUES_PER_KEY,
                );
            }
        }
        let sources = json!([
            { "service": { "terms": { "field": "service" } } },
            { "operation": { "terms": { "field": "operation" } } },
        ]);
        for k in self.composite(query, sources).await? {
            if let (Some(svc), Some(op)) = (k["service"].as_str(), k["operation"].as_str()) {
                cat.add_operation(svc, op);
            }
        }
        Ok(cat)
    }

    /// Elasticsearch keeps no edges: the graph is computed from the newest
    /// traces of the window, as the default does (see docs/API.md).
    async fn dependencies(&self, from_ns: u64, to_ns: u64) -> Result<Graph> {
        let mut g = Graph::default();
        let n = crate::model::storage_sampling::SAMPLE_GRAPH_TRACES;
        for spans in sample_traces(self, from_ns, to_ns, n).await? {
            g.add_trace(&spans, from_ns, to_ns);
        }
        Ok(g)
    }

    async fn scan(
        &self,
        q: &SearchQuery,
        after: Option<&str>,
        page_size: usize,
    ) -> Result<ScanPage> {
        let search_after = after.map(decode_cursor).transpose()?;
        let Some(query) = compile(q) else {
            return Ok(ScanPage::default());
        };
        let size = page_size.clamp(1, MAX_PAGE);
        // (start, trace, span) is unique per document, so search_after
        // neither skips nor repeats.
        let mut body = json!({
            "size": size,
            "query": query,
            "sort": [{ "start_time": "asc" }, { "trace_id": "asc" }, { "span_id": "asc" }],
            "track_total_hits": false,
        });
        if let Some(a) = search_after {
            body["search_after"] = a;
        }
        let resp = self.search_raw(&self.indices_for(q), body, None).await?;
        let page = hits(&resp);
        let spans = page
            .iter()
            .map(|h| document::from_source(&h["_source"]))
            .collect::<Result<Vec<_>>>()?;
        let next = match page.last() {
            Some(last) if page.len() == size => Some(encode_cursor(&last["sort"])),
            _ => None,
        };
        Ok(ScanPage { spans, next })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partial_answers_are_errors_whole_ones_pass() {
        let whole =
            json!({"timed_out": false, "_shards": {"total": 2, "successful": 2, "failed": 0}});
        assert!(refuse_partial(&whole).is_ok());
        let failed = json!({"timed_out": false, "_shards": {"total": 2, "successful": 1, "failed": 1,
            "failures": [{"reason": {"type": "es_rejected_execution_exception"}}]}});
        let e = refuse_partial(&failed).unwrap_err();
        assert!(
            matches!(&e, Error::Unavailable(m) if m.starts_with(PARTIAL) && m.contains("es_rejected_execution_exception")),
            "{e}"
        );
        let slow =
            json!({"timed_out": true, "_shards": {"total": 1, "successful": 1, "failed": 0}});
        assert!(matches!(refuse_partial(&slow), Err(Error::Unavailable(_))));
    }
}
