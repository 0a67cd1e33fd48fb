//! Evaluation of TraceQL on spans and traces, and its translation to a
//! store search: conditions every match requires narrow the store search;
//! the whole query is then checked exactly on the fetched traces.

use std::cmp::Ordering;

use super::traceql::{AttrScope, Cond, Expr, Field, Op, Query, Spansets, Value};
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
        (Op::Re | Op::NotRe, Some(_)) => false,
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

/// `attr op v` on one stored value. Arrays and maps compare with nothing:
/// the store's tag index matches their JSON text, so matching elements
/// here would make narrowing stricter than the query.
fn attr_holds(attr: &AttrValue, op: Op, v: &Value) -> bool {
    match (op, v, attr) {
        (Op::Re, Value::Regex(p), AttrValue::Str(s)) => p.regex.is_match(s),
        (Op::NotRe, Value::Regex(p), AttrValue::Str(s)) => !p.regex.is_match(s),
        _ => holds(op, attr_cmp(attr, v)),
    }
}

/// The attribute a field reads on a span, if any.
pub fn lookup<'a>(s: &'a Span, scope: AttrScope, key: &str) -> Option<&'a AttrValue> {
    match scope {
        AttrScope::Span => crate::model::find_attr(&s.attributes, key),
        AttrScope::Resource => crate::model::find_attr(&s.resource.attributes, key),
        AttrScope::Any => s.attr(key),
    }
}

fn str_holds(op: Op, have: &str, v: &Value) -> bool {
    match (op, v) {
        (Op::Re, Value::Regex(p)) => p.regex.is_match(have),
        (Op::NotRe, Value::Regex(p)) => !p.regex.is_match(have),
        (_, Value::Str(x)) => holds(op, Some(have.cmp(x.as_str()))),
        _ => false,
    }
}

impl Cond {
    pub fn matches(&self, s: &Span, t: &TraceCtx<'_>) -> bool {
        let (op, v) = (self.op, &self.value);
        match &self.field {
            Field::Attr(scope, key) => match (lookup(s, *scope, key), v) {
                (found, Value::Nil) => found.is_some() == (op == Op::Ne),
                (Some(a), _) => attr_holds(a, op, v),
                // A missing attribute satisfies no comparison, `!=` included.
                (None, _) => false,
            },
            Field::Name => str_holds(op, &s.name, v),
            Field::StatusMessage => str_holds(op, &s.status.message, v),
            Field::RootServiceName => str_holds(op, t.root_service, v),
            Field::RootName => str_holds(op, t.root_name, v),
            Field::Duration | Field::TraceDuration => match v {
                Value::Duration(d) => {
                    let have = if self.field == Field::Duration {
                        s.duration_ns()
                    } else {
                        t.duration_ns
                    };
                    holds(op, Some(have.cmp(d)))
                }
                _ => false,
            },
            Field::Status => {
                matches!(v, Value::Status(c) if (s.status.code == *c) == (op == Op::Eq))
            }
            Field::Kind => matches!(v, Value::Kind(k) if (s.kind == *k) == (op == Op::Eq)),
        }
    }
}

impl Expr {
    pub fn matches(&self, s: &Span, t: &TraceCtx<'_>) -> bool {
        match self {
            Expr::Cond(c) => c.matches(s, t),
            Expr::Const(b) => *b,
            Expr::And(v) => v.iter().all(|e| e.matches(s, t)),
            Expr::Or(v) => v.iter().any(|e| e.matches(s, t)),
        }
    }

    /// The conditions every match of this expression satisfies.
    fn required<'a>(&'a self, out: &mut Vec<&'a Cond>) {
        match self {
            Expr::Cond(c) => out.push(c),
            Expr::And(v) => v.iter().for_each(|e| e.required(out)),
            Expr::Const(_) | Expr::Or(_) => {}
        }
    }

    fn conds<'a>(&'a self, out: &mut Vec<&'a Cond>) {
        match self {
            Expr::Cond(c) => out.push(c),
            Expr::And(v) | Expr::Or(v) => v.iter().for_each(|e| e.conds(out)),
            Expr::Const(_) => {}
        }
    }
}

impl Spansets {
    /// For each span, whether it is in the result; all false if the trace
    /// does not match.
    fn eval(&self, spans: &[Span], t: &TraceCtx<'_>) -> Vec<bool> {
        match self {
            Spansets::Filter(e) => spans.iter().map(|s| e.matches(s, t)).collect(),
            Spansets::And(a, b) => {
                let (a, b) = (a.eval(spans, t), b.eval(spans, t));
                if a.contains(&true) && b.contains(&true) {
                    a.iter().zip(&b).map(|(x, y)| *x || *y).collect()
                } else {
                    vec![false; spans.len()]
                }
            }
            Spansets::Or(a, b) => {
                let (a, b) = (a.eval(spans, t), b.eval(spans, t));
                a.iter().zip(&b).map(|(x, y)| *x || *y).collect()
            }
        }
    }

    fn any_matches(&self, s: &Span, t: &TraceCtx<'_>) -> bool {
        match self {
            Spansets::Filter(e) => e.matches(s, t),
            Spansets::And(a, b) | Spansets::Or(a, b) => a.any_matches(s, t) || b.any_matches(s, t),
        }
    }

