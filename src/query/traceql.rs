//! A TraceQL subset: one spanset filter `{ cond && cond ... }`, where a
//! condition is `field op value`.
//!
//! Fields: `resource.X`, `span.X`, `.X` (span attribute, else resource
//! attribute — the lookup Jaeger tags use), the span intrinsics `name`,
//! `status`, `kind`, `duration`, `statusMessage` (also spelled `span:name`
//! ...), and the trace intrinsics `rootServiceName`, `rootName`,
//! `traceDuration` (also `trace:rootService` ...). Operators `= != > >= <
//! <=`; values: quoted strings, integers, floats, booleans, durations
//! (`100ms`), and the keywords of `status` and `kind`.
//!
//! Everything else (`||`, pipelines `|`, aggregates, structural operators,
//! regex matches, parentheses, several spansets) is rejected with a message
//! naming the unsupported part. Conditions that map onto [`SearchQuery`]
//! narrow the store search; all conditions are then checked exactly on
//! the fetched traces.

use std::cmp::Ordering;

use crate::model::{AttrValue, KeyValue, SearchQuery, Span, SpanKind, StatusCode};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AttrScope {
    Resource,
    Span,
    Any,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Field {
    Attr(AttrScope, String),
    Name,
    Status,
    Kind,
    Duration,
    StatusMessage,
    RootServiceName,
    RootName,
    TraceDuration,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    Eq,
    Ne,
    Gt,
    Ge,
    Lt,
    Le,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Str(String),
    Int(i64),
    Float(f64),
    Bool(bool),
    Duration(u64),
    Status(StatusCode),
    Kind(SpanKind),
}

#[derive(Clone, Debug, PartialEq)]
pub struct Cond {
    pub field: Field,
    pub op: Op,
    pub value: Value,
}

/// A parsed query: a trace matches when one of its spans satisfies every
/// condition (an empty list, `{}`, matches every span).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Query {
    pub conds: Vec<Cond>,
}

#[derive(Clone, Debug, PartialEq)]
enum Tok {
    LBrace,
    RBrace,
    And,
    Op(Op),
    Str(String),
    Num(Value),
    Ident(String),
}

fn unsupported(what: &str) -> String {
    format!("unsupported TraceQL: {what} (supported: one spanset `{{ field op value && ... }}`)")
}

fn lex(src: &str) -> Result<Vec<Tok>, String> {
    let chars: Vec<char> = src.chars().collect();
    let at = |i: usize| chars.get(i).copied().unwrap_or('\0');
    let mut toks = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let (c, next) = (chars[i], at(i + 1));
        if c.is_whitespace() {
            i += 1;
        } else if c == '"' || c == '`' {
            let mut s = String::new();
            i += 1;
            loop {
                match chars.get(i) {
                    None => return Err("unterminated string in TraceQL".into()),
                    Some(&q) if q == c => break,
                    Some('\\') if c == '"' => {
                        i += 1;
                        match chars.get(i) {
                            Some('n') => s.push('\n'),
                            Some('t') => s.push('\t'),
                            Some(&e) => s.push(e),
                            None => return Err("unterminated string in TraceQL".into()),
                        }
                    }
                    Some(&ch) => s.push(ch),
                }
                i += 1;
            }
            i += 1;
            toks.push(Tok::Str(s));
        } else if c.is_ascii_digit()
            || (c == '-' && next.is_ascii_digit())
            || (c == '.' && next.is_ascii_digit())
        {
            let start = i;
            i += 1;
            loop {
                if at(i).is_ascii_digit() || at(i) == '.' {
                    i += 1;
                } else if matches!(at(i), 'e' | 'E')
                    && (at(i + 1).is_ascii_digit() || at(i + 1) == '-')
                {
                    i += 2;
                } else {
                    break;
                }
            }
            let num_end = i;
            while at(i).is_alphabetic() {
                i += 1;
            }
            let text: String = chars[start..i].iter().collect();
            let num: String = chars[start..num_end].iter().collect();
            let v = if i > num_end {
                let d = super::params::go_duration_ns(&text)
                    .ok_or_else(|| format!("bad duration {text:?} in TraceQL"))?;
                Value::Duration(d)
            } else if let Ok(n) = num.parse::<i64>() {
                Value::Int(n)
            } else {
                Value::Float(
                    num.parse::<f64>()
                        .map_err(|_| format!("bad number {num:?} in TraceQL"))?,
                )
            };
            toks.push(Tok::Num(v));
        } else if c.is_alphabetic() || c == '_' || c == '.' {
            let start = i;
            while at(i).is_alphanumeric() || matches!(at(i), '_' | '.' | ':' | '/' | '-') {
                i += 1;
            }
            toks.push(Tok::Ident(chars[start..i].iter().collect()));
        } else {
            let (tok, len) = match (c, next) {
                ('{', _) => (Tok::LBrace, 1),
                ('}', _) => (Tok::RBrace, 1),
                ('&', '&') => (Tok::And, 2),
                ('|', '|') => return Err(unsupported("`||`")),
                ('|', _) => return Err(unsupported("pipelines (`|`) and aggregates")),
                ('=' | '!', '~') => {
                    return Err(unsupported("regular expression matching (`=~`, `!~`)"))
                }
                ('>', '>') | ('<', '<') | ('~', _) | ('&' | '!', '>' | '<' | '~') => {
                    return Err(unsupported(
                        "structural operators (`>>`, `>`, `<<`, `<`, `~` between spansets)",
                    ))
                }
                ('(' | ')', _) => return Err(unsupported("parentheses")),
                ('!', '=') => (Tok::Op(Op::Ne), 2),
                ('>', '=') => (Tok::Op(Op::Ge), 2),
                ('<', '=') => (Tok::Op(Op::Le), 2),
                ('=', _) => (Tok::Op(Op::Eq), 1),
                ('>', _) => (Tok::Op(Op::Gt), 1),
                ('<', _) => (Tok::Op(Op::Lt), 1),
                ('!', _) => return Err(unsupported("negation (`!`)")),
                _ => return Err(format!("unexpected character {c:?} in TraceQL")),
            };
            toks.push(tok);
            i += len;
        }
    }
    Ok(toks)
}

