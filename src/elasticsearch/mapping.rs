//! The span index template. Fixed fields are keywords (ids, service,
//! operation, kind, status), `start_time` is `date_nanos`, `duration_ns` a
//! long. Allow-listed attribute keys get their own keyword field under
//! `tags`; every other attribute goes into the one `flattened` field
//! `attrs`, so no tag can grow the mapping. The whole span rides in
//! `_source` under `span` (not indexed) so a trace is rebuilt exactly.

use elasticsearch::indices::{IndicesPutIndexTemplateParts, IndicesPutMappingParts};
use elasticsearch::Elasticsearch;
use serde_json::{json, Map, Value};

use super::{check_status, client_error, index_pattern};
use crate::config::ElasticsearchConfig;
use crate::error::Result;

/// Field holding allow-listed attributes, one keyword sub-field per key.
pub const TAGS: &str = "tags";
/// Flattened field holding every other attribute.
pub const ATTRS: &str = "attrs";
/// Longest attribute text indexed verbatim; longer values are indexed as a
/// hash (see [`index_value`]) so no value exceeds Lucene's term limit.
pub const MAX_INDEXED_VALUE_BYTES: usize = 1024;

/// The sub-field name of an allow-listed key: '%', '.' and '*' are
/// percent-escaped, so dotted keys stay one field (not an object path) and
/// the mapping from key to field is one-to-one.
pub fn tag_field_name(key: &str) -> String {
    let mut out = String::with_capacity(key.len());
    for c in key.chars() {
        match c {
            '%' => out.push_str("%25"),
            '.' => out.push_str("%2E"),
            '*' => out.push_str("%2A"),
            c => out.push(c),
        }
    }
    out
}

/// The full path of an allow-listed key's field, e.g. `tags.http%2Emethod`.
pub fn tag_field(key: &str) -> String {
    format!("{TAGS}.{}", tag_field_name(key))
}

/// The key under which an attribute is stored in the flattened field: the
/// key itself, hashed when absurdly long (a flattened term is key + value
/// and must stay under Lucene's term limit).
pub fn attr_field_key(key: &str) -> String {
    index_value(key)
}

/// The path of a key inside the flattened field, e.g. `attrs.http.method`.
pub fn attr_field(key: &str) -> String {
    format!("{ATTRS}.{}", attr_field_key(key))
}

/// Whether a key can be indexed at all: Elasticsearch rejects empty field
/// names and names that are only dots or whitespace. Such keys stay in
/// `_source` but are not searchable (documented).
pub fn indexable_key(key: &str) -> bool {
    !key.is_empty()
        && key.chars().any(|c| c != '.' && !c.is_whitespace())
        && !key.starts_with('.')
        && !key.ends_with('.')
        && !key.contains("..")
}

/// The term indexed for an attribute's text form: the text itself, or for
/// long values a tagged 128-bit hash of it. Queries apply the same function,
/// so equality search stays exact.
pub fn index_value(text: &str) -> String {
    if text.len() <= MAX_INDEXED_VALUE_BYTES {
        text.to_string()
    } else {
        format!(
            "\u{1}xxh3-128:{:032x}",
            xxhash_rust::xxh3::xxh3_128(text.as_bytes())
        )
    }
}

/// Keyword fields skip (but keep in `_source`) values over 8191 chars, so an
/// absurd span name cannot exceed Lucene's 32 KiB term limit and get the
/// whole span refused.
fn keyword() -> Value {
    json!({ "type": "keyword", "ignore_above": 8191 })
}

/// Properties of the allow-listed tag fields.
fn tag_properties(attribute_keys: &[String]) -> Value {
    let props: Map<String, Value> = attribute_keys
        .iter()
        .filter(|k| indexable_key(k))
        .map(|k| (tag_field_name(k), keyword()))
        .collect();
    json!({ "type": "object", "dynamic": false, "properties": props })
}

