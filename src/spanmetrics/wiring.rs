//! What `serve` builds for span metrics on each role (docs/METRICS.md).

use std::sync::Arc;

use actix::Addr;

use super::accum::Hub;
use super::empty::NoMetrics;
use super::flusher::{self, DeltaSink, Flusher};
use super::store::{MetricsStore, Options, SystemClock};
use super::MetricsReader;
use crate::actors::tree::Root;
use crate::config::Config;
use crate::error::Result;

/// The `metrics/` directory under the data directory.
pub fn dir(cfg: &Config) -> std::path::PathBuf {
    cfg.storage.dir.join("metrics")
}

pub struct Wired {
    /// Where this node stores span metrics, if it does.
    pub store: Option<Arc<MetricsStore>>,
    /// What the query API reads.
    pub reader: Arc<dyn MetricsReader>,
}

/// The store on a node that keeps data (`stores_here`), the writer peers
/// on a query node that reads them (`peers` not empty), else nothing.
pub fn reader(cfg: &Config, stores_here: bool, peers: &[String]) -> Result<Wired> {
    let m = &cfg.span_metrics;
    let none = || -> Arc<dyn MetricsReader> {
        Arc::new(NoMetrics {
            min_step_ns: m.resolution_secs * 1_000_000_000,
        })
    };
    if m.enabled && !peers.is_empty() {
        let step = m.resolution_secs * 1_000_000_000;
        let timeout = crate::tiers::peer::DEFAULT_TIMEOUT;
        let retention = m.retention_days * 86_400 * 1_000_000_000;
        let peer = super::peer::PeerMetrics::new(peers, step, retention, timeout)?;
        return Ok(Wired {
            store: None,
            reader: Arc::new(peer),
        });
    }
    if !m.enabled || !stores_here {
        return Ok(Wired {
            store: None,
            reader: none(),
        });
    }
    let store = MetricsStore::open(&dir(cfg), Options::from_config(m), Arc::new(SystemClock))?;
    Ok(Wired {
        reader: store.clone(),
        store: Some(store),
    })
}

/// Starts counting on a node with receivers (`ingests_here`) and the
/// `span_metrics` stage wherever there is something to flush or a store
/// to look after. The hub goes to the receivers; the flusher is flushed
/// once more at shutdown.
pub async fn start(
    cfg: &Config,
    ingests_here: bool,
    wired: &Wired,
    root: Option<&Addr<Root>>,
) -> Result<(Option<Arc<Hub>>, Arc<Flusher>)> {
    let m = &cfg.span_metrics;
    let hub = (m.enabled && ingests_here).then(|| {
        Hub::new(
            m.resolution_secs * 1_000_000_000,
            m.max_operations_per_service,
        )
    });
    if let (Some(h), Some(s)) = (&hub, &wired.store) {
        h.admission().seed(s.totals()?.into_iter().map(|(k, _)| k));
    }
    let sink: Option<Arc<dyn DeltaSink>> = match (&hub, cfg.kafka.enabled) {
        (None, _) => None,
        (Some(_), false) => wired.store.clone().map(|s| s as Arc<dyn DeltaSink>),
        (Some(_), true) => Some(super::kafka::MetricsPublisher::connect(cfg).await?),
    };
    let flusher = Flusher::new(hub.clone(), sink, wired.store.clone());
    if hub.is_some() || wired.store.is_some() {
        let every = std::time::Duration::from_millis(m.flush_interval_ms);
        flusher::start(flusher.clone(), every, root);
    }
    Ok((hub, flusher))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[actix_rt::test]
    async fn disabled_means_no_counting_no_store_and_no_stage() {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = Config::default();
        cfg.storage.dir = dir.path().to_path_buf();
        cfg.span_metrics.enabled = false;
        let wired = reader(&cfg, true, &[]).unwrap();
        assert!(wired.store.is_none());
        let (hub, flusher) = start(&cfg, true, &wired, None).await.unwrap();
        assert!(hub.is_none(), "the receivers get no accumulator");
        assert_eq!(flusher.flush().unwrap(), 0);
        assert!(!dir.path().join("metrics").exists());

        cfg.span_metrics.enabled = true;
        let wired = reader(&cfg, true, &[]).unwrap();
        let (hub, _) = start(&cfg, true, &wired, None).await.unwrap();
        assert!(hub.is_some() && wired.store.is_some());
        assert!(dir.path().join("metrics").is_dir());
    }
}
