//! What `serve` builds for span metrics on each role (docs/METRICS.md).

use std::sync::Arc;

use super::empty::NoMetrics;
use super::store::{MetricsStore, Options, SystemClock};
use super::MetricsReader;
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

/// The store on a node that keeps data (`stores_here`), else nothing.
pub fn reader(cfg: &Config, stores_here: bool) -> Result<Wired> {
    let m = &cfg.span_metrics;
    let none = || -> Arc<dyn MetricsReader> {
        Arc::new(NoMetrics {
            min_step_ns: m.resolution_secs * 1_000_000_000,
        })
    };
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
