//! The arithmetic behind Jaeger's metrics API, over the points a
//! [`MetricsReader`](crate::spanmetrics::MetricsReader) returns: series
//! grouped by service (and operation), sliding `ratePer` windows at each
//! `step`, call rates, error ratios and quantiles interpolated within the
//! merged histogram's bucket. Pure functions, so they are tested on
//! hand-built points.

use std::collections::BTreeMap;

use crate::spanmetrics::{Point, SeriesKey, BUCKETS, BUCKETS_SECONDS};

/// What is summed over one window.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Acc {
    pub calls: u64,
    pub errors: u64,
    pub buckets: [u64; BUCKETS],
}

impl Acc {
    fn add(&mut self, p: &Acc) {
        self.calls += p.calls;
        self.errors += p.errors;
        for (a, b) in self.buckets.iter_mut().zip(p.buckets) {
            *a += b;
        }
    }

    fn sub(&mut self, p: &Acc) {
        self.calls -= p.calls;
        self.errors -= p.errors;
        for (a, b) in self.buckets.iter_mut().zip(p.buckets) {
            *a -= b;
        }
    }

    fn of(p: &Point) -> Acc {
        Acc {
            calls: p.calls,
            errors: p.errors,
            buckets: p.buckets,
        }
    }
}

/// The output times and the window each one covers: at `t`, the points
/// whose window starts in `[t - rate_per, t)` (Prometheus' `rate(x[ratePer])`
/// evaluated at `t`, at the storage's resolution).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Grid {
    pub start_ns: u64,
    pub step_ns: u64,
    pub end_ns: u64,
    pub rate_per_ns: u64,
}

impl Grid {
    /// `start, start + step, …` up to and including `end`, as a Prometheus
    /// range query answers.
    pub fn times(&self) -> impl Iterator<Item = u64> + '_ {
        let n = (self.end_ns - self.start_ns) / self.step_ns;
        (0..=n).map(move |k| self.start_ns + k * self.step_ns)
    }

    pub fn points(&self) -> u64 {
        (self.end_ns - self.start_ns) / self.step_ns + 1
    }

    /// The range to read: one window before the first output time.
    pub fn read_range(&self) -> (u64, u64) {
        (
            self.start_ns.saturating_sub(self.rate_per_ns),
            self.end_ns.saturating_add(1),
        )
    }
}

/// The step to read points at: the coarsest multiple of the storage's
/// resolution that still puts a window edge on every output time
/// (gcd of step and ratePer), never finer than the resolution.
pub fn read_step_ns(step_ns: u64, rate_per_ns: u64, min_step_ns: u64) -> u64 {
    let min = min_step_ns.max(1);
    let g = gcd(step_ns, rate_per_ns);
    if g <= min {
        min
    } else {
        g - g % min
    }
}

fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// The label values of one output series: the service, and the operation
/// when grouping by operation.
pub type GroupKey = (String, Option<String>);

/// Points of every series merged per group and per window start, oldest
/// first.
pub fn group(
    series: &[(SeriesKey, Vec<Point>)],
    by_operation: bool,
) -> BTreeMap<GroupKey, Vec<(u64, Acc)>> {
    let mut merged: BTreeMap<GroupKey, BTreeMap<u64, Acc>> = BTreeMap::new();
    for (key, points) in series {
        let op = by_operation.then(|| key.operation.clone());
        let slot = merged.entry((key.service.clone(), op)).or_default();
        for p in points {
            slot.entry(p.start_ns).or_default().add(&Acc::of(p));
        }
    }
    merged
        .into_iter()
        .map(|(k, m)| (k, m.into_iter().collect()))
        .collect()
}

/// The sum over each output time's window (`points` oldest first): one
/// pass with a running sum, so a 24 h view costs the points read plus the
/// output times.
pub fn windows(points: &[(u64, Acc)], grid: &Grid) -> Vec<Acc> {
    let mut out = Vec::with_capacity(usize::try_from(grid.points()).unwrap_or(0));
    let mut sum = Acc::default();
    let (mut lo, mut hi) = (0, 0);
    for t in grid.times() {
        while hi < points.len() && points[hi].0 < t {
            sum.add(&points[hi].1);
            hi += 1;
        }
        let from = t.saturating_sub(grid.rate_per_ns);
        while lo < hi && points[lo].0 < from {
            sum.sub(&points[lo].1);
            lo += 1;
        }
        out.push(sum.clone());
    }
    out
}

