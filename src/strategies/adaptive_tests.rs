use super::*;
use crate::model::StatusCode;
use crate::spanmetrics::{point, Point, RangeQuery, SeriesKey};
use parking_lot::Mutex;

/// Cumulative totals as a metrics store (or the writers, merged) holds
/// them: counts only grow.
#[derive(Default)]
struct Totals(Mutex<HashMap<(String, SpanKind), u64>>);

impl Totals {
    fn add(&self, op: &str, kind: SpanKind, n: f64) {
        *self.0.lock().entry((op.to_string(), kind)).or_default() += n.round() as u64;
    }
}

impl MetricsReader for Totals {
    fn range(&self, _: &RangeQuery) -> Result<Vec<(SeriesKey, Vec<Point>)>> {
        Ok(Vec::new())
    }
    fn totals(&self) -> Result<Vec<(SeriesKey, Point)>> {
        Ok(self
            .0
            .lock()
            .iter()
            .map(|((op, kind), n)| {
                let mut p = point::empty(0);
                p.calls = *n;
                let k = SeriesKey {
                    service: "shop".into(),
                    operation: op.clone(),
                    kind: *kind,
                    status: StatusCode::Unset,
                };
                (k, p)
            })
            .collect())
    }
    fn min_step_ns(&self) -> u64 {
        10_000_000_000
    }
    fn services(&self) -> Result<Vec<String>> {
        Ok(vec!["shop".into()])
    }
}

fn cfg(target: f64) -> AdaptiveSamplingConfig {
    AdaptiveSamplingConfig {
        enabled: true,
        target_traces_per_sec: target,
        min_probability: 0.001,
        ..Default::default()
    }
}

fn p(c: &Controller, op: &str) -> f64 {
    c.probabilities()[&("shop".to_string(), op.to_string())]
}

/// Intervals (of 1 s) after a 10× shift until the stored rate is within
/// 20% of the target: the number docs/BENCHMARKS.md quotes.
fn intervals_to_converge(smoothing: f64, edge: bool) -> usize {
    let totals = Arc::new(Totals::default());
    let mut c = Controller::new(
        &AdaptiveSamplingConfig {
            smoothing,
            apply_at_receiver: !edge,
            ..cfg(10.0)
        },
        totals.clone(),
        Arc::new(Probabilities::default()),
    );
    let t0 = Instant::now();
    let mut offered = 50.0;
    let arrive = |c: &Controller, offered: f64| {
        // In edge mode the SDKs sample before sending.
        let served = c
            .probabilities()
            .get(&("shop".to_string(), "checkout".to_string()))
            .copied()
            .unwrap_or(1.0);
        if edge {
            offered * served
        } else {
            offered
        }
    };
    c.tick_at(t0).unwrap();
    for s in 1..=20u64 {
        totals.add("checkout", SpanKind::Server, arrive(&c, offered));
        c.tick_at(t0 + Duration::from_secs(s)).unwrap();
    }
    let stored = offered * p(&c, "checkout");
    assert!((stored - 10.0).abs() < 1.0, "steady state: {stored}");
    offered *= 10.0;
    for i in 1..=50u64 {
        totals.add("checkout", SpanKind::Server, arrive(&c, offered));
        c.tick_at(t0 + Duration::from_secs(20 + i)).unwrap();
        let stored = offered * p(&c, "checkout");
        if (stored - 10.0).abs() <= 2.0 {
            return i as usize;
        }
    }
    panic!("no convergence in 50 intervals");
}

#[test]
fn a_tenfold_shift_converges_within_a_few_intervals() {
    let n = intervals_to_converge(0.5, false);
    assert!((1..=4).contains(&n), "{n} intervals");
    // No smoothing converges in one interval; smoothing buys stability
    // at the cost of intervals.
    assert_eq!(intervals_to_converge(1.0, false), 1);
    let edge = intervals_to_converge(0.5, true);
    assert!((1..=6).contains(&edge), "edge mode: {edge} intervals");
    println!("intervals to within 20%: {n} (smoothing 0.5), {edge} (edge mode)");
}

#[test]
fn only_entry_spans_count_and_rare_operations_keep_a_floor() {
    let totals = Arc::new(Totals::default());
    let mut c = Controller::new(
        &cfg(10.0),
        totals.clone(),
        Arc::new(Probabilities::default()),
    );
    let t0 = Instant::now();
    c.tick_at(t0).unwrap();
    totals.add("checkout", SpanKind::Server, 100.0);
    totals.add("checkout", SpanKind::Client, 100_000.0);
    totals.add("rare", SpanKind::Consumer, 2.0);
    totals.add("flood", SpanKind::Server, 1e9);
    c.tick_at(t0 + Duration::from_secs(1)).unwrap();
    assert_eq!(p(&c, "checkout"), 0.1, "client spans are not traces");
    assert_eq!(p(&c, "rare"), 1.0);
    assert_eq!(p(&c, "flood"), 0.001, "min_probability");
    assert!(c.smoothed_rate("shop", "checkout").unwrap() > 99.0);
}

#[test]
fn two_receivers_reading_the_global_totals_together_hold_the_target() {
    // 400 traces/s of one operation split 70/30 across two receivers.
    let target = 10.0;
    let offered = [280.0, 120.0];
    let global = Arc::new(Totals::default());
    let locals = [Arc::new(Totals::default()), Arc::new(Totals::default())];
    let table = || Arc::new(Probabilities::default());
    let mut shared: Vec<Controller> = (0..2)
        .map(|_| Controller::new(&cfg(target), global.clone(), table()))
        .collect();
    let mut alone: Vec<Controller> = (0..2)
        .map(|i| Controller::new(&cfg(target), locals[i].clone(), table()))
        .collect();
    let t0 = Instant::now();
    for c in shared.iter_mut().chain(alone.iter_mut()) {
        c.tick_at(t0).unwrap();
    }
    for s in 1..=10u64 {
        for (i, r) in offered.iter().enumerate() {
            global.add("checkout", SpanKind::Server, *r);
            locals[i].add("checkout", SpanKind::Server, *r);
        }
        let now = t0 + Duration::from_secs(s);
        for c in shared.iter_mut().chain(alone.iter_mut()) {
            c.tick_at(now).unwrap();
        }
    }
    let stored = |cs: &[Controller]| -> f64 {
        offered
            .iter()
            .zip(cs)
            .map(|(r, c)| r * p(c, "checkout"))
            .sum()
    };
    let together = stored(&shared);
    assert!(
        (together - target).abs() <= 0.2 * target,
        "stored {together}"
    );
    assert_eq!(p(&shared[0], "checkout"), p(&shared[1], "checkout"));
    // Each receiver holding the target on its own stores N × it.
    let naive = stored(&alone);
    assert!(
        (naive - 2.0 * target).abs() <= 0.2 * target,
        "naive {naive}"
    );
}
