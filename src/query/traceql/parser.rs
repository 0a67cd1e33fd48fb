//! Recursive descent over the tokens:
//!
//! ```text
//! query    := sets ( '|' stage )*
//! sets     := sets_and ( '||' sets_and )*
//! sets_and := set ( '&&' set )*
//! set      := '{' [ or ] '}' | '(' sets ')'
//! or       := and ( '||' and )*
//! and      := unary ( '&&' unary )*
//! unary    := '(' or ')' | 'true' | 'false' | field [ op value ]
//! stage    := 'select' '(' field ( ',' field )* ')'
//! ```

use std::iter::Peekable;
use std::vec::IntoIter;

use super::ast::{AttrScope, Cond, Expr, Field, Op, Pattern, Query, Spansets, Value};
use super::lexer::{lex, op_text, Tok};
use super::unsupported;
use crate::model::{SpanKind, StatusCode};

/// Longest `=~` pattern accepted, in bytes.
pub const MAX_REGEX_LEN: usize = 4096;
/// Bound on a compiled regex, so a hostile pattern is refused rather than
/// allowed to take memory (matching itself is linear in the `regex` crate).
pub const REGEX_SIZE_LIMIT: usize = 1 << 20;
/// Deepest parenthesis nesting accepted: the parser and the evaluator
/// recurse on it, so a hostile query must not reach the stack's end.
pub const MAX_DEPTH: usize = 32;
/// Most spansets in one query (they nest one level per `&&` / `||`).
pub const MAX_SPANSETS: usize = 64;

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
            for scope in ["event", "link", "instrumentation"] {
                if name.starts_with(&format!("{scope}.")) {
                    return Err(unsupported(&format!("the `{scope}.` attribute scope")));
                }
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

fn regex(src: &str) -> Result<Value, String> {
    if src.len() > MAX_REGEX_LEN {
        return Err(format!(
            "regular expression too long ({} bytes, at most {MAX_REGEX_LEN})",
            src.len()
        ));
    }
    // Tempo anchors regular expressions at both ends.
    regex::RegexBuilder::new(&format!("^(?:{src})$"))
        .size_limit(REGEX_SIZE_LIMIT)
        .dfa_size_limit(REGEX_SIZE_LIMIT)
        .build()
        .map(|regex| {
            Value::Regex(Pattern {
                source: src.to_string(),
                regex,
            })
        })
        .map_err(|e| format!("bad regular expression {src:?}: {e}"))
}

fn keyword(f: &Field, op: Op, k: &str) -> Result<Value, String> {
    let ordering = !matches!(op, Op::Eq | Op::Ne);
    let want = |what: &str| format!("`{}` compares with {what}", f.name());
    match (f, k) {
        (Field::Status, _) if !ordering => Ok(Value::Status(match k {
            "error" => StatusCode::Error,
            "ok" => StatusCode::Ok,
            "unset" => StatusCode::Unset,
            _ => return Err(want("error, ok or unset")),
        })),
        (Field::Kind, _) if !ordering => SpanKind::parse(k)
            .map(Value::Kind)
            .ok_or_else(|| want("unspecified, internal, server, client, producer or consumer")),
        (Field::Attr(..), "true" | "false") if !ordering => Ok(Value::Bool(k == "true")),
        (Field::Attr(..), "nil") if !ordering => Ok(Value::Nil),
        (Field::Attr(..), "minInt") => Ok(Value::Int(i64::MIN)),
        (Field::Attr(..), "maxInt") => Ok(Value::Int(i64::MAX)),
        (_, "nil") => Err(format!(
            "`{}` compares with nil using = or !=; intrinsics are never nil",
            f.name()
        )),
        _ if field(k).is_ok() || k.contains('.') || k.contains(':') => Err(unsupported(&format!(
            "comparing two fields (`{} {} {k}`)",
            f.name(),
            op_text(op)
        ))),
        (Field::Status, _) => Err(want("error, ok or unset, using = or !=")),
        (Field::Kind, _) => Err(want("a span kind, using = or !=")),
        _ => Err(format!("`{}` cannot compare with `{k}`", f.name())),
    }
}

/// The typed value of `field op tok`, or why it does not type-check.
fn check(field: &Field, op: Op, tok: Tok) -> Result<Value, String> {
    let want = |what: &str| format!("`{}` compares with {what}", field.name());
    let stringy = matches!(
        field,
        Field::Attr(..)
            | Field::Name
            | Field::StatusMessage
            | Field::RootServiceName
            | Field::RootName
    );
    if matches!(op, Op::Re | Op::NotRe) {
        return match tok {
            Tok::Str(s) if stringy => regex(&s),
            Tok::Str(_) => Err(want("= or != (regular expressions match strings)")),
            _ => Err(format!(
                "`{}` expects a quoted regular expression",
                op_text(op)
            )),
        };
    }
    match (field, tok) {
        (_, Tok::Ident(k)) => keyword(field, op, &k),
        (Field::Status | Field::Kind, t) => Err(want(&format!("a keyword, not {}", t.show()))),
        (Field::Duration | Field::TraceDuration, Tok::Num(Value::Duration(d))) => {
            Ok(Value::Duration(d))
        }
        (Field::Duration | Field::TraceDuration, _) => Err(want("a duration such as 100ms")),
        (Field::Attr(..), Tok::Num(v @ (Value::Int(_) | Value::Float(_)))) => Ok(v),
        (_, Tok::Str(s)) if stringy => Ok(Value::Str(s)),
        (Field::Attr(..), _) => Err(want("a string, number or boolean")),
        _ => Err(want("a quoted string")),
    }
}

struct Parser {
    toks: Peekable<IntoIter<Tok>>,
    depth: usize,
    spansets: usize,
}

impl Parser {
    fn open(&mut self) -> Result<(), String> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(format!(
                "TraceQL nests parentheses too deeply (at most {MAX_DEPTH})"
            ));
        }
        Ok(())
    }

    fn peek(&mut self) -> Option<&Tok> {
        self.toks.peek()
    }

    fn next(&mut self) -> Option<Tok> {
        self.toks.next()
    }

    fn expect(&mut self, want: Tok, context: &str) -> Result<(), String> {
        match self.next() {
            Some(t) if t == want => Ok(()),
            Some(t) => Err(format!(
                "expected {} {context} in TraceQL, found {}",
                want.show(),
                t.show()
            )),
            None => Err(format!("missing {} {context} in TraceQL", want.show())),
        }
    }

    fn sets(&mut self) -> Result<Spansets, String> {
        let mut left = self.sets_and()?;
        while self.peek() == Some(&Tok::Or) {
            self.next();
            left = Spansets::Or(Box::new(left), Box::new(self.sets_and()?));
        }
        Ok(left)
    }

    fn sets_and(&mut self) -> Result<Spansets, String> {
        let mut left = self.set()?;
        loop {
            match self.peek() {
                Some(Tok::And) => {
                    self.next();
                    left = Spansets::And(Box::new(left), Box::new(self.set()?));
                }
                Some(Tok::Structural(s)) => {
                    return Err(unsupported(&format!(
                        "the structural operator `{s}` between spansets"
                    )))
                }
                Some(Tok::Op(op @ (Op::Gt | Op::Lt | Op::NotRe))) => {
                    return Err(unsupported(&format!(
                        "the structural operator `{}` between spansets",
                        op_text(*op)
                    )))
                }
                _ => return Ok(left),
            }
        }
    }

    fn set(&mut self) -> Result<Spansets, String> {
        match self.next() {
            Some(Tok::LBrace) => {
                self.spansets += 1;
                if self.spansets > MAX_SPANSETS {
                    return Err(format!(
                        "too many spansets in TraceQL (at most {MAX_SPANSETS})"
                    ));
                }
                if self.peek() == Some(&Tok::RBrace) {
                    self.next();
                    return Ok(Spansets::Filter(Expr::Const(true)));
                }
                let e = self.or()?;
                self.expect(Tok::RBrace, "to close the spanset")?;
                Ok(Spansets::Filter(e))
            }
            Some(Tok::LParen) => {
                self.open()?;
                let s = self.sets()?;
                self.expect(Tok::RParen, "to close the parenthesis")?;
                self.depth -= 1;
                Ok(s)
            }
            Some(Tok::Ident(f)) if self.peek() == Some(&Tok::LParen) => Err(function(&f)),
            Some(t) => Err(format!(
                "expected a spanset `{{ ... }}` in TraceQL, found {}",
                t.show()
            )),
            None => Err("a TraceQL query starts with `{`".into()),
        }
    }

    fn or(&mut self) -> Result<Expr, String> {
        let mut parts = vec![self.and()?];
        while self.peek() == Some(&Tok::Or) {
            self.next();
            parts.push(self.and()?);
        }
        Ok(if parts.len() == 1 {
            parts.pop().unwrap_or(Expr::Const(true))
        } else {
            Expr::Or(parts)
        })
    }

    fn and(&mut self) -> Result<Expr, String> {
        let mut parts = vec![self.unary()?];
        while self.peek() == Some(&Tok::And) {
            self.next();
            parts.push(self.unary()?);
        }
        Ok(if parts.len() == 1 {
            parts.pop().unwrap_or(Expr::Const(true))
        } else {
            Expr::And(parts)
        })
    }

    fn unary(&mut self) -> Result<Expr, String> {
        let name = match self.next() {
            Some(Tok::LParen) => {
                self.open()?;
                let e = self.or()?;
                self.expect(Tok::RParen, "to close the parenthesis")?;
                self.depth -= 1;
                return Ok(e);
            }
            Some(Tok::Not) => return Err(unsupported("negation (`!`)")),
            Some(Tok::Ident(b)) if b == "true" || b == "false" => {
                return Ok(Expr::Const(b == "true"))
            }
            Some(Tok::Ident(n)) => n,
            Some(Tok::LBrace) => return Err(unsupported("nested spansets (`{` inside `{ }`)")),
            Some(t @ (Tok::Str(_) | Tok::Num(_))) => {
                return Err(format!(
                    "expected a field name in TraceQL, found the value {} (write the field first)",
                    t.show()
                ))
            }
            Some(t) => {
                return Err(format!(
                    "expected a field name in TraceQL, found {}",
                    t.show()
                ))
            }
            None => return Err("expected a field name in TraceQL".into()),
        };
        if self.peek() == Some(&Tok::LParen) {
            return Err(function(&name));
        }
        let f = field(&name)?;
        let op = match self.peek() {
            Some(Tok::Op(op)) => *op,
            // A bare attribute is a comparison to `true`, as in Tempo.
            Some(Tok::And | Tok::Or | Tok::RBrace | Tok::RParen) | None
                if matches!(f, Field::Attr(..)) =>
            {
                return Ok(Expr::Cond(Cond {
                    field: f,
                    op: Op::Eq,
                    value: Value::Bool(true),
                }))
            }
            _ => {
                return Err(format!(
                    "expected an operator after `{name}` (= != > >= < <= =~ !~)"
                ))
            }
        };
        self.next();
        let v = self
            .next()
            .ok_or_else(|| format!("expected a value after `{name} {}`", op_text(op)))?;
        let value = check(&f, op, v)?;
        Ok(Expr::Cond(Cond {
            field: f,
            op,
            value,
        }))
    }

    fn stage(&mut self, q: &mut Query) -> Result<(), String> {
        match self.next() {
            Some(Tok::Ident(s)) if s == "select" => {
                self.expect(Tok::LParen, "after `select`")?;
                loop {
                    match self.next() {
                        Some(Tok::Ident(n)) => {
                            let f = field(&n)?;
                            if !q.select.contains(&f) {
                                q.select.push(f);
                            }
                        }
                        Some(t) => {
                            return Err(format!(
                                "expected a field in `select(...)`, found {}",
                                t.show()
                            ))
                        }
                        None => return Err("missing `)` in `select(...)`".into()),
                    }
                    match self.next() {
                        Some(Tok::Comma) => continue,
                        Some(Tok::RParen) => return Ok(()),
                        Some(t) => {
                            return Err(format!(
                                "expected `,` or `)` in `select(...)`, found {}",
                                t.show()
                            ))
                        }
                        None => return Err("missing `)` in `select(...)`".into()),
                    }
                }
            }
            Some(Tok::Ident(f)) => Err(function(&f)),
            Some(Tok::LBrace | Tok::LParen) => Err(unsupported(
                "spanset filters as pipeline stages (`| { ... }`)",
            )),
            Some(t) => Err(format!(
                "expected a pipeline stage after `|`, found {}",
                t.show()
            )),
            None => Err("expected a pipeline stage after `|`".into()),
        }
    }
}

