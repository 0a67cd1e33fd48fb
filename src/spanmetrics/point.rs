//! Arithmetic on [`Point`]s: the bucket a duration falls in, adding one
//! span, merging two points of the same series (counts add, the newer
//! exemplar per bucket wins).

use super::{Exemplar, Point, BUCKETS};

/// `BUCKETS_SECONDS` in nanoseconds, so the hot path compares integers.
const BOUNDS_NS: [u64; BUCKETS - 1] = [
    100_000,
    200_000,
    500_000,
    1_000_000,
    2_000_000,
    5_000_000,
    10_000_000,
    20_000_000,
    50_000_000,
    100_000_000,
    200_000_000,
    500_000_000,
    1_000_000_000,
    2_000_000_000,
    5_000_000_000,
    10_000_000_000,
    20_000_000_000,
    50_000_000_000,
    100_000_000_000,
    200_000_000_000,
    500_000_000_000,
    1_000_000_000_000,
    2_000_000_000_000,
    5_000_000_000_000,
];

/// The bucket of a duration: the first bound it does not exceed (`le`
/// semantics, as Prometheus), or the last (+Inf).
pub fn bucket_of(duration_ns: u64) -> usize {
    BOUNDS_NS.partition_point(|&b| b < duration_ns)
}

/// An empty point starting at `start_ns`.
pub fn empty(start_ns: u64) -> Point {
    Point {
        start_ns,
        calls: 0,
        errors: 0,
        duration_sum_ns: 0,
        buckets: [0; BUCKETS],
        exemplars: [None; BUCKETS],
    }
}

/// Adds `other` into `p` (the start of `p` stays).
pub fn merge(p: &mut Point, other: &Point) {
    p.calls += other.calls;
    p.errors += other.errors;
    p.duration_sum_ns = p.duration_sum_ns.wrapping_add(other.duration_sum_ns);
    for i in 0..BUCKETS {
        p.buckets[i] += other.buckets[i];
        if let Some(e) = other.exemplars[i] {
            keep_newer(&mut p.exemplars[i], e);
        }
    }
}

/// Per-point maximum: what a query node answers from replicas that each
/// hold a prefix of the same deltas (see docs/METRICS.md, Kafka mode).
pub fn max_merge(p: &mut Point, other: &Point) {
    if other.calls > p.calls || (other.calls == p.calls && other.errors > p.errors) {
        let start = p.start_ns;
        let mut ex = p.exemplars;
        for (mine, theirs) in ex.iter_mut().zip(other.exemplars) {
            if let Some(e) = theirs {
                keep_newer(mine, e);
            }
        }
        *p = other.clone();
        p.start_ns = start;
        p.exemplars = ex;
    } else {
        for (mine, theirs) in p.exemplars.iter_mut().zip(other.exemplars) {
            if let Some(e) = theirs {
                keep_newer(mine, e);
            }
        }
    }
}

/// The most recent span wins a bucket's exemplar slot.
pub fn keep_newer(slot: &mut Option<Exemplar>, e: Exemplar) {
    match slot {
        Some(old) if old.time_ns >= e.time_ns => {}
        _ => *slot = Some(e),
    }
}

/// True when nothing was counted (an exemplar alone is never stored).
pub fn is_empty(p: &Point) -> bool {
    p.calls == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{SpanId, TraceId};
    use crate::spanmetrics::BUCKETS_SECONDS;

    #[test]
    fn bounds_match_the_contract_and_buckets_are_le() {
        for (ns, s) in BOUNDS_NS.iter().zip(BUCKETS_SECONDS) {
            assert_eq!(*ns, (s * 1e9).round() as u64);
        }
        assert_eq!(bucket_of(0), 0);
        assert_eq!(bucket_of(100_000), 0, "le: the bound itself is inside");
        assert_eq!(bucket_of(100_001), 1);
        assert_eq!(bucket_of(1_000_000_000), 12);
        assert_eq!(bucket_of(u64::MAX), BUCKETS - 1, "+Inf");
    }

    #[test]
    fn merge_adds_and_keeps_the_newer_exemplar() {
        let ex = |t: u64| Exemplar {
            trace_id: TraceId([t as u8; 16]),
            span_id: SpanId([1; 8]),
            duration_ns: 5,
            time_ns: t,
        };
        let mut a = empty(10);
        a.calls = 2;
        a.buckets[3] = 2;
        a.exemplars[3] = Some(ex(7));
        let mut b = empty(20);
        b.calls = 1;
        b.errors = 1;
        b.duration_sum_ns = 9;
        b.buckets[3] = 1;
        b.exemplars[3] = Some(ex(5));
        b.exemplars[4] = Some(ex(1));
        merge(&mut a, &b);
        assert_eq!(
            (a.start_ns, a.calls, a.errors, a.duration_sum_ns),
            (10, 3, 1, 9)
        );
        assert_eq!(a.buckets[3], 3);
        assert_eq!(a.exemplars[3].unwrap().time_ns, 7);
        assert_eq!(a.exemplars[4].unwrap().time_ns, 1);
        let mut m = empty(10);
        m.calls = 1;
        max_merge(&mut m, &a);
        assert_eq!((m.start_ns, m.calls), (10, 3));
    }
}