/// The mappings every span index has.
pub fn mappings(attribute_keys: &[String]) -> Value {
    json!({
        // Unknown fields are kept in _source but never mapped.
        "dynamic": false,
        "properties": {
            "trace_id": keyword(),
            "span_id": keyword(),
            "parent_span_id": keyword(),
            "service": keyword(),
            "operation": keyword(),
            "kind": keyword(),
            "status": keyword(),
            "start_time": { "type": "date_nanos", "format": "strict_date_optional_time_nanos" },
            "duration_ns": { "type": "long" },
            "event_names": keyword(),
            TAGS: tag_properties(attribute_keys),
            ATTRS: { "type": "flattened" },
            "span": { "type": "object", "enabled": false },
        }
    })
}

/// The composable index template for `<prefix>-spans-*`.
pub fn index_template(cfg: &ElasticsearchConfig, attribute_keys: &[String]) -> Value {
    json!({
        "index_patterns": [index_pattern(&cfg.index_prefix)],
        // Above the stack's built-in templates (priority 100-ish), so a
        // prefix such as "logs" cannot be captured by them.
        "priority": 500,
        "template": {
            "settings": {
                "number_of_shards": cfg.number_of_shards,
                "number_of_replicas": cfg.number_of_replicas,
                // Span documents are written once and read rarely: trade
                // merge CPU for disk, the tier's largest cost.
                "codec": "best_compression",
            },
            "mappings": mappings(attribute_keys),
        },
        "_meta": { "managed_by": "strand", "schema_version": 1 },
    })
}

pub fn template_name(prefix: &str) -> String {
    format!("{prefix}-spans")
}

/// Installs (or updates) the index template, and adds allow-listed tag
/// fields that existing indices lack, so a widened allow-list takes effect
/// today and not only from tomorrow's index on.
pub async fn install(
    client: &Elasticsearch,
    cfg: &ElasticsearchConfig,
    attribute_keys: &[String],
) -> Result<()> {
    let name = template_name(&cfg.index_prefix);
    let resp = client
        .indices()
        .put_index_template(IndicesPutIndexTemplateParts::Name(&name))
        .body(index_template(cfg, attribute_keys))
        .send()
        .await
        .map_err(|e| client_error("put index template", e))?;
    check_status("put index template", resp).await?;

    let pattern = index_pattern(&cfg.index_prefix);
    let resp = client
        .indices()
        .put_mapping(IndicesPutMappingParts::Index(&[&pattern]))
        .allow_no_indices(true)
        .ignore_unavailable(true)
        .body(json!({ "properties": { TAGS: tag_properties(attribute_keys) } }))
        .send()
        .await
        .map_err(|e| client_error("put mapping", e))?;
    check_status("put mapping", resp).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tag_field_names_are_one_to_one_and_dot_free() {
        assert_eq!(tag_field_name("http.method"), "http%2Emethod");
        assert_eq!(tag_field("a%2Eb"), "tags.a%252Eb");
        assert_ne!(tag_field_name("a.b"), tag_field_name("a%2Eb"));
        assert!(!tag_field_name("a.b.c*").contains(['.', '*']));
    }

    #[test]
    fn long_values_are_hashed_consistently() {
        assert_eq!(index_value("short"), "short");
        let long = "x".repeat(MAX_INDEXED_VALUE_BYTES + 1);
        let h = index_value(&long);
        assert_eq!(h, index_value(&long));
        assert!(h.len() < 64);
        assert_ne!(h, index_value(&"y".repeat(MAX_INDEXED_VALUE_BYTES + 1)));
    }

    #[test]
    fn mapping_has_one_field_per_allow_listed_key_and_no_more() {
        let keys = vec![
            "http.method".to_string(),
            "".to_string(),
            "user_id".to_string(),
        ];
        let m = mappings(&keys);
        let tags = m["properties"][TAGS]["properties"].as_object().unwrap();
        assert_eq!(tags.len(), 2);
        assert_eq!(m["properties"][ATTRS]["type"], "flattened");
        assert_eq!(m["dynamic"], false);
    }

    #[test]
    fn unindexable_keys() {
        assert!(indexable_key("http.method"));
        assert!(!indexable_key(""));
        assert!(!indexable_key("..."));
        assert!(!indexable_key(" "));
        assert!(!indexable_key("a..b"));
        assert!(!indexable_key(".a"));
    }
}
