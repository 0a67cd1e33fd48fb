//! `strand serve --demo`: a gentle, endless stream of web-shop traces
//! ([`super::shop`]) into the server's own OTLP/HTTP receiver, so the UI has
//! something realistic to show. Every trace is generated afresh (random
//! ids, its own timings); the benchmark's pre-encoded pool is not used.

use std::time::Duration;

use bytes::Bytes;
use prost::Message;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::client::{retry_backoff, Outcome, Sender};
use super::shop::Shop;
use crate::model::now_ns;

/// Spans per second sent in demo mode (about 3–4 traces).
pub const DEMO_RATE: f64 = 50.0;

/// One second's worth of traces, each starting 2–3 s before `now_ns` (so
/// even a slow request and its queued email have ended by now).
pub fn batch(shop: &Shop, rng: &mut StdRng, now_ns: u64) -> (Bytes, usize) {
    let mut traces = Vec::new();
    let mut spans = 0;
    while spans < DEMO_RATE as usize {
        let start = now_ns.saturating_sub(3_000_000_000) + rng.gen_range(0..1_000_000_000);
        let t = shop.trace(rng, start);
        spans += t.len();
        traces.push(t);
    }
    (Bytes::from(shop.request(traces).encode_to_vec()), spans)
}

/// Sends demo traffic to the OTLP/HTTP receiver at `http_addr`
/// (`host:port`; an unspecified host means this machine) until the process
/// ends. Failures (e.g. the receiver not up yet) are logged and retried.
pub async fn run(http_addr: String) {
    let host_port = http_addr
        .replace("0.0.0.0", "127.0.0.1")
        .replace("[::]", "[::1]");
    let mut sender = loop {
        match Sender::http(&format!("http://{host_port}")) {
            Ok(s) => break s,
            Err(e) => {
                tracing::warn!(error = %e, "demo traffic: no HTTP client; retrying");
                tokio::time::sleep(Duration::from_secs(5)).await;
            }
        }
    };
    let shop = Shop::new();
    let mut rng = StdRng::from_entropy();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let (body, spans) = batch(&shop, &mut rng, now_ns());
        let mut backoff = retry_backoff();
        for attempt in 0..5 {
            match sender.send(body.clone()).await {
                Outcome::Accepted { .. } => {
                    tracing::trace!(spans, "demo traces sent");
                    break;
                }
                Outcome::Retry { after, why } if attempt < 4 => {
                    tracing::debug!(%why, "demo traffic: retrying");
                    let d = backoff.next_delay();
                    tokio::time::sleep(after.map_or(d, |a| a.max(d))).await;
                }
                Outcome::Retry { why, .. } | Outcome::Failed(why) => {
                    tracing::warn!(%why, spans, "demo traffic: batch dropped");
                    break;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::otlp::proto::collector::trace::v1::ExportTraceServiceRequest;

    #[test]
    fn a_batch_is_a_second_of_whole_traces_in_the_past() {
        let shop = Shop::new();
        let mut rng = StdRng::seed_from_u64(1);
        let now = 1_800_000_000_000_000_000;
        let (body, spans) = batch(&shop, &mut rng, now);
        let req = ExportTraceServiceRequest::decode(body).unwrap();
        let all: Vec<_> = req
            .resource_spans
            .iter()
            .flat_map(|r| &r.scope_spans)
            .flat_map(|s| &s.spans)
            .collect();
        assert_eq!(all.len(), spans);
        assert!(spans >= DEMO_RATE as usize && spans < DEMO_RATE as usize + 200);
        assert!(all
            .iter()
            .all(|s| s.start_time_unix_nano >= now - 3_000_000_000));
        // Only the queued email can run past the request; nothing ends in the future.
        assert!(
            all.iter().all(|s| s.end_time_unix_nano < now),
            "spans end in the past"
        );
    }
}
