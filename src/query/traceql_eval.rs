//! Evaluation of the TraceQL subset on spans, and its translation to a
//! store search: conditions that map onto [`SearchQuery`] narrow the store
//! search; all conditions are then checked exactly on the fetched traces.

use std::cmp::Ordering;

use super::traceql::{AttrScope, Cond, Field, Op, Query, Value};
use crate::model::{AttrValue, KeyValue, SearchQuery, Span, StatusCode};

/// Trace-level facts the trace intrinsics compare against.
#[derive(Clone, Copy, Debug, Default)]
pub struct TraceCtx<'a> {
    pub root_service: &'a str,
    pub root_name: &'a str,
    pub duration_ns: u64,
}

fn holds(op: Op, ord: Option<Ordering>) -> bool {
    match (op, ord) {
        (_, None) => false,
        (Op::Eq, Some(o)) => o == Ordering::Equal,
        (Op::Ne, Some(o)) => o != Ordering::Equal,
        (Op::Gt, Some(o)) => o == Ordering::Greater,
        (Op::Ge, Some(o)) => o != Ordering::Less,
        (Op::Lt, Some(o)) => o == Ordering::Less,
        (Op::Le, Some(o)) => o != Ordering::Greater,
    }
}

fn attr_cmp(attr: &AttrValue, v: &Value) -> Option<Ordering> {
    match (attr, v) {
        (AttrValue::Str(a), Value::Str(b)) => Some(a.as_str().cmp(b)),
        (AttrValue::Int(a), Value::Int(b)) => Some(a.cmp(b)),
        (AttrValue::Int(a), Value::Float(b)) => (*a as f64).partial_cmp(b),
        (AttrValue::Double(a), Value::Int(b)) => a.partial_cmp(&(*b as f64)),
        (AttrValue::Double(a), Value::Float(b)) => a.partial_cmp(b),
        (AttrValue::Bool(a), Value::Bool(b)) => Some(a.cmp(b)),
        _ => None,
    }
}

fn find<'a>(kvs: &'a [KeyValue], key: &str) -> Option<&'a AttrValue> {
    crate::model::find_attr(kvs, key)
}

/// The attribute a field reads on a span, if any.
pub fn lookup<'a>(s: &'a Span, scope: AttrScope, key: &str) -> Option<&'a AttrValue> {
    match scope {
        AttrScope::Span => find(&s.attributes, key),
        AttrScope::Resource => find(&s.resource.attributes, key),
        AttrScope::Any => s.attr(key),
    }
}

impl Cond {
    pub fn matches(&self, s: &Span, t: &TraceCtx<'_>) -> bool {
        let v = &self.value;
        let ord = match (&self.field, v) {
            (Field::Attr(scope, key), _) => {
                return lookup(s, *scope, key).is_some_and(|a| holds(self.op, attr_cmp(a, v)))
            }
            (Field::Name, Value::Str(x)) => s.name.as_str().cmp(x),
            (Field::StatusMessage, Value::Str(x)) => s.status.message.as_str().cmp(x),
            (Field::RootServiceName, Value::Str(x)) => t.root_service.cmp(x),
            (Field::RootName, Value::Str(x)) => t.root_name.cmp(x),
            (Field::Duration, Value::Duration(d)) => s.duration_ns().cmp(d),
            (Field::TraceDuration, Value::Duration(d)) => t.duration_ns.cmp(d),
            (Field::Status, Value::Status(c)) => {
                return (s.status.code == *c) == (self.op == Op::Eq)
            }
            (Field::Kind, Value::Kind(k)) => return (s.kind == *k) == (self.op == Op::Eq),
            _ => return false,
        };
        holds(self.op, Some(ord))
    }
}

impl Query {
    pub fn matches(&self, s: &Span, t: &TraceCtx<'_>) -> bool {
        self.conds.iter().all(|c| c.matches(s, t))
    }

