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
//! naming the unsupported part. Evaluation and the translation to a store
//! search live in `traceql_eval`.

use crate::model::{SpanKind, StatusCode};

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

#[cfg(test)]
mod tests {
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
}
