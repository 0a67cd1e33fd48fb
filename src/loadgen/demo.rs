//! `strand serve --demo`: a gentle, endless stream of simulated traces into
//! the server's own OTLP/HTTP receiver, so the UI has something to show.

use std::time::Duration;

use super::{run_loadgen, LoadgenArgs, Protocol};

/// Spans per second sent in demo mode.
pub const DEMO_RATE: f64 = 50.0;

/// Sends demo traffic to the OTLP/HTTP receiver at `http_addr`
/// (`host:port`; an unspecified host means this machine) until the process
/// ends. Errors (e.g. the receiver not up yet) are logged and retried.
pub async fn run(http_addr: String) {
    let host_port = http_addr
        .replace("0.0.0.0", "127.0.0.1")
        .replace("[::]", "[::1]");
    let args = LoadgenArgs {
        protocol: Protocol::Http,
        http_url: format!("http://{host_port}"),
        rate: Some(DEMO_RATE),
        connections: 1,
        batch: 50,
        pool: 16,
        duration: Some("1h".into()),
        lag_samples: 0,
        error_rate: 0.05,
        quiet: true,
        ..Default::default()
    };
    loop {
        match run_loadgen(&args).await {
            Ok(s) => tracing::debug!(spans = s.spans_accepted, "demo load round finished"),
            Err(e) => {
                tracing::warn!(error = %e, "demo load failed; retrying");
                tokio::time::sleep(Duration::from_secs(5)).await;
            }
        }
    }
}
