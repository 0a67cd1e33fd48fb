//! `--mode query`: trace-by-id and search load against a populated store,
//! through the Jaeger-compatible query API.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use rand::{Rng, SeedableRng};
use serde::Serialize;

use super::stats::{Histogram, Percentiles};
use crate::error::{Error, Result};

#[derive(Clone, Debug, Default, Serialize)]
pub struct QueryReport {
    pub requests: u64,
    pub errors: u64,
    pub requests_per_sec: f64,
    pub trace_by_id_ms: Percentiles,
    pub search_ms: Percentiles,
}

async fn get_json(client: &reqwest::Client, url: &str) -> Result<serde_json::Value> {
    let r = client
        .get(url)
        .send()
        .await
        .map_err(|e| Error::Unavailable(format!("GET {url}: {e}")))?;
    if !r.status().is_success() {
        return Err(Error::Unavailable(format!(
            "GET {url}: HTTP {}",
            r.status()
        )));
    }
    r.json()
        .await
        .map_err(|e| Error::Internal(format!("GET {url}: bad JSON: {e}")))
}

fn strings(v: &serde_json::Value, f: impl Fn(&serde_json::Value) -> Option<&str>) -> Vec<String> {
    v.get("data")
        .and_then(|d| d.as_array())
        .map(|a| a.iter().filter_map(&f).map(String::from).collect())
        .unwrap_or_default()
}

fn search_url(base: &str, service: &str) -> String {
    format!(
        "{base}/api/traces?service={}&limit=20&lookback=1h",
        service.replace(' ', "%20")
    )
}

/// Runs `connections` workers for `duration`: one search for every four
/// trace fetches, over services and trace ids discovered up front.
pub async fn run(
    query_url: &str,
    connections: usize,
    duration: Duration,
    seed: u64,
) -> Result<QueryReport> {
    let base = query_url.trim_end_matches('/').to_string();
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .map_err(|e| Error::Internal(format!("http client: {e}")))?;
    let services = strings(
        &get_json(&client, &format!("{base}/api/services")).await?,
        |v| v.as_str(),
    );
    if services.is_empty() {
        return Err(Error::InvalidArgument(format!(
            "{base} has no services: ingest some spans first"
        )));
    }
    let mut ids = Vec::new();
    for s in &services {
        let found = get_json(&client, &search_url(&base, s)).await?;
        ids.extend(strings(&found, |t| {
            t.get("traceID").and_then(|v| v.as_str())
        }));
    }
    if ids.is_empty() {
        return Err(Error::InvalidArgument(format!(
            "{base}: searches found no traces in the last hour"
        )));
    }
    let (services, ids) = (Arc::new(services), Arc::new(ids));
    let traces = Arc::new(Mutex::new(Histogram::default()));
    let searches = Arc::new(Mutex::new(Histogram::default()));
    let errors = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let mut workers = Vec::new();
    for w in 0..connections.max(1) {
        let (client, base, services, ids) =
            (client.clone(), base.clone(), services.clone(), ids.clone());
        let (traces, searches, errors) = (traces.clone(), searches.clone(), errors.clone());
        workers.push(tokio::spawn(async move {
            let mut rng = rand::rngs::StdRng::seed_from_u64(seed.wrapping_add(w as u64));
            let mut i = 0u64;
            while start.elapsed() < duration {
                let search = i % 5 == 0;
                i += 1;
                let url = if search {
                    search_url(&base, &services[rng.gen_range(0..services.len())])
                } else {
                    format!("{base}/api/traces/{}", ids[rng.gen_range(0..ids.len())])
                };
                let t = Instant::now();
                let ok = match client.get(&url).send().await {
                    Ok(r) => r.status().is_success() && r.bytes().await.is_ok(),
                    Err(_) => false,
                };
                let us = t.elapsed().as_micros() as u64;
                if !ok {
                    errors.fetch_add(1, Ordering::Relaxed);
                }
                if search {
                    searches.lock().record(us)
                } else {
                    traces.lock().record(us)
                }
            }
        }));
    }
    for w in workers {
        let _ = w.await;
    }
    let (t, s) = (
        traces.lock().percentiles_ms(),
        searches.lock().percentiles_ms(),
    );
    let requests = t.count + s.count;
    Ok(QueryReport {
        requests,
        errors: errors.load(Ordering::Relaxed),
        requests_per_sec: requests as f64 / start.elapsed().as_secs_f64().max(1e-9),
        trace_by_id_ms: t,
        search_ms: s,
    })
}
