//! The parsed form of a TraceQL query.

use crate::model::{SpanKind, StatusCode};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AttrScope {
    Resource,
    Span,
    /// `.x`: the span attribute, else the resource one.
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
    /// `=~`, anchored at both ends.
    Re,
    /// `!~`, anchored at both ends.
    NotRe,
}

/// A compiled regular expression, compared by its source.
#[derive(Clone, Debug)]
pub struct Pattern {
    pub source: String,
    pub regex: regex::Regex,
}

impl PartialEq for Pattern {
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source
    }
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
    /// `nil`: `= nil` is "absent", `!= nil` is "present".
    Nil,
    Regex(Pattern),
}

#[derive(Clone, Debug, PartialEq)]
pub struct Cond {
    pub field: Field,
    pub op: Op,
    pub value: Value,
}

/// What is inside one pair of braces, evaluated on a single span.
#[derive(Clone, Debug, PartialEq)]
pub enum Expr {
    Cond(Cond),
    /// `true`, `false`; `{}` is `Const(true)`.
    Const(bool),
    And(Vec<Expr>),
    Or(Vec<Expr>),
}

/// Spansets combined at the top level, evaluated on a whole trace.
#[derive(Clone, Debug, PartialEq)]
pub enum Spansets {
    Filter(Expr),
    /// Both sides found spans; the result is the spans of both.
    And(Box<Spansets>, Box<Spansets>),
    /// Either side found spans; the result is the union.
    Or(Box<Spansets>, Box<Spansets>),
}

/// A parsed query: the spanset expression and the fields `select(...)`
/// names, shown on the matched spans.
#[derive(Clone, Debug, PartialEq)]
pub struct Query {
    pub spansets: Spansets,
    pub select: Vec<Field>,
}

impl Default for Query {
    /// `{}`: every span of every trace.
    fn default() -> Self {
        Query {
            spansets: Spansets::Filter(Expr::Const(true)),
            select: Vec::new(),
        }
    }
}

impl Field {
    /// The field as a query writes it.
    pub fn name(&self) -> String {
        match self {
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
}
