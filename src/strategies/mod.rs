//! Remote sampling (Jaeger protocol) and adaptive sampling: the strategies
//! SDKs poll (`GET /sampling?service=`, `/api/sampling` on the query port,
//! gRPC `jaeger.api_v2.SamplingManager`), loaded from a Jaeger strategies
//! file that is reloaded on change, with adaptive per-operation
//! probabilities computed from span metrics. See docs/SAMPLING.md.

pub mod adaptive;
pub mod config;
pub mod grpc;
pub mod http;
pub mod model;
pub mod stage;
pub mod store;

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use actix::Addr;
use tokio::sync::watch;

use crate::actors::listener::watch_http;
use crate::actors::tree::{Root, StageHandle};
use crate::config::Config;
use crate::error::Result;
use crate::spanmetrics::MetricsReader;

/// Starts what serves and feeds the strategies: the sampling HTTP and gRPC
/// listeners (stages `sampling_http`, `sampling_grpc` in group `ingest`),
/// the file reloader and the adaptive controller (`sampling_strategies`,
/// `adaptive_sampling` in group `pipeline`).
pub fn start(
    cfg: &Config,
    store: Arc<store::Store>,
    span_metrics: &crate::spanmetrics::wiring::Wired,
    (http, grpc): (Option<TcpListener>, Option<TcpListener>),
    tls: Option<&crate::security::ServerTls>,
    servers: &mut Vec<actix_web::dev::ServerHandle>,
    (root, stopping): (&Addr<Root>, watch::Receiver<bool>),
) -> Result<()> {
    let remote = &cfg.sampling.remote;
    if let Some(l) = http {
        let t = crate::security::ServerTls::for_listener(tls, "sampling_http");
        let server = http::server_on(l, store.clone(), t)?;
        servers.push(server.handle());
        let stage = StageHandle::new(Some(root), "ingest", "sampling_http");
        watch_http(server, stage, stopping.clone());
        tracing::info!(addr = %remote.http_addr, "remote sampling (HTTP) listening");
    }
    if let Some(l) = grpc {
        let stage = StageHandle::new(Some(root), "ingest", "sampling_grpc");
        let t = crate::security::ServerTls::for_listener(tls, "sampling_grpc");
        grpc::serve(l, store.clone(), t, stage, stopping)?;
        tracing::info!(addr = %remote.grpc_addr, "remote sampling (gRPC) listening");
    }
    if !remote.strategies_file.as_os_str().is_empty() {
        let every = Duration::from_millis(remote.reload_interval_ms);
        stage::start(store, every, Some(root));
    }
    let a = &cfg.sampling.adaptive;
    if a.enabled {
        let reader: Arc<dyn MetricsReader> = if a.metrics_peers.is_empty() {
            span_metrics.reader.clone()
        } else {
            let m = &cfg.span_metrics;
            Arc::new(crate::spanmetrics::peer::PeerMetrics::new(
                &a.metrics_peers,
                m.resolution_secs * 1_000_000_000,
                m.retention_days * 86_400 * 1_000_000_000,
                crate::tiers::peer::DEFAULT_TIMEOUT,
            )?)
        };
        if !reader.enabled() {
            tracing::warn!(
                "adaptive sampling reads span metrics, and this node keeps none: \
                 set sampling.adaptive.metrics_peers to the writers"
            );
        }
        let table = crate::pipeline::sampling::Probabilities::global();
        let c = adaptive::Controller::new(a, reader, table);
        let stage = StageHandle::new(Some(root), "pipeline", "adaptive_sampling");
        adaptive::start(c, Duration::from_millis(a.interval_ms), stage);
    }
    Ok(())
}
