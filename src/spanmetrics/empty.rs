//! The reader of a node that keeps no span metrics (`span_metrics.enabled
//! = false`, or an ingest node): no series, the configured step.

use super::{MetricsReader, Point, RangeQuery, SeriesKey};
use crate::error::Result;

pub struct NoMetrics {
    pub min_step_ns: u64,
}

impl Default for NoMetrics {
    fn default() -> Self {
        NoMetrics {
            min_step_ns: 10_000_000_000,
        }
    }
}

impl MetricsReader for NoMetrics {
    fn range(&self, _: &RangeQuery) -> Result<Vec<(SeriesKey, Vec<Point>)>> {
        Ok(Vec::new())
    }
    fn totals(&self) -> Result<Vec<(SeriesKey, Point)>> {
        Ok(Vec::new())
    }
    fn min_step_ns(&self) -> u64 {
        self.min_step_ns
    }
    fn services(&self) -> Result<Vec<String>> {
        Ok(Vec::new())
    }
}