    /// Narrows `q` with the conditions a store search can apply. What it
    /// adds is never stricter than the query itself, so the exact check
    /// afterwards only removes traces, never misses one.
    pub fn narrow(&self, q: &mut SearchQuery) {
        for c in &self.conds {
            match (&c.field, c.op, &c.value) {
                (Field::Name, Op::Eq, Value::Str(n)) if q.operation.is_none() => {
                    q.operation = Some(n.clone())
                }
                (Field::Kind, Op::Eq, Value::Kind(k)) if q.span_kind.is_none() => {
                    q.span_kind = Some(*k)
                }
                (Field::Status, Op::Eq, Value::Status(st)) => {
                    let text = match st {
                        StatusCode::Error => "ERROR",
                        StatusCode::Ok => "OK",
                        StatusCode::Unset => "UNSET",
                    };
                    q.tags.push(("otel.status_code".into(), text.into()));
                }
                (Field::Duration, op, Value::Duration(d)) => {
                    let (lo, hi) = match op {
                        Op::Gt => (d.checked_add(1), None),
                        Op::Ge => (Some(*d), None),
                        Op::Lt => (None, d.checked_sub(1)),
                        Op::Le => (None, Some(*d)),
                        Op::Eq => (Some(*d), Some(*d)),
                        Op::Ne => (None, None),
                    };
                    if let Some(lo) = lo {
                        q.min_duration_ns = Some(q.min_duration_ns.map_or(lo, |m| m.max(lo)));
                    }
                    if let Some(hi) = hi {
                        q.max_duration_ns = Some(q.max_duration_ns.map_or(hi, |m| m.min(hi)));
                    }
                }
                (Field::Attr(AttrScope::Resource, k), Op::Eq, Value::Str(v))
                    if k == "service.name" && q.service.is_none() =>
                {
                    q.service = Some(v.clone())
                }
                // Tags match the span attribute, else the resource one, on
                // the text form: a superset of `span.X` and exactly `.X`.
                // Keys with special tag semantics are left to the exact check.
                (Field::Attr(AttrScope::Span | AttrScope::Any, k), Op::Eq, v)
                    if !matches!(k.as_str(), "error" | "span.kind" | "otel.status_code") =>
                {
                    let text = match v {
                        Value::Str(s) => s.clone(),
                        Value::Int(i) => i.to_string(),
                        Value::Bool(b) => b.to_string(),
                        _ => continue,
                    };
                    q.tags.push((k.clone(), text));
                }
                _ => {}
            }
        }
    }

    /// Attributes the query mentions, shown with matched spans.
    pub fn attribute_fields(&self) -> Vec<(AttrScope, String)> {
        let mut out: Vec<(AttrScope, String)> = Vec::new();
        for c in &self.conds {
            if let Field::Attr(scope, k) = &c.field {
                if !out.iter().any(|(s, key)| s == scope && key == k) {
                    out.push((*scope, k.clone()));
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::span;
    use super::super::traceql::parse;
    use super::*;
    use crate::model::SpanKind;

    fn p(s: &str) -> Query {
        parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn evaluates_typed_comparisons_and_scopes() {
        let mut s = span(1, 1, None, "front", "GET /", 0, 2_000_000);
        s.kind = SpanKind::Server;
        s.status.code = StatusCode::Error;
        s.attributes = vec![
            KeyValue::new("code", AttrValue::Int(503)),
            KeyValue::new("r", AttrValue::Double(0.25)),
            KeyValue::new("s", AttrValue::Str("200".into())),
        ];
        let t = TraceCtx {
            root_service: "front",
            root_name: "GET /",
            duration_ns: 5_000_000,
        };
        let yes = |q: &str| p(q).matches(&s, &t);
        assert!(yes(
            r#"{ resource.service.name = "front" && span.code >= 500 && .r < 0.5 && status = error && kind = server }"#
        ));
        assert!(yes(
            "{ duration >= 2ms && duration < 3ms && traceDuration > 4ms }"
        ));
        assert!(yes(
            "{ span.code > 500.5 && name != \"x\" && rootName = \"GET /\" }"
        ));
        assert!(
            !yes("{ resource.code = 503 }"),
            "span attribute is not a resource attribute"
        );
        assert!(
            yes("{ .service.name = \"front\" }"),
            ".X falls back to the resource"
        );
        assert!(!yes("{ span.s = 200 }"), "types must agree");
        assert!(
            !yes("{ span.missing != 1 }"),
            "a missing attribute never matches"
        );
        assert!(!yes("{ status != error }"));
    }

    #[test]
    fn narrowing_is_never_stricter_than_the_query() {
        let q = p(
            r#"{ resource.service.name = "front" && name = "GET /" && kind = server && status = error && duration > 1ms && duration <= 5ms && span.code = 503 && .r = 0.25 && span.code != 1 }"#,
        );
        let mut sq = SearchQuery::default();
        q.narrow(&mut sq);
        assert_eq!(sq.service.as_deref(), Some("front"));
        assert_eq!(sq.operation.as_deref(), Some("GET /"));
        assert_eq!(sq.span_kind, Some(SpanKind::Server));
        assert_eq!(
            (sq.min_duration_ns, sq.max_duration_ns),
            (Some(1_000_001), Some(5_000_000))
        );
        assert_eq!(
            sq.tags,
            vec![
                ("otel.status_code".into(), "ERROR".into()),
                ("code".into(), "503".into())
            ]
        );
        let mut s = span(1, 1, None, "front", "GET /", 0, 2_000_000);
        s.kind = SpanKind::Server;
        s.status.code = StatusCode::Error;
        s.attributes = vec![
            KeyValue::new("code", AttrValue::Int(503)),
            KeyValue::new("r", AttrValue::Double(0.25)),
        ];
        assert!(q.matches(&s, &TraceCtx::default()));
        assert!(sq.matches(&s));
    }
}
