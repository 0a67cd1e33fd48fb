//! Plain HTTP against a running process: JSON and text GETs, Prometheus
//! text, query-string encoding.

use std::sync::OnceLock;
use std::time::Duration;

use serde_json::Value;

/// One client for every test. No idle connections are kept: each
/// `#[tokio::test]` has its own runtime, and a pooled connection must not
/// outlive the runtime that opened it.
pub fn client() -> &'static reqwest::Client {
    static CLIENT: OnceLock<reqwest::Client> = OnceLock::new();
    CLIENT.get_or_init(|| {
        reqwest::Client::builder()
            .pool_max_idle_per_host(0)
            .timeout(Duration::from_secs(30))
            .build()
            .expect("HTTP client")
    })
}

/// GET with a few retries of transport errors: a loaded machine (2 cores
/// running a broker and several strand processes) occasionally drops a
/// connection. A status is always returned as is.
pub async fn get(url: &str) -> reqwest::Response {
    let mut attempt = 0;
    loop {
        match client().get(url).send().await {
            Ok(r) => return r,
            Err(e) if attempt < 5 => {
                attempt += 1;
                eprintln!("GET {url}: {e}; retrying");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => panic!("unreachable: GET {url}: {e}"),
        }
    }
}

/// Status and JSON body (`Null` when the body is not JSON).
pub async fn get_json(url: &str) -> (u16, Value) {
    let r = get(url).await;
    let code = r.status().as_u16();
    (code, r.json().await.unwrap_or(Value::Null))
}

pub async fn get_text(url: &str) -> (u16, String) {
    let r = get(url).await;
    let code = r.status().as_u16();
    (code, r.text().await.unwrap_or_default())
}

/// Sum of a metric over its label sets in Prometheus text; `name` may also
/// be one series with its labels. `None` when no line has it.
pub fn metric_in(text: &str, name: &str) -> Option<f64> {
    let values: Vec<f64> = text
        .lines()
        .filter(|l| l.starts_with(name) && l[name.len()..].starts_with(['{', ' ']))
        .filter_map(|l| l.rsplit(' ').next()?.trim().parse::<f64>().ok())
        .collect();
    (!values.is_empty()).then(|| values.iter().sum())
}

/// A metric from a node's /metrics, summed over its label sets (0 when absent).
pub async fn metric(node: &str, name: &str) -> u64 {
    let (_, text) = get_text(&format!("{node}/metrics")).await;
    metric_in(&text, name).unwrap_or(0.0) as u64
}

/// Percent-encodes a query value.
pub fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}
