//! Span metrics as a node's `/internal/v1/span-metrics/*` answers them
//! (blocks of the store's own format), summed per (service, operation).

use std::collections::BTreeMap;

use strand::spanmetrics::store::codec::decode_block;

/// `(calls, errors)` per (service, operation), for one service.
pub type Counts = BTreeMap<(String, String), (u64, u64)>;

async fn get_block(
    url: &str,
) -> Option<Vec<(strand::spanmetrics::SeriesKey, strand::spanmetrics::Point)>> {
    let resp = reqwest::get(url).await.ok()?;
    if !resp.status().is_success() {
        return None;
    }
    let body = resp.bytes().await.ok()?;
    Some(decode_block(&body).expect("a valid block").records)
}

fn sum(
    records: Vec<(strand::spanmetrics::SeriesKey, strand::spanmetrics::Point)>,
    service: &str,
) -> Counts {
    let mut out = Counts::new();
    for (k, p) in records.into_iter().filter(|(k, _)| k.service == service) {
        let e = out.entry((k.service, k.operation)).or_default();
        e.0 += p.calls;
        e.1 += p.errors;
    }
    out
}

/// Cumulative totals of `service` at the query address `base`.
pub async fn totals(base: &str, service: &str) -> Option<Counts> {
    let recs = get_block(&format!("{base}/internal/v1/span-metrics/totals")).await?;
    Some(sum(recs, service))
}

/// The points of `service` over the last `secs` seconds, summed.
pub async fn range(base: &str, service: &str, secs: u64) -> Option<Counts> {
    let now = strand::model::now_ns();
    let start = now - secs * 1_000_000_000;
    let url = format!(
        "{base}/internal/v1/span-metrics/range?service={service}&start={start}&end={}&step=10000000000",
        now + 60_000_000_000
    );
    Some(sum(get_block(&url).await?, service))
}

/// Sends `traces` traces of 4 spans (`op-0` … `op-3`) of `service` to the
/// OTLP/HTTP address `http`, trace ids from `seed`; every third trace's
/// `op-3` span is an error. Returns what was sent, as [`Counts`].
pub async fn send_workload(http: &str, service: &str, traces: u64, seed: u64) -> Counts {
    use super::otlp;
    use strand::otlp::proto::trace::v1::Status;
    let client = reqwest::Client::new();
    let mut sent = Counts::new();
    for t in 0..traces {
        let mut spans = otlp::spans_now(otlp::trace_id(seed, t + 1), 4, 1 + t * 8, vec![]);
        for s in &mut spans {
            let error = s.name == "op-3" && t % 3 == 0;
            if error {
                s.status = Some(Status {
                    code: 2,
                    message: "boom".into(),
                });
            }
            let e = sent
                .entry((service.to_string(), s.name.clone()))
                .or_default();
            e.0 += 1;
            e.1 += u64::from(error);
        }
        let req = otlp::request(service, spans);
        let status = otlp::post_status(&client, http, &req).await;
        assert_eq!(status, 200, "export of trace {t} to {http}");
    }
    sent
}

/// A node's `/metrics/spans` parsed by prometheus_client's OpenMetrics
/// parser (tests/openmetrics_parse.py), as JSON.
pub fn parse_exposition(query_url: &str) -> serde_json::Value {
    super::python::run_json(
        "openmetrics_parse.py",
        &[&format!("{query_url}/metrics/spans")],
    )
}