/// Resolves a field name (`resource.x`, `span.x`, `.x`, an intrinsic).
pub fn field(name: &str) -> Result<Field, String> {
    let attr = |scope, key: &str| {
        if key.is_empty() {
            Err(format!("attribute name missing in {name:?}"))
        } else {
            Ok(Field::Attr(scope, key.to_string()))
        }
    };
    Ok(match name {
        "name" | "span:name" => Field::Name,
        "status" | "span:status" => Field::Status,
        "kind" | "span:kind" => Field::Kind,
        "duration" | "span:duration" => Field::Duration,
        "statusMessage" | "span:statusMessage" => Field::StatusMessage,
        "rootServiceName" | "trace:rootService" => Field::RootServiceName,
        "rootName" | "trace:rootName" => Field::RootName,
        "traceDuration" | "trace:duration" => Field::TraceDuration,
        _ => {
            if let Some(k) = name.strip_prefix("resource.") {
                return attr(AttrScope::Resource, k);
            }
            if let Some(k) = name.strip_prefix("span.") {
                return attr(AttrScope::Span, k);
            }
            if let Some(k) = name.strip_prefix('.') {
                return attr(AttrScope::Any, k);
            }
            if name.contains(':')
                || matches!(
                    name,
                    "parent"
                        | "childCount"
                        | "nestedSetParent"
                        | "nestedSetLeft"
                        | "nestedSetRight"
                )
            {
                return Err(unsupported(&format!("the intrinsic `{name}`")));
            }
            return Err(format!("unknown TraceQL field `{name}` (attributes are written span.{name}, resource.{name} or .{name})"));
        }
    })
}

fn check(field: &Field, op: Op, tok: Tok) -> Result<Value, String> {
    let ordering = !matches!(op, Op::Eq | Op::Ne);
    let want = |what: &str| format!("`{}` compares with {what}", field_name(field));
    match (field, tok) {
        (Field::Status, Tok::Ident(k)) if !ordering => Ok(Value::Status(match k.as_str() {
            "error" => StatusCode::Error,
            "ok" => StatusCode::Ok,
            "unset" => StatusCode::Unset,
            _ => return Err(want("error, ok or unset")),
        })),
        (Field::Status, _) => Err(want("error, ok or unset, using = or !=")),
        (Field::Kind, Tok::Ident(k)) if !ordering => SpanKind::parse(&k)
            .map(Value::Kind)
            .ok_or_else(|| want("unspecified, internal, server, client, producer or consumer")),
        (Field::Kind, _) => Err(want("a span kind, using = or !=")),
        (Field::Duration | Field::TraceDuration, Tok::Num(Value::Duration(d))) => {
            Ok(Value::Duration(d))
        }
        (Field::Duration | Field::TraceDuration, _) => Err(want("a duration such as 100ms")),
        (
            Field::Name | Field::StatusMessage | Field::RootServiceName | Field::RootName,
            Tok::Str(s),
        ) => Ok(Value::Str(s)),
        (Field::Name | Field::StatusMessage | Field::RootServiceName | Field::RootName, _) => {
            Err(want("a quoted string"))
        }
        (Field::Attr(..), Tok::Str(s)) => Ok(Value::Str(s)),
        (Field::Attr(..), Tok::Num(v @ (Value::Int(_) | Value::Float(_)))) => Ok(v),
        (Field::Attr(..), Tok::Ident(b)) if (b == "true" || b == "false") && !ordering => {
            Ok(Value::Bool(b == "true"))
        }
        (Field::Attr(..), Tok::Ident(n)) if n == "nil" => Err(unsupported("`nil`")),
        (Field::Attr(..), _) => Err(want("a string, number or boolean")),
    }
}

