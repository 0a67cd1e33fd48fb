//! Clock-skew adjustment, after Jaeger's adjuster: hosts' clocks disagree,
//! so a child span reported by another service can appear to start before
//! its parent or end after it. Such a child, with the part of its subtree
//! on the same service, is shifted to fit inside its parent: centred when
//! it is shorter than the parent, start-aligned otherwise. Every shifted
//! span says so in a warning; nothing is moved silently.
//!
//! Children on the *same* service as their parent share its clock and are
//! never judged on their own (an async child may legitimately outlive its
//! parent); they only move with an ancestor that was shifted. A consumer
//! span under a producer span is a queue hop: it normally starts after its
//! parent ended, so it is judged only when it starts before its parent,
//! which no clock agreement allows.

use std::collections::HashMap;

use crate::model::{Span, SpanId, SpanKind};

/// Shifts skewed spans in place and returns the offset applied to each
/// span (same order as `spans`, nanoseconds, 0 = untouched).
pub fn adjust(spans: &mut [Span]) -> Vec<i64> {
    let n = spans.len();
    let mut deltas = vec![0i64; n];
    let mut by_id: HashMap<SpanId, usize> = HashMap::with_capacity(n);
    for (i, s) in spans.iter().enumerate() {
        by_id.entry(s.span_id).or_insert(i);
    }
    let parent_of: Vec<Option<usize>> = spans
        .iter()
        .enumerate()
        .map(|(i, s)| {
            s.parent_span_id
                .and_then(|p| by_id.get(&p).copied())
                .filter(|&p| p != i)
        })
        .collect();
    let mut children: Vec<Vec<usize>> = vec![Vec::new(); n];
    for (i, p) in parent_of.iter().enumerate() {
        if let Some(p) = p {
            children[*p].push(i);
        }
    }
    // Depth-first from the roots with an explicit stack (traces can be deep
    // and are untrusted input); spans caught in a parent cycle are never
    // reached and stay as they are.
    let mut visited = vec![false; n];
    let mut stack: Vec<(usize, i64)> = (0..n)
        .filter(|&i| parent_of[i].is_none())
        .map(|i| (i, 0))
        .collect();
    while let Some((i, inherited)) = stack.pop() {
        if std::mem::replace(&mut visited[i], true) {
            continue;
        }
        let delta = match parent_of[i] {
            Some(p) if spans[p].service_name() != spans[i].service_name() => {
                skew(&spans[i], &spans[p])
            }
            _ => inherited,
        };
        if delta != 0 {
            shift(&mut spans[i], delta);
        }
        deltas[i] = delta;
        stack.extend(children[i].iter().map(|&c| (c, delta)));
    }
    deltas
}

/// The offset that fits `child` inside `parent` (already adjusted), or 0 if
/// it fits already.
fn skew(child: &Span, parent: &Span) -> i64 {
    if child.start_ns >= parent.start_ns && child.end_ns <= parent.end_ns {
        return 0;
    }
    if child.kind == SpanKind::Consumer && parent.kind == SpanKind::Producer {
        return i64::try_from(i128::from(parent.start_ns) - i128::from(child.start_ns))
            .unwrap_or(0)
            .max(0);
    }
    let (pd, cd) = (parent.duration_ns(), child.duration_ns());
    let target = if cd < pd {
        parent.start_ns + (pd - cd) / 2
    } else {
        parent.start_ns
    };
    i64::try_from(i128::from(target) - i128::from(child.start_ns)).unwrap_or(0)
}

fn shift(s: &mut Span, delta: i64) {
    s.start_ns = s.start_ns.saturating_add_signed(delta);
    s.end_ns = s.end_ns.saturating_add_signed(delta);
    for e in &mut s.events {
        e.time_ns = e.time_ns.saturating_add_signed(delta);
    }
}

