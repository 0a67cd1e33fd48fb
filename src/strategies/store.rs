//! The strategies in force: parsed from a Jaeger strategies file (or
//! derived from `[sampling]` when there is none), replaced whole on a
//! successful reload, merged with the adaptive probabilities on answer.

use parking_lot::{Mutex, RwLock};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use super::model::{
    FileStrategy, FileType, OperationStrategy, PerOperation, Probabilistic, Response,
    StrategiesFile,
};
use crate::config::SamplingConfig;
use crate::error::{Error, Result};
use crate::metrics::{Counter, Gauge};
use crate::pipeline::sampling::Probabilities;

/// Jaeger's default when a file has no `default_strategy`.
pub const JAEGER_DEFAULT_PROBABILITY: f64 = 0.001;

/// One parsed set of strategies.
#[derive(Clone, Debug, PartialEq)]
pub struct Strategies {
    pub default: Response,
    pub services: HashMap<String, Response>,
}

impl Strategies {
    /// Parses Jaeger's strategies JSON; the error names the line and
    /// column of malformed JSON, or the entry of an invalid value.
    pub fn parse(text: &str) -> std::result::Result<Strategies, String> {
        let f: StrategiesFile = serde_json::from_str(text)
            .map_err(|e| format!("line {}, column {}: {e}", e.line(), e.column()))?;
        let default = match &f.default_strategy {
            Some(d) => response_of(d, "default_strategy", &[])?,
            None => Response::probabilistic(JAEGER_DEFAULT_PROBABILITY),
        };
        let default_ops = f
            .default_strategy
            .as_ref()
            .map(|d| d.operation_strategies.clone())
            .unwrap_or_default();
        let mut services = HashMap::new();
        for (i, s) in f.service_strategies.iter().enumerate() {
            let at = format!("service_strategies[{i}]");
            if s.service.is_empty() {
                return Err(format!("{at}.service: must not be empty"));
            }
            let r = response_of(s, &at, &default_ops)?;
            if services.insert(s.service.clone(), r).is_some() {
                return Err(format!("{at}: service {:?} is listed twice", s.service));
            }
        }
        Ok(Strategies { default, services })
    }

    /// Without a file: the `[sampling]` ratio for everyone, a service rule
    /// as that service's probability, operation rules per operation.
    pub fn from_config(cfg: &SamplingConfig) -> Strategies {
        let mut services: HashMap<String, Response> = HashMap::new();
        let service_ratio = |s: &str| {
            cfg.rules
                .iter()
                .find(|r| r.service == s && r.operation.is_empty())
                .map_or(cfg.ratio, |r| r.ratio)
        };
        for r in &cfg.rules {
            let e = services
                .entry(r.service.clone())
                .or_insert_with(|| Response::probabilistic(service_ratio(&r.service)));
            if !r.operation.is_empty() {
                let ops = per_operation(e);
                ops.per_operation_strategies.push(OperationStrategy {
                    operation: r.operation.clone(),
                    probabilistic_sampling: Probabilistic {
                        sampling_rate: r.ratio,
                    },
                });
            }
        }
        Strategies {
            default: Response::probabilistic(cfg.ratio),
            services,
        }
    }

    pub fn for_service(&self, service: &str) -> &Response {
        self.services.get(service).unwrap_or(&self.default)
    }
}

/// The per-operation part of `r`, created from its default probability.
fn per_operation(r: &mut Response) -> &mut PerOperation {
    let p = r.default_probability();
    r.operation_sampling.get_or_insert_with(|| PerOperation {
        default_sampling_probability: p,
        default_lower_bound_traces_per_second: 0.0,
        per_operation_strategies: Vec::new(),
        default_upper_bound_traces_per_second: 0.0,
    })
}

