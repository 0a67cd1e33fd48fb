//! [`SearchQuery`] → Elasticsearch query DSL, with the semantics of
//! `SearchQuery::matches` and `model::tag_matches`: every condition is a
//! filter on the same document, and a document is one span.

use serde_json::{json, Value};

use super::document::status_text;
use super::format_rfc3339_nanos;
use super::mapping::{attr_field, index_value, indexable_key, tag_field};
use crate::model::{SearchQuery, StatusCode};

/// The last instant `date_nanos` can hold (i64::MAX ns after the epoch).
pub const MAX_DATE_NANOS: u64 = i64::MAX as u64;

/// The bool query for `q`, or `None` when no span can match (for example a
/// window starting after the last representable instant).
pub fn compile(q: &SearchQuery) -> Option<Value> {
    let mut filter: Vec<Value> = Vec::new();
    if let Some(s) = &q.service {
        filter.push(term("service", s));
    }
    if let Some(op) = &q.operation {
        filter.push(term("operation", op));
    }
    if let Some(k) = q.span_kind {
        filter.push(term("kind", k.as_str()));
    }
    if q.min_duration_ns.is_some() || q.max_duration_ns.is_some() {
        let mut range = serde_json::Map::new();
        if let Some(min) = q.min_duration_ns {
            if min > i64::MAX as u64 {
                return None; // longer than any indexable duration
            }
            range.insert("gte".into(), json!(min));
        }
        if let Some(max) = q.max_duration_ns {
            if max < i64::MAX as u64 {
                range.insert("lte".into(), json!(max));
            }
        }
        filter.push(json!({ "range": { "duration_ns": range } }));
    }
    if q.start_ns.is_some() || q.end_ns.is_some() {
        let start = q.start_ns.unwrap_or(0);
        let end = q.end_ns.unwrap_or(MAX_DATE_NANOS).min(MAX_DATE_NANOS);
        if start > end {
            return None;
        }
        filter.push(json!({ "range": { "start_time": {
            "gte": format_rfc3339_nanos(start),
            "lte": format_rfc3339_nanos(end),
            "format": "strict_date_optional_time_nanos",
        } } }));
    }
    for (k, v) in &q.tags {
        filter.push(tag_filter(k, v));
    }
    Some(json!({ "bool": { "filter": filter } }))
}

fn term(field: &str, value: &str) -> Value {
    json!({ "term": { field: value } })
}

/// The attribute `key` has text `value`. The key lives in its `tags` field
/// when it was allow-listed at index time and in `attrs` otherwise; asking
/// both keeps search right across allow-list changes.
fn attr_equals(key: &str, value: &str) -> Value {
    let v = index_value(value);
    let mut should = vec![term(&attr_field(key), &v)];
    if indexable_key(key) {
        should.push(term(&tag_field(key), &v));
    }
    json!({ "bool": { "should": should, "minimum_should_match": 1 } })
}

fn attr_exists(key: &str) -> Vec<Value> {
    let mut out = vec![json!({ "exists": { "field": attr_field(key) } })];
    if indexable_key(key) {
        out.push(json!({ "exists": { "field": tag_field(key) } }));
    }
    out
}

/// One tag condition, as `model::tag_matches` decides it.
fn tag_filter(key: &str, value: &str) -> Value {
    match key {
        // Without an `error` attribute, `error=true` matches error spans
        // and any other value matches the rest.
        "error" => {
            let is_error = term("status", status_text(StatusCode::Error));
            let no_attr = attr_exists("error");
            let pseudo = if value == "true" {
                json!({ "bool": { "must_not": no_attr, "filter": [is_error] } })
            } else {
                let mut must_not = no_attr;
                must_not.push(is_error);
                json!({ "bool": { "must_not": must_not } })
            };
            json!({ "bool": { "should": [pseudo, attr_equals("error", value)], "minimum_should_match": 1 } })
        }
        "span.kind" => term("kind", value),
        "otel.status_code" => term("status", value),
        _ => attr_equals(key, value),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn impossible_windows_compile_to_none() {
        let q = SearchQuery {
            start_ns: Some(MAX_DATE_NANOS + 1),
            ..Default::default()
        };
        assert!(compile(&q).is_none());
        let q = SearchQuery {
            start_ns: Some(10),
            end_ns: Some(9),
            ..Default::default()
        };
        assert!(compile(&q).is_none());
        let q = SearchQuery {
            min_duration_ns: Some(u64::MAX),
            ..Default::default()
        };
        assert!(compile(&q).is_none());
    }

    #[test]
    fn open_bounds_are_clamped() {
        let q = SearchQuery {
            end_ns: Some(u64::MAX),
            max_duration_ns: Some(u64::MAX),
            ..Default::default()
        };
        let c = compile(&q).unwrap().to_string();
        assert!(c.contains("2262-04-11T23:47:16.854775807Z"), "{c}");
        assert!(!c.contains("lte\":18446744073709551615"), "{c}");
    }

    #[test]
    fn tags_query_both_fields_and_pseudo_tags_use_fixed_fields() {
        let q = SearchQuery {
            tags: vec![
                ("http.method".into(), "GET".into()),
                ("span.kind".into(), "server".into()),
                ("otel.status_code".into(), "ERROR".into()),
            ],
            ..Default::default()
        };
        let c = compile(&q).unwrap().to_string();
        assert!(
            c.contains("tags.http%2Emethod") && c.contains("attrs.http.method"),
            "{c}"
        );
        assert!(c.contains("{\"term\":{\"kind\":\"server\"}}"), "{c}");
        assert!(c.contains("{\"term\":{\"status\":\"ERROR\"}}"), "{c}");
    }
}
