//! Ratio lookups by service and operation: the configured rules, and the
//! adaptive probabilities the controller (`strategies::adaptive`) writes.

use parking_lot::RwLock;
use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use crate::config::SamplingRule;

/// `[[sampling.rules]]`, compiled for lookups.
#[derive(Debug, Default)]
pub struct Rules {
    by_operation: HashMap<(String, String), f64>,
    by_service: HashMap<String, f64>,
}

impl Rules {
    pub fn new(rules: &[SamplingRule]) -> Rules {
        let mut out = Rules::default();
        for r in rules {
            if r.operation.is_empty() {
                out.by_service.insert(r.service.clone(), r.ratio);
            } else {
                out.by_operation
                    .insert((r.service.clone(), r.operation.clone()), r.ratio);
            }
        }
        out
    }

    pub fn operation(&self, service: &str, operation: &str) -> Option<f64> {
        if self.by_operation.is_empty() {
            return None;
        }
        // One allocation per lookup only when operation rules exist.
        self.by_operation
            .get(&(service.to_string(), operation.to_string()))
            .copied()
    }

    pub fn service(&self, service: &str) -> Option<f64> {
        self.by_service.get(service).copied()
    }

    pub fn any_below_one(&self) -> bool {
        self.by_operation
            .values()
            .chain(self.by_service.values())
            .any(|r| *r < 1.0)
    }
}

/// Probabilities per (service, operation), replaced whole each interval.
#[derive(Debug, Default)]
pub struct Probabilities {
    map: RwLock<Arc<HashMap<(String, String), f64>>>,
}

impl Probabilities {
    /// The process's table: the adaptive controller writes it, receivers
    /// read it.
    pub fn global() -> Arc<Probabilities> {
        static T: OnceLock<Arc<Probabilities>> = OnceLock::new();
        T.get_or_init(Default::default).clone()
    }

    pub fn replace(&self, map: HashMap<(String, String), f64>) {
        *self.map.write() = Arc::new(map);
    }

    pub fn snapshot(&self) -> Arc<HashMap<(String, String), f64>> {
        self.map.read().clone()
    }

    pub fn get(&self, service: &str, operation: &str) -> Option<f64> {
        let m = self.map.read();
        if m.is_empty() {
            return None;
        }
        m.get(&(service.to_string(), operation.to_string()))
            .copied()
    }
}