fn response_of(
    s: &FileStrategy,
    at: &str,
    inherited_ops: &[super::model::FileOperation],
) -> std::result::Result<Response, String> {
    let mut r = match s.kind {
        FileType::Probabilistic => {
            check_probability(s.param, &format!("{at}.param"))?;
            Response::probabilistic(s.param)
        }
        FileType::Ratelimiting => {
            if !(s.param.is_finite() && s.param >= 0.0 && s.param <= i32::MAX as f64) {
                return Err(format!(
                    "{at}.param: {} is not a number of traces per second",
                    s.param
                ));
            }
            Response::rate_limiting(s.param.round() as i32)
        }
    };
    let ops = if s.operation_strategies.is_empty() {
        inherited_ops
    } else {
        &s.operation_strategies[..]
    };
    if !ops.is_empty() {
        // Per-operation strategies are probabilistic only (Jaeger's rule):
        // the service's default is its own probability, or the default's.
        let default_p = match s.kind {
            FileType::Probabilistic => s.param,
            FileType::Ratelimiting => JAEGER_DEFAULT_PROBABILITY,
        };
        let mut list = Vec::new();
        for (j, o) in ops.iter().enumerate() {
            let oat = format!("{at}.operation_strategies[{j}]");
            if o.kind != FileType::Probabilistic {
                return Err(format!(
                    "{oat}.type: only probabilistic is supported per operation"
                ));
            }
            check_probability(o.param, &format!("{oat}.param"))?;
            list.push(OperationStrategy {
                operation: o.operation.clone(),
                probabilistic_sampling: Probabilistic {
                    sampling_rate: o.param,
                },
            });
        }
        r.operation_sampling = Some(PerOperation {
            default_sampling_probability: default_p,
            default_lower_bound_traces_per_second: 0.0,
            per_operation_strategies: list,
            default_upper_bound_traces_per_second: 0.0,
        });
    }
    Ok(r)
}

fn check_probability(p: f64, at: &str) -> std::result::Result<(), String> {
    if (0.0..=1.0).contains(&p) {
        Ok(())
    } else {
        Err(format!("{at}: {p} is not a probability (0.0..=1.0)"))
    }
}

/// What the endpoints answer from: the strategies in force, their source
/// file (reloaded when its modification time changes) and the adaptive
/// probabilities, when adaptive sampling is on.
pub struct Store {
    current: RwLock<Arc<Strategies>>,
    file: Option<PathBuf>,
    seen: Mutex<Option<(SystemTime, u64)>>,
    last_error: Mutex<Option<String>>,
    adaptive: Option<(Arc<Probabilities>, f64)>,
    reloads: Counter,
    errors: Counter,
    failing: Gauge,
}

impl Store {
    /// Loads the file named by `sampling.remote.strategies_file`, if any;
    /// a malformed file fails start-up with the line named.
    pub fn open(cfg: &SamplingConfig) -> Result<Arc<Store>> {
        let file = (!cfg.remote.strategies_file.as_os_str().is_empty())
            .then(|| cfg.remote.strategies_file.clone());
        let adaptive = cfg.adaptive.enabled.then(|| {
            (
                Probabilities::global(),
                cfg.adaptive.lower_bound_traces_per_sec,
            )
        });
        Self::build(cfg, file, adaptive)
    }

    pub fn build(
        cfg: &SamplingConfig,
        file: Option<PathBuf>,
        adaptive: Option<(Arc<Probabilities>, f64)>,
    ) -> Result<Arc<Store>> {
        let (strategies, seen) = match &file {
            Some(p) => {
                let (s, m) = read(p).map_err(|e| {
                    Error::config(
                        "sampling.remote.strategies_file",
                        format!("{}: {e}", p.display()),
                    )
                })?;
                (s, Some(m))
            }
            None => (Strategies::from_config(cfg), None),
        };
        Ok(Arc::new(Store {
            current: RwLock::new(Arc::new(strategies)),
            file,
            seen: Mutex::new(seen),
            last_error: Mutex::new(None),
            adaptive,
            reloads: Counter::new(
                "strand_sampling_strategies_reloads_total",
                "strategies files loaded after a change",
                &[],
            ),
            errors: Counter::new(
                "strand_sampling_strategies_reload_errors_total",
                "strategies files that failed to load (the previous strategies stay in force)",
                &[],
            ),
            failing: Gauge::new(
                "strand_sampling_strategies_reload_failing",
                "1 while the strategies file on disk is not the one in force (its last load failed)",
                &[],
            ),
        }))
    }