/// The warning attached to a shifted span.
pub fn warning(delta_ns: i64) -> String {
    let shown = if delta_ns % 1000 == 0 {
        super::params::signed_us(delta_ns / 1000)
    } else if delta_ns > 0 {
        format!("+{delta_ns}ns")
    } else {
        format!("{delta_ns}ns")
    };
    format!("clock skew adjustment: shifted {shown} to fit within the parent span")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{AttrValue, Event, KeyValue, Resource};
    use std::sync::Arc;

    fn span(id: u8, parent: Option<u8>, svc: &str, start_us: u64, dur_us: u64) -> Span {
        Span {
            span_id: SpanId([0, 0, 0, 0, 0, 0, 0, id]),
            parent_span_id: parent.map(|p| SpanId([0, 0, 0, 0, 0, 0, 0, p])),
            start_ns: start_us * 1000,
            end_ns: (start_us + dur_us) * 1000,
            events: vec![Event {
                time_ns: start_us * 1000,
                ..Default::default()
            }],
            resource: Arc::new(Resource {
                attributes: vec![KeyValue::new("service.name", AttrValue::Str(svc.into()))],
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn shorter_child_on_other_service_is_centred_with_its_subtree() {
        // Parent [1000, 2000); child on "b" claims [500, 700), its own
        // child (same service) [550, 600).
        let mut spans = vec![
            span(1, None, "a", 1000, 1000),
            span(2, Some(1), "b", 500, 200),
            span(3, Some(2), "b", 550, 50),
        ];
        let d = adjust(&mut spans);
        assert_eq!(d, vec![0, 900_000, 900_000]);
        assert_eq!(spans[1].start_ns, 1_400_000);
        assert_eq!(spans[1].end_ns, 1_600_000);
        assert_eq!(spans[1].events[0].time_ns, 1_400_000);
        assert_eq!(spans[2].start_ns, 1_450_000);
        assert_eq!(
            warning(d[1]),
            "clock skew adjustment: shifted +900µs to fit within the parent span"
        );
    }

    #[test]
    fn longer_child_is_start_aligned_and_negative_shifts_are_reported() {
        let mut spans = vec![
            span(1, None, "a", 1000, 100),
            span(2, Some(1), "b", 1500, 300),
        ];
        let d = adjust(&mut spans);
        assert_eq!(d[1], -500_000);
        assert_eq!(spans[1].start_ns, 1_000_000);
        assert!(warning(d[1]).contains("-500µs"));
    }

    #[test]
    fn fitting_children_and_same_service_children_are_left_alone() {
        let mut spans = vec![
            span(1, None, "a", 1000, 1000),
            span(2, Some(1), "b", 1100, 100), // fits
            span(3, Some(1), "a", 1900, 500), // same service, outlives parent: async, not skew
        ];
        assert_eq!(adjust(&mut spans), vec![0, 0, 0]);
        assert_eq!(spans[2].start_ns, 1_900_000);
    }

    #[test]
    fn grandchild_on_third_service_is_judged_against_the_adjusted_parent() {
        let mut spans = vec![
            span(1, None, "a", 1000, 1000),
            span(2, Some(1), "b", 0, 200),
            span(3, Some(2), "c", 1400, 100),
        ];
        let d = adjust(&mut spans);
        // b moves +1400µs to [1400, 1600); c at [1400, 1500) then fits.
        assert_eq!(d, vec![0, 1_400_000, 0]);
    }

    #[test]
    fn a_consumer_after_its_producer_is_a_queue_hop_not_skew() {
        let kinds = |spans: &mut Vec<Span>| {
            spans[1].kind = SpanKind::Producer;
            spans[2].kind = SpanKind::Consumer;
        };
        // Producer [1000, 1010) on "a"; the consumer on "b" runs later.
        let mut spans = vec![
            span(1, None, "a", 1000, 2000),
            span(2, Some(1), "a", 1000, 10),
            span(3, Some(2), "b", 5000, 100),
        ];
        kinds(&mut spans);
        assert_eq!(adjust(&mut spans), vec![0, 0, 0]);
        // Starting before the producer is impossible: moved to its start.
        let mut spans = vec![
            span(1, None, "a", 1000, 2000),
            span(2, Some(1), "a", 1000, 10),
            span(3, Some(2), "b", 400, 100),
        ];
        kinds(&mut spans);
        assert_eq!(adjust(&mut spans), vec![0, 0, 600_000]);
        assert_eq!(spans[2].start_ns, 1_000_000);
    }

    #[test]
    fn cycles_and_orphans_do_not_hang_or_panic() {
        let mut spans = vec![
            span(1, Some(2), "a", 0, 10),
            span(2, Some(1), "b", 100, 10),
            span(3, Some(9), "c", 5, 1),
            span(4, Some(4), "d", 5, 1),
        ];
        assert_eq!(adjust(&mut spans), vec![0, 0, 0, 0]);
    }
}