    fn conds<'a>(&'a self, out: &mut Vec<&'a Cond>) {
        match self {
            Spansets::Filter(e) => e.conds(out),
            Spansets::And(a, b) | Spansets::Or(a, b) => {
                a.conds(out);
                b.conds(out);
            }
        }
    }
}

impl Query {
    /// Whether `s` satisfies one of the spanset filters. For one spanset
    /// that is exact; across spansets (`{a} && {b}`) the trace-level
    /// verdict is [`Query::matched`].
    pub fn matches(&self, s: &Span, t: &TraceCtx<'_>) -> bool {
        self.spansets.any_matches(s, t)
    }

    /// The spans of the trace the query returns: empty when the trace does
    /// not match.
    pub fn matched<'a>(&self, spans: &'a [Span], t: &TraceCtx<'_>) -> Vec<&'a Span> {
        let keep = self.spansets.eval(spans, t);
        spans
            .iter()
            .zip(keep)
            .filter(|(_, k)| *k)
            .map(|(s, _)| s)
            .collect()
    }

    /// The conditions of a query that is one spanset of `&&`-joined
    /// conditions (`{}` gives none); `None` for anything else (`||`,
    /// several spansets, `false`).
    pub fn and_chain(&self) -> Option<Vec<&Cond>> {
        fn walk<'a>(e: &'a Expr, out: &mut Vec<&'a Cond>) -> bool {
            match e {
                Expr::Cond(c) => {
                    out.push(c);
                    true
                }
                Expr::And(v) => v.iter().all(|e| walk(e, out)),
                Expr::Const(b) => *b,
                Expr::Or(_) => false,
            }
        }
        let Spansets::Filter(e) = &self.spansets else {
            return None;
        };
        let mut out = Vec::new();
        walk(e, &mut out).then_some(out)
    }

    /// Narrows `q` with the conditions a store search can apply. Only
    /// conditions every match needs are used (the `&&` chain of a single
    /// spanset), so the exact check afterwards only removes traces, never
    /// misses one.
    pub fn narrow(&self, q: &mut SearchQuery) {
        let Spansets::Filter(e) = &self.spansets else {
            return;
        };
        let mut conds = Vec::new();
        e.required(&mut conds);
        for c in conds {
            narrow_one(c, q);
        }
    }

    /// Attributes the conditions mention, then those `select` names: the
    /// attributes shown with matched spans.
    pub fn attribute_fields(&self) -> Vec<(AttrScope, String)> {
        let mut conds = Vec::new();
        self.spansets.conds(&mut conds);
        let mut out: Vec<(AttrScope, String)> = Vec::new();
        for f in conds.iter().map(|c| &c.field).chain(&self.select) {
            if let Field::Attr(scope, k) = f {
                if !out.iter().any(|(s, key)| s == scope && key == k) {
                    out.push((*scope, k.clone()));
                }
            }
        }
        out
    }

    /// The intrinsics `select` names, shown with matched spans.
    pub fn selected_intrinsics(&self) -> impl Iterator<Item = &Field> {
        self.select.iter().filter(|f| !matches!(f, Field::Attr(..)))
    }
}

/// An intrinsic as a span attribute (`select(status)` shows `status`).
pub fn intrinsic_attr(f: &Field, s: &Span, t: &TraceCtx<'_>) -> Option<KeyValue> {
    let text = |v: &str| AttrValue::Str(v.to_string());
    let v = match f {
        Field::Attr(..) => return None,
        Field::Name => text(&s.name),
        Field::Status => text(match s.status.code {
            StatusCode::Error => "error",
            StatusCode::Ok => "ok",
            StatusCode::Unset => "unset",
        }),
        Field::Kind => text(s.kind.as_str()),
        Field::Duration => AttrValue::Int(i64::try_from(s.duration_ns()).unwrap_or(i64::MAX)),
        Field::StatusMessage => text(&s.status.message),
        Field::RootServiceName => text(t.root_service),
        Field::RootName => text(t.root_name),
        Field::TraceDuration => AttrValue::Int(i64::try_from(t.duration_ns).unwrap_or(i64::MAX)),
    };
    Some(KeyValue::new(f.name(), v))
}

fn narrow_one(c: &Cond, q: &mut SearchQuery) {
    match (&c.field, c.op, &c.value) {
        (Field::Name, Op::Eq, Value::Str(n)) if q.operation.is_none() => {
            q.operation = Some(n.clone())
        }
        (Field::Kind, Op::Eq, Value::Kind(k)) if q.span_kind.is_none() => q.span_kind = Some(*k),
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
                Op::Ne | Op::Re | Op::NotRe => (None, None),
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
        // Tags match the span attribute, else the resource one, on the
        // text form: a superset of `span.X` and exactly `.X`. Keys with
        // special tag semantics are left to the exact check.
        (Field::Attr(AttrScope::Span | AttrScope::Any, k), Op::Eq, v)
            if !matches!(k.as_str(), "error" | "span.kind" | "otel.status_code") =>
        {
            let text = match v {
                Value::Str(s) => s.clone(),
                Value::Int(i) => i.to_string(),
                Value::Bool(b) => b.to_string(),
                _ => return,
            };
            q.tags.push((k.clone(), text));
        }
        _ => {}
    }
}

#[cfg(test)]
#[path = "traceql_eval_tests.rs"]
mod tests;