    pub fn strategies(&self) -> Arc<Strategies> {
        self.current.read().clone()
    }

    /// The last reload error, while the file on disk is not in force.
    pub fn last_error(&self) -> Option<String> {
        self.last_error.lock().clone()
    }

    /// Reloads the file when its modification time changed. Ok(true) when
    /// new strategies are in force; on error the previous ones stay.
    pub fn reload_if_changed(&self) -> std::result::Result<bool, String> {
        let Some(path) = &self.file else {
            return Ok(false);
        };
        // Length too: two writes within one timestamp tick still differ.
        let mtime = std::fs::metadata(path)
            .and_then(|m| Ok((m.modified()?, m.len())))
            .map_err(|e| format!("{}: {e}", path.display()));
        let mtime = match mtime {
            Ok(m) => m,
            Err(e) => return Err(self.failed(e)),
        };
        if *self.seen.lock() == Some(mtime) {
            return Ok(false);
        }
        *self.seen.lock() = Some(mtime);
        match read(path) {
            Ok((s, _)) => {
                *self.current.write() = Arc::new(s);
                *self.last_error.lock() = None;
                self.failing.set(0);
                self.reloads.inc();
                tracing::info!(file = %path.display(), "sampling strategies reloaded");
                Ok(true)
            }
            Err(e) => Err(self.failed(format!("{}: {e}", path.display()))),
        }
    }

    /// Counts and logs a failed load once per distinct error, so a file
    /// that stays missing is not reported on every poll.
    fn failed(&self, e: String) -> String {
        let mut last = self.last_error.lock();
        if last.as_deref() != Some(e.as_str()) {
            self.errors.inc();
            tracing::error!(error = %e, "sampling strategies not reloaded; the previous ones stay in force");
        }
        self.failing.set(1);
        *last = Some(e.clone());
        e
    }

    /// The answer for `service`: its strategy, with the adaptive
    /// per-operation probabilities of the service merged in (they win over
    /// the file's for the same operation).
    pub fn response(&self, service: &str) -> Response {
        let mut r = self.strategies().for_service(service).clone();
        let Some((table, lower)) = &self.adaptive else {
            return r;
        };
        let snap = table.snapshot();
        let mut ops: Vec<(&String, f64)> = snap
            .iter()
            .filter(|((s, _), _)| s == service)
            .map(|((_, o), p)| (o, *p))
            .collect();
        if ops.is_empty() {
            return r;
        }
        ops.sort_by(|a, b| a.0.cmp(b.0));
        let per = per_operation(&mut r);
        per.default_lower_bound_traces_per_second = *lower;
        per.per_operation_strategies
            .retain(|o| !ops.iter().any(|(name, _)| **name == o.operation));
        per.per_operation_strategies
            .extend(ops.into_iter().map(|(o, p)| OperationStrategy {
                operation: o.clone(),
                probabilistic_sampling: Probabilistic { sampling_rate: p },
            }));
        r
    }
}

fn read(path: &Path) -> std::result::Result<(Strategies, (SystemTime, u64)), String> {
    let meta = std::fs::metadata(path).map_err(|e| e.to_string())?;
    let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
    let s = Strategies::parse(&text)?;
    let mtime = meta.modified().map_err(|e| e.to_string())?;
    Ok((s, (mtime, meta.len())))
}

#[cfg(test)]
#[path = "store_tests.rs"]
mod tests;
