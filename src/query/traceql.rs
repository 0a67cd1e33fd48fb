//! TraceQL search: spanset filters `{ ... }` with `&&`, `||` and
//! parentheses over conditions `field op value`, spansets combined with
//! `&&` / `||` (and parentheses), and the `select(...)` pipeline stage.
//!
//! Fields: `resource.X`, `span.X`, `.X` (span attribute, else resource
//! attribute), quoted names (`span."a b"`), the span intrinsics `name`,
//! `status`, `kind`, `duration`, `statusMessage` (also `span:name` ...)
//! and the trace intrinsics `rootServiceName`, `rootName`, `traceDuration`
//! (also `trace:rootService` ...). Operators `= != > >= < <= =~ !~`
//! (regular expressions anchored at both ends, as in Tempo); values:
//! strings, integers, floats, booleans, durations, `nil`, `minInt` /
//! `maxInt` and the keywords of `status` and `kind`. A bare attribute is a
//! comparison with `true`.
//!
//! Everything else (aggregates, structural operators, grouping, metrics
//! functions, arithmetic, negation, hints, other scopes) is rejected with
//! a message naming it. Evaluation and the translation to a store search
//! live in `traceql_eval`.

mod ast;
mod lexer;
mod parser;

pub use ast::{AttrScope, Cond, Expr, Field, Op, Pattern, Query, Spansets, Value};
pub use parser::{field, parse, MAX_DEPTH, MAX_REGEX_LEN, MAX_SPANSETS, REGEX_SIZE_LIMIT};

fn unsupported(what: &str) -> String {
    format!("unsupported TraceQL: {what} (supported: spanset filters `{{ ... }}` joined by && and ||, and `| select(...)`)")
}

#[cfg(test)]
mod tests;