/// Calls per second over a window of `rate_per_ns`.
pub fn call_rate(w: &Acc, rate_per_ns: u64) -> f64 {
    w.calls as f64 / (rate_per_ns as f64 / 1e9)
}

/// Errors over calls (Jaeger's error rate: errors/s over calls/s); NaN
/// without calls.
pub fn error_ratio(w: &Acc) -> f64 {
    if w.calls == 0 {
        f64::NAN
    } else {
        w.errors as f64 / w.calls as f64
    }
}

/// The `q` quantile in milliseconds, interpolated linearly inside the
/// bucket that holds rank `q × count` (as Prometheus' `histogram_quantile`
/// does), so it lies in the same bucket as the true value. The +Inf bucket
/// answers the highest finite bound. NaN for an empty histogram.
pub fn quantile_ms(buckets: &[u64; BUCKETS], q: f64) -> f64 {
    let total: u64 = buckets.iter().sum();
    if total == 0 {
        return f64::NAN;
    }
    let rank = q * total as f64;
    let mut below = 0u64;
    for (i, &c) in buckets.iter().enumerate() {
        if c == 0 {
            continue;
        }
        if (below + c) as f64 >= rank {
            let Some(&hi) = BUCKETS_SECONDS.get(i) else {
                break;
            };
            let lo = if i == 0 { 0.0 } else { BUCKETS_SECONDS[i - 1] };
            let frac = ((rank - below as f64) / c as f64).clamp(0.0, 1.0);
            return (lo + (hi - lo) * frac) * 1000.0;
        }
        below += c;
    }
    BUCKETS_SECONDS[BUCKETS_SECONDS.len() - 1] * 1000.0
}

/// The bucket a duration (seconds) falls in: the first bound it does not
/// exceed, `BUCKETS - 1` for +Inf.
pub fn bucket_of(seconds: f64) -> usize {
    BUCKETS_SECONDS
        .iter()
        .position(|b| seconds <= *b)
        .unwrap_or(BUCKETS - 1)
}

/// Hand-built points for the tests of the metrics endpoints.
#[cfg(test)]
pub(crate) mod testutil {
    use super::*;
    use crate::model::{SpanKind, StatusCode};

    pub const S: u64 = 1_000_000_000;

    /// A 10 s point at `start_s` with one call per duration (seconds).
    pub fn point(start_s: u64, durations_s: &[f64], errors: u64) -> Point {
        let mut buckets = [0; BUCKETS];
        for d in durations_s {
            buckets[bucket_of(*d)] += 1;
        }
        Point {
            start_ns: start_s * S,
            calls: durations_s.len() as u64,
            errors,
            duration_sum_ns: durations_s.iter().map(|d| (d * 1e9) as u64).sum(),
            buckets,
            exemplars: [None; BUCKETS],
        }
    }