/// The error for a function strand does not evaluate, by kind.
fn function(name: &str) -> String {
    let kind = match name {
        "count" | "avg" | "min" | "max" | "sum" => "the aggregate",
        "by" => "grouping",
        "coalesce" => "the pipeline function",
        n if n.ends_with("_over_time") || matches!(n, "rate" | "compare" | "topk" | "bottomk") => {
            "the metrics function"
        }
        _ => "the function",
    };
    unsupported(&format!("{kind} `{name}()`"))
}

/// Parses a query; the error names the unsupported or malformed part.
pub fn parse(src: &str) -> Result<Query, String> {
    let mut p = Parser {
        toks: lex(src)?.into_iter().peekable(),
        depth: 0,
        spansets: 0,
    };
    let mut q = Query {
        spansets: p.sets()?,
        select: Vec::new(),
    };
    loop {
        match p.next() {
            None => return Ok(q),
            Some(Tok::Pipe) => p.stage(&mut q)?,
            Some(Tok::Ident(w)) if w == "with" => {
                return Err(unsupported("query hints (`with (...)`)"))
            }
            Some(Tok::Op(op)) => {
                return Err(unsupported(&format!(
                    "comparing a spanset with `{}` (scalar filters)",
                    op_text(op)
                )))
            }
            Some(t) => return Err(format!("unexpected {} after the spanset", t.show())),
        }
    }
}