fn field_name(f: &Field) -> String {
    match f {
        Field::Attr(AttrScope::Resource, k) => format!("resource.{k}"),
        Field::Attr(AttrScope::Span, k) => format!("span.{k}"),
        Field::Attr(AttrScope::Any, k) => format!(".{k}"),
        Field::Name => "name".into(),
        Field::Status => "status".into(),
        Field::Kind => "kind".into(),
        Field::Duration => "duration".into(),
        Field::StatusMessage => "statusMessage".into(),
        Field::RootServiceName => "rootServiceName".into(),
        Field::RootName => "rootName".into(),
        Field::TraceDuration => "traceDuration".into(),
    }
}

/// Parses a query; the error names the unsupported or malformed part.
pub fn parse(src: &str) -> Result<Query, String> {
    let mut toks = lex(src)?.into_iter().peekable();
    if toks.next() != Some(Tok::LBrace) {
        return Err("a TraceQL query starts with `{`".into());
    }
    let mut q = Query::default();
    if toks.peek() == Some(&Tok::RBrace) {
        toks.next();
    } else {
        loop {
            let name = match toks.next() {
                Some(Tok::Ident(n)) => n,
                Some(Tok::Str(_) | Tok::Num(_)) | None => {
                    return Err("expected a field name in TraceQL".into())
                }
                Some(t) => return Err(format!("expected a field name in TraceQL, found {t:?}")),
            };
            let f = field(&name)?;
            let op = match toks.next() {
                Some(Tok::Op(op)) => op,
                _ => return Err(format!("expected an operator after `{name}` (= != > >= < <=); bare attribute tests are not supported")),
            };
            let v = toks
                .next()
                .ok_or_else(|| format!("expected a value after `{name}`"))?;
            let value = check(&f, op, v)?;
            q.conds.push(Cond {
                field: f,
                op,
                value,
            });
            match toks.next() {
                Some(Tok::And) => continue,
                Some(Tok::RBrace) => break,
                None => return Err("missing `}` in TraceQL".into()),
                Some(t) => return Err(format!("expected `&&` or `}}` in TraceQL, found {t:?}")),
            }
        }
    }
    match toks.next() {
        None => Ok(q),
        Some(Tok::And) => Err(unsupported("combining spansets with `&&`")),
        Some(Tok::Op(Op::Gt | Op::Lt)) => Err(unsupported(
            "structural operators (`>`, `<` between spansets)",
        )),
        Some(t) => Err(format!("unexpected {t:?} after the spanset")),
    }
}

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
    use super::*;

    fn p(s: &str) -> Query {
        parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn parses_the_subset() {
        assert_eq!(p("{}"), Query::default());
        assert_eq!(p("{ }").conds.len(), 0);
        let q = p(
            r#"{ resource.service.name = "front" && span.http.status_code >= 500 && .ratio < 0.5 && name != "x" && status = error && kind = server && duration > 1.5s && span.ok = true && rootServiceName = "a" }"#,
        );
        assert_eq!(q.conds.len(), 9);
        assert_eq!(
            q.conds[0],
            Cond {
                field: Field::Attr(AttrScope::Resource, "service.name".into()),
                op: Op::Eq,
                value: Value::Str("front".into())
            }
        );
        assert_eq!(q.conds[1].value, Value::Int(500));
        assert_eq!(
            q.conds[2],
            Cond {
                field: Field::Attr(AttrScope::Any, "ratio".into()),
                op: Op::Lt,
                value: Value::Float(0.5)
            }
        );
        assert_eq!(q.conds[4].value, Value::Status(StatusCode::Error));
        assert_eq!(q.conds[5].value, Value::Kind(SpanKind::Server));
        assert_eq!(q.conds[6].value, Value::Duration(1_500_000_000));
        assert_eq!(q.conds[7].value, Value::Bool(true));
        assert_eq!(
            p("{span:name=`a\"b`}").conds[0].value,
            Value::Str("a\"b".into())
        );
        assert_eq!(
            p(r#"{.x = "q\"uote"}"#).conds[0].value,
            Value::Str("q\"uote".into())
        );
        assert_eq!(p("{.n = -3}").conds[0].value, Value::Int(-3));
    }

    #[test]
    fn rejects_what_is_outside_the_subset_naming_it() {
        for (q, part) in [
            ("{ .a = 1 || .b = 2 }", "`||`"),
            ("{ .a = 1 } | count() > 2", "pipelines"),
            ("{ .a = 1 } >> { .b = 2 }", "structural"),
            ("{ .a = 1 } > { .b = 2 }", "structural"),
            ("{ .a = 1 } && { .b = 2 }", "combining spansets"),
            ("{ .a =~ \"x.*\" }", "regular expression"),
            ("{ (.a = 1) }", "parentheses"),
            ("{ .a = nil }", "nil"),
            ("{ event:name = \"x\" }", "event:name"),
        ] {
            let e = parse(q).unwrap_err();
            assert!(e.contains("unsupported") && e.contains(part), "{q}: {e}");
        }
        for q in [
            "",
            ".a = 1",
            "{ .a = 1",
            "{ foo = 1 }",
            "{ status = boom }",
            "{ duration > 5 }",
            "{ name = 1 }",
            "{ .a }",
            "{ .a = \"x }",
            "{ kind > server }",
            "{ .b > true }",
        ] {
            assert!(parse(q).is_err(), "{q}");
        }
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
