//! What ingest accepts, span by span (docs/INGEST.md has the table).
//!
//! A span is rejected when its ids are malformed (trace id not 16 bytes or
//! all zero, span id not 8 bytes or all zero, parent id neither empty nor
//! 8 bytes), when it has no start time, or when it ends before it starts.
//! An empty name is accepted and stored as is: the proto calls the name
//! required, but dropping a span for it loses more than it protects.
//! Oversized attribute values (and names) are truncated, not rejected.

use std::fmt;

use super::proto::common::v1 as pc;
use super::proto::trace::v1 as pt;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reject {
    TraceIdLength(usize),
    TraceIdZero,
    SpanIdLength(usize),
    SpanIdZero,
    ParentIdLength(usize),
    NoStartTime,
    EndBeforeStart { start: u64, end: u64 },
}

impl fmt::Display for Reject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reject::TraceIdLength(n) => write!(f, "trace_id is {n} bytes, want 16"),
            Reject::TraceIdZero => f.write_str("trace_id is all zero"),
            Reject::SpanIdLength(n) => write!(f, "span_id is {n} bytes, want 8"),
            Reject::SpanIdZero => f.write_str("span_id is all zero"),
            Reject::ParentIdLength(n) => write!(f, "parent_span_id is {n} bytes, want 0 or 8"),
            Reject::NoStartTime => f.write_str("start_time_unix_nano is 0"),
            Reject::EndBeforeStart { start, end } => {
                write!(
                    f,
                    "end_time_unix_nano {end} is before start_time_unix_nano {start}"
                )
            }
        }
    }
}

/// Checks one span; the first problem found is returned.
pub fn check_span(s: &pt::Span) -> Result<(), Reject> {
    match s.trace_id.len() {
        16 => {}
        n => return Err(Reject::TraceIdLength(n)),
    }
    if s.trace_id.iter().all(|b| *b == 0) {
        return Err(Reject::TraceIdZero);
    }
    match s.span_id.len() {
        8 => {}
        n => return Err(Reject::SpanIdLength(n)),
    }
    if s.span_id.iter().all(|b| *b == 0) {
        return Err(Reject::SpanIdZero);
    }
    match s.parent_span_id.len() {
        0 | 8 => {}
        n => return Err(Reject::ParentIdLength(n)),
    }
    if s.start_time_unix_nano == 0 {
        return Err(Reject::NoStartTime);
    }
    if s.end_time_unix_nano < s.start_time_unix_nano {
        return Err(Reject::EndBeforeStart {
            start: s.start_time_unix_nano,
            end: s.end_time_unix_nano,
        });
    }
    Ok(())
}

/// Cuts `s` to at most `max` bytes, at a char boundary. Returns whether it
/// was cut.
pub fn truncate_utf8(s: &mut String, max: usize) -> bool {
    if s.len() <= max {
        return false;
    }
    let mut cut = max;
    while cut > 0 && !s.is_char_boundary(cut) {
        cut -= 1;
    }
    s.truncate(cut);
    true
}

/// Truncates string and bytes values longer than `max` (recursing into
/// arrays and maps); returns how many were cut.
pub fn truncate_attrs(attrs: &mut [pc::KeyValue], max: usize) -> u64 {
    attrs
        .iter_mut()
        .filter_map(|kv| kv.value.as_mut())
        .map(|v| truncate_value(v, max))
        .sum()
}

fn truncate_value(v: &mut pc::AnyValue, max: usize) -> u64 {
    use pc::any_value::Value as V;
    match v.value.as_mut() {
        Some(V::StringValue(s)) => u64::from(truncate_utf8(s, max)),
        Some(V::BytesValue(b)) if b.len() > max => {
            b.truncate(max);
            1
        }
        Some(V::ArrayValue(a)) => a.values.iter_mut().map(|v| truncate_value(v, max)).sum(),
        Some(V::KvlistValue(m)) => truncate_attrs(&mut m.values, max),
        _ => 0,
    }
}

/// Truncates every attribute value and name of one span (events and links
/// included); returns how many values were cut.
pub fn truncate_span(s: &mut pt::Span, max: usize) -> u64 {
    let mut n = truncate_attrs(&mut s.attributes, max);
    n += u64::from(truncate_utf8(&mut s.name, max));
    if let Some(st) = s.status.as_mut() {
        n += u64::from(truncate_utf8(&mut st.message, max));
    }
    for e in &mut s.events {
        n += truncate_attrs(&mut e.attributes, max) + u64::from(truncate_utf8(&mut e.name, max));
    }
    for l in &mut s.links {
        n += truncate_attrs(&mut l.attributes, max);
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    fn good() -> pt::Span {
        pt::Span {
            trace_id: vec![1; 16],
            span_id: vec![2; 8],
            start_time_unix_nano: 10,
            end_time_unix_nano: 20,
            name: "op".into(),
            ..Default::default()
        }
    }

    #[test]
    fn each_rule_rejects_with_its_reason() {
        assert_eq!(check_span(&good()), Ok(()));
        type Case = (fn(&mut pt::Span), Reject);
        let cases: Vec<Case> = vec![
            (|s| s.trace_id = vec![1; 15], Reject::TraceIdLength(15)),
            (|s| s.trace_id = vec![], Reject::TraceIdLength(0)),
            (|s| s.trace_id = vec![0; 16], Reject::TraceIdZero),
            (|s| s.span_id = vec![1; 9], Reject::SpanIdLength(9)),
            (|s| s.span_id = vec![0; 8], Reject::SpanIdZero),
            (|s| s.parent_span_id = vec![1; 4], Reject::ParentIdLength(4)),
            (|s| s.start_time_unix_nano = 0, Reject::NoStartTime),
            (
                |s| s.end_time_unix_nano = 5,
                Reject::EndBeforeStart { start: 10, end: 5 },
            ),
        ];
        for (mutate, want) in cases {
            let mut s = good();
            mutate(&mut s);
            assert_eq!(check_span(&s), Err(want.clone()), "{want}");
        }
        // Accepted edge cases: parent of 8 bytes, zero duration, empty name.
        let mut s = good();
        s.parent_span_id = vec![3; 8];
        s.end_time_unix_nano = s.start_time_unix_nano;
        s.name.clear();
        assert_eq!(check_span(&s), Ok(()));
    }

    #[test]
    fn truncation_respects_char_boundaries() {
        let mut s = "aé".repeat(10); // 'é' is 2 bytes
        assert!(truncate_utf8(&mut s, 4)); // "aéa" is exactly 4 bytes
        assert_eq!(s, "aéa");
        let mut s = "aé".repeat(10);
        assert!(truncate_utf8(&mut s, 2)); // would split 'é'
        assert_eq!(s, "a");
        let mut s = "short".to_string();
        assert!(!truncate_utf8(&mut s, 5));
        let mut span = good();
        use pc::any_value::Value as V;
        let sv = |s: String| {
            Some(pc::AnyValue {
                value: Some(V::StringValue(s)),
            })
        };
        span.attributes.push(pc::KeyValue {
            key: "big".into(),
            value: sv("x".repeat(100)),
            ..Default::default()
        });
        span.attributes.push(pc::KeyValue {
            key: "small".into(),
            value: sv("y".into()),
            ..Default::default()
        });
        span.events.push(pt::span::Event {
            name: "e".repeat(50),
            ..Default::default()
        });
        assert_eq!(truncate_span(&mut span, 10), 2);
        assert_eq!(span.attributes[0].value, sv("x".repeat(10)));
        assert_eq!(span.events[0].name.len(), 10);
    }
}