    pub fn key(svc: &str, op: &str, kind: SpanKind) -> SeriesKey {
        SeriesKey {
            service: svc.into(),
            operation: op.into(),
            kind,
            status: StatusCode::Unset,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::testutil::*;
    use super::*;
    use crate::model::SpanKind;

    #[test]
    fn read_step_is_a_multiple_of_the_resolution() {
        assert_eq!(read_step_ns(60 * S, 600 * S, 10 * S), 60 * S);
        assert_eq!(read_step_ns(5 * S, 600 * S, 10 * S), 10 * S);
        assert_eq!(read_step_ns(45 * S, 90 * S, 10 * S), 40 * S);
        assert_eq!(read_step_ns(7, 3, 0), 1);
    }

    #[test]
    fn grid_includes_both_ends() {
        let g = Grid {
            start_ns: 100,
            step_ns: 10,
            end_ns: 130,
            rate_per_ns: 20,
        };
        assert_eq!(g.times().collect::<Vec<_>>(), vec![100, 110, 120, 130]);
        assert_eq!(g.points(), 4);
        assert_eq!(g.read_range(), (80, 131));
    }

    #[test]
    fn windows_slide_over_merged_points() {
        // Two series of one service, grouped together; windows of 20 s at
        // 10 s steps.
        let series = vec![
            (
                key("a", "x", SpanKind::Server),
                vec![point(0, &[0.001], 0), point(10, &[0.002, 0.003], 1)],
            ),
            (
                key("a", "y", SpanKind::Server),
                vec![point(10, &[0.5], 1), point(30, &[1.0], 0)],
            ),
        ];
        let grouped = group(&series, false);
        assert_eq!(grouped.len(), 1);
        let pts = &grouped[&("a".to_string(), None)];
        assert_eq!(pts.iter().map(|p| p.0 / S).collect::<Vec<_>>(), [0, 10, 30]);
        let grid = Grid {
            start_ns: 10 * S,
            step_ns: 10 * S,
            end_ns: 40 * S,
            rate_per_ns: 20 * S,
        };
        let w = windows(pts, &grid);
        let calls: Vec<u64> = w.iter().map(|a| a.calls).collect();
        // t=10: [-10,10) → point 0; t=20: [0,20) → 0 and 10; t=30: [10,30);
        // t=40: [20,40) → 30.
        assert_eq!(calls, [1, 4, 3, 1]);
        assert_eq!(w[1].errors, 2);
        assert_eq!(call_rate(&w[1], 20 * S), 0.2);
        assert_eq!(error_ratio(&w[1]), 0.5);
        assert!(error_ratio(&Acc::default()).is_nan());
        let by_op = group(&series, true);
        assert_eq!(
            by_op.keys().cloned().collect::<Vec<_>>(),
            vec![
                ("a".to_string(), Some("x".to_string())),
                ("a".to_string(), Some("y".to_string()))
            ]
        );
    }

    #[test]
    fn tiled_windows_count_each_point_once() {
        // step = ratePer: the windows tile the range, so rate × window
        // summed over the output times is the exact count.
        let pts: Vec<(u64, Acc)> = (0..50)
            .map(|i| {
                let p = point(i * 10, &vec![0.01; i as usize % 7], 0);
                (p.start_ns, Acc::of(&p))
            })
            .collect();
        let total: u64 = pts.iter().map(|p| p.1.calls).sum();
        let grid = Grid {
            start_ns: 60 * S,
            step_ns: 60 * S,
            end_ns: 540 * S,
            rate_per_ns: 60 * S,
        };
        let sum: f64 = windows(&pts, &grid)
            .iter()
            .map(|w| call_rate(w, grid.rate_per_ns) * 60.0)
            .sum();
        assert_eq!(sum.round() as u64, total);
    }

    #[test]
    fn quantiles_interpolate_inside_the_right_bucket() {
        assert!(quantile_ms(&[0; BUCKETS], 0.5).is_nan());
        // 100 values of 3 ms (bucket (2, 5] ms) and 100 of 40 ms ((20, 50]).
        let mut b = [0; BUCKETS];
        b[bucket_of(0.003)] = 100;
        b[bucket_of(0.040)] = 100;
        let p50 = quantile_ms(&b, 0.5);
        assert!((2.0..=5.0).contains(&p50), "{p50}");
        assert_eq!(p50, 5.0, "rank 100 is the last of the first bucket");
        let p75 = quantile_ms(&b, 0.75);
        assert!((20.0..=50.0).contains(&p75), "{p75}");
        assert!((p75 - 35.0).abs() < 1e-9, "halfway through (20, 50]: {p75}");
        assert_eq!(quantile_ms(&b, 1.0), 50.0);
        // The first bucket interpolates from 0.
        let mut first = [0; BUCKETS];
        first[0] = 4;
        assert!((quantile_ms(&first, 0.5) - 0.05).abs() < 1e-12);
        // Past the last bound: the highest finite bound.
        let mut inf = [0; BUCKETS];
        inf[BUCKETS - 1] = 1;
        assert_eq!(quantile_ms(&inf, 0.99), 5_000_000.0);
    }

    #[test]
    fn buckets_are_upper_inclusive() {
        assert_eq!(bucket_of(0.0), 0);
        assert_eq!(bucket_of(0.0001), 0);
        assert_eq!(bucket_of(0.00011), 1);
        assert_eq!(bucket_of(1.0), 12);
        assert_eq!(bucket_of(1e9), BUCKETS - 1);
    }
}
