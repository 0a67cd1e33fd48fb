//! What autocomplete and the dependency graph read from every tier: a
//! [`TagCatalog`] (attribute keys → distinct typed values per scope,
//! services with their span names, root services and names) and a
//! [`Graph`] of service-to-service calls. Both are bounded; a bound that
//! cut something off is recorded (`incomplete`, `truncated`) rather than
//! hidden. Per service, a segment also keeps that service's own keys and
//! values ([`ByService`], bounded by the `SERVICE_*` consts and an overall
//! per-segment budget), which service-scoped autocomplete answers from.

use std::collections::{BTreeMap, HashMap};

use super::{AttrValue, KeyValue, Span, SpanId, TraceId};

mod by_service;
pub use by_service::{ByService, ServiceAttrs, ServiceBounds, ServiceMap};

/// Per segment: most distinct values kept per attribute key.
pub const SEGMENT_VALUES_PER_KEY: usize = 1000;
/// Longest value (bytes) kept; a longer one marks its key incomplete.
pub const MAX_VALUE_BYTES: usize = 256;
/// Per segment: most attribute keys kept over both scopes.
pub const SEGMENT_KEYS: usize = 5000;
/// In a merged answer: most values per key (services and span names come
/// from the complete postings, so this is what bounds them).
pub const ANSWER_VALUES_PER_KEY: usize = 100_000;
/// In a merged answer: most attribute keys per scope.
pub const ANSWER_KEYS: usize = 20_000;
/// Per segment, per service: most attribute keys kept over both scopes.
pub const SERVICE_KEYS: usize = 200;
/// Per segment, per service: most distinct values kept per key.
pub const SERVICE_VALUES_PER_KEY: usize = 200;
/// Per segment: most keys plus values kept over all services' own
/// dictionaries, so a segment of thousands of services stays bounded
/// (2,000 services at the per-service bounds would be 80 million).
pub const SEGMENT_SERVICE_ENTRIES: usize = 200_000;
/// Most edges a graph holds.
pub const MAX_EDGES: usize = 100_000;

/// TraceQL value types, as bits of a mask: a key may hold `200` as an int
/// in one span and as a string in another.
pub const TY_STRING: u8 = 1;
pub const TY_INT: u8 = 2;
pub const TY_FLOAT: u8 = 4;
pub const TY_BOOL: u8 = 8;

/// The TraceQL type names of a mask's bits.
pub fn type_names(mask: u8) -> impl Iterator<Item = &'static str> {
    [
        (TY_STRING, "string"),
        (TY_INT, "int"),
        (TY_FLOAT, "float"),
        (TY_BOOL, "bool"),
    ]
    .into_iter()
    .filter(move |(b, _)| mask & b != 0)
    .map(|(_, n)| n)
}

/// The type bit and text of a value autocomplete can offer (arrays, maps,
/// bytes and empty values have no TraceQL literal).
pub fn typed_text(v: &AttrValue) -> Option<(u8, String)> {
    Some(match v {
        AttrValue::Str(s) => (TY_STRING, s.clone()),
        AttrValue::Int(i) => (TY_INT, i.to_string()),
        AttrValue::Double(d) => (TY_FLOAT, d.to_string()),
        AttrValue::Bool(b) => (TY_BOOL, b.to_string()),
        _ => return None,
    })
}

/// Distinct values of one key: text → type mask.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KeyValues {
    pub values: BTreeMap<String, u8>,
    /// Some values were not kept (a bound, or a value too long).
    pub incomplete: bool,
}

impl KeyValues {
    /// Adds one value, keeping at most `cap` distinct ones; true when the
    /// value is held afterwards.
    pub fn add(&mut self, text: &str, ty: u8, cap: usize) -> bool {
        if text.len() > MAX_VALUE_BYTES {
            self.incomplete = true;
            return false;
        }
        let room = self.values.len() < cap;
        // A full key already says it is incomplete; skipping the lookup
        // keeps high-cardinality keys (ids) cheap on the write path.
        if !room && self.incomplete {
            return false;
        }
        match self.values.get_mut(text) {
            Some(m) => *m |= ty,
            None if room => {
                self.values.insert(text.to_string(), ty);
            }
            None => {
                self.incomplete = true;
                return false;
            }
        }
        true
    }

    pub fn merge(&mut self, other: &KeyValues, cap: usize) {
        self.incomplete |= other.incomplete;
        for (v, ty) in &other.values {
            self.add(v, *ty, cap);
        }
    }
}

/// Attribute key → values, for one scope.
pub type Dict = BTreeMap<String, KeyValues>;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TagCatalog {
    pub resource: Dict,
    pub span: Dict,
    /// Service → its span names. `resource.service.name` values are these
    /// keys (complete: they come from the service postings).
    pub services: BTreeMap<String, KeyValues>,
    pub root_services: KeyValues,
    pub root_names: KeyValues,
    /// Some keys were not kept (the key bound).
    pub keys_incomplete: bool,
    /// Each service's own attribute keys and values, and whether every
    /// source of the window kept them.
    pub by_service: ByService,
}

/// `i.to_string()` into a stack buffer (this runs for every integer
/// attribute of every span written, here and in the postings).
pub(crate) fn int_text(i: i64, buf: &mut [u8; 24]) -> &str {
    let mut n = i.unsigned_abs();
    let mut pos = buf.len();
    loop {
        pos -= 1;
        buf[pos] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    if i < 0 {
        pos -= 1;
        buf[pos] = b'-';
    }
    std::str::from_utf8(&buf[pos..]).unwrap_or_default()
}

/// Adds `v` under `key`; false when the key is new and no key is left.
/// Strings, integers and booleans are added without allocating unless new.
fn add_key(dict: &mut Dict, key: &str, v: &AttrValue, keys_left: &mut usize, cap: usize) -> bool {
    add_key_held(dict, key, v, keys_left, cap).is_some()
}

/// As [`add_key`]: `None` when the key was not kept, else whether the
/// value is held afterwards.
fn add_key_held(
    dict: &mut Dict,
    key: &str,
    v: &AttrValue,
    keys_left: &mut usize,
    cap: usize,
) -> Option<bool> {
    let entry = match dict.get_mut(key) {
        Some(e) => e,
        None if *keys_left > 0 => {
            *keys_left -= 1;
            dict.entry(key.to_string()).or_default()
        }
        None => return None,
    };
    Some(add_value(entry, v, cap))
}

/// Adds one attribute value's text under its type, keeping at most `cap`
/// distinct values; true when it is held afterwards (a value with no
/// TraceQL literal is never held, and never needs to be).
fn add_value(entry: &mut KeyValues, v: &AttrValue, cap: usize) -> bool {
    match v {
        AttrValue::Str(s) => entry.add(s, TY_STRING, cap),
        AttrValue::Int(i) => entry.add(int_text(*i, &mut [0u8; 24]), TY_INT, cap),
        AttrValue::Bool(b) => entry.add(if *b { "true" } else { "false" }, TY_BOOL, cap),
        other => match typed_text(other) {
            Some((ty, text)) => entry.add(&text, ty, cap),
            None => true,
        },
    }
}

/// Union of `from` into `into`, at most `max_keys` keys and `cap` values
/// per key; true when a key was cut.
fn merge_dict(into: &mut Dict, from: &Dict, max_keys: usize, cap: usize) -> bool {
    let mut cut = false;
    for (k, v) in from {
        let room = into.len() < max_keys;
        match into.get_mut(k) {
            Some(e) => e.merge(v, cap),
            None if room => {
                let mut e = KeyValues::default();
                e.merge(v, cap);
                into.insert(k.clone(), e);
            }
            None => cut = true,
        }
    }
    cut
}

impl TagCatalog {
    pub fn is_empty(&self) -> bool {
        *self == TagCatalog::default()
    }

    /// Whether every segment and tier of the window kept per-service
    /// dictionaries (false for Elasticsearch, format-1 segments, samples):
    /// only then can a service-scoped answer come from [`Self::by_service`].
    pub fn per_service_complete(&self) -> bool {
        !self.by_service.missing
    }

    /// Every span name, over all services.
    pub fn names(&self) -> KeyValues {
        let mut out = KeyValues::default();
        for n in self.services.values() {
            out.merge(n, ANSWER_VALUES_PER_KEY);
        }
        out
    }

    /// Adds a span's attributes (both scopes) and, for a root span, its
    /// service and name, within the given bounds. Services and span names
    /// are added with [`Self::add_operation`]. Per-service dictionaries
    /// are not: see [`ByService::add_span`].
    pub fn add_span_attrs(&mut self, s: &Span, max_keys: usize, values_per_key: usize) {
        self.add_attrs(s, true, max_keys, values_per_key);
    }

    /// As [`TagCatalog::add_span_attrs`]; `with_resource` false skips the
    /// resource attributes (the caller saw this resource already).
    pub fn add_attrs(
        &mut self,
        s: &Span,
        with_resource: bool,
        max_keys: usize,
        values_per_key: usize,
    ) {
        let mut left = max_keys.saturating_sub(self.resource.len() + self.span.len());
        let mut cut = false;
        let resource: &[crate::model::KeyValue] = if with_resource {
            &s.resource.attributes
        } else {
            &[]
        };
        for kv in resource {
            // Services come from the postings, complete.
            if kv.key != "service.name" {
                cut |= !add_key(
                    &mut self.resource,
                    &kv.key,
                    &kv.value,
                    &mut left,
                    values_per_key,
                );
            }
        }
        for kv in &s.attributes {
            cut |= !add_key(
                &mut self.span,
                &kv.key,
                &kv.value,
                &mut left,
                values_per_key,
            );
        }
        self.keys_incomplete |= cut;
        self.add_root(s, values_per_key);
    }

    /// Adds one attribute to the resource (`resource`) or span scope,
    /// within the bounds; true when its value is held afterwards.
    pub fn add_one(&mut self, resource: bool, kv: &KeyValue, max_keys: usize, cap: usize) -> bool {
        let mut left = max_keys.saturating_sub(self.resource.len() + self.span.len());
        let dict = if resource {
            &mut self.resource
        } else {
            &mut self.span
        };
        match add_key_held(dict, &kv.key, &kv.value, &mut left, cap) {
            Some(held) => held,
            None => {
                self.keys_incomplete = true;
                false
            }
        }
    }

    /// A root span's service and name.
    pub fn add_root(&mut self, s: &Span, cap: usize) {
        if s.parent_span_id.is_none() {
            self.root_services.add(s.service_name(), TY_STRING, cap);
            self.root_names.add(&s.name, TY_STRING, cap);
        }
    }

    pub fn add_operation(&mut self, service: &str, name: &str) {
        if !self.services.contains_key(service) && self.services.len() >= ANSWER_VALUES_PER_KEY {
            self.keys_incomplete = true;
            return;
        }
        self.services.entry(service.to_string()).or_default().add(
            name,
            TY_STRING,
            ANSWER_VALUES_PER_KEY,
        );
    }

    /// Adds a whole span, per-service dictionaries included (reference
    /// tiers and trace samples), within the answer bounds.
    pub fn add_span(&mut self, s: &Span) {
        self.add_span_attrs(s, ANSWER_KEYS, ANSWER_VALUES_PER_KEY);
        self.add_operation(s.service_name(), &s.name);
        let mut budget = usize::MAX;
        self.by_service
            .add_span(s, true, &ServiceBounds::ANSWER, &mut budget);
    }

    /// Union with `other`, within the answer bounds (per-service parts
    /// are shared).
    pub fn merge(&mut self, other: &TagCatalog) {
        self.merge_attrs(other);
        self.by_service.merge(&other.by_service);
    }

    /// As [`Self::merge`], copying the per-service parts (for a catalog
    /// that is still growing).
    pub fn merge_copy(&mut self, other: &TagCatalog) {
        self.merge_attrs(other);
        self.by_service.merge_copy(&other.by_service);
    }

    fn merge_attrs(&mut self, other: &TagCatalog) {
        let (keys, cap) = (ANSWER_KEYS, ANSWER_VALUES_PER_KEY);
        let mut cut = other.keys_incomplete;
        cut |= merge_dict(&mut self.resource, &other.resource, keys, cap);
        cut |= merge_dict(&mut self.span, &other.span, keys, cap);
        for (svc, names) in &other.services {
            let room = self.services.len() < ANSWER_VALUES_PER_KEY;
            match self.services.get_mut(svc) {
                Some(e) => e.merge(names, ANSWER_VALUES_PER_KEY),
                None if room => {
                    self.services.insert(svc.clone(), names.clone());
                }
                None => cut = true,
            }
        }
        self.root_services
            .merge(&other.root_services, ANSWER_VALUES_PER_KEY);
        self.root_names
            .merge(&other.root_names, ANSWER_VALUES_PER_KEY);
        self.keys_incomplete |= cut;
    }
}

/// Calls from a parent span's service to a child span's service.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EdgeCounts {
    pub calls: u64,
    /// Calls whose child span has error status.
    pub errors: u64,
}

/// The dependency graph of a window, edges keyed by (parent, child)
/// service, at most [`MAX_EDGES`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Graph {
    pub edges: BTreeMap<(String, String), EdgeCounts>,
    /// Edges were dropped at the bound.
    pub truncated: bool,
}

impl Graph {
    pub fn add(&mut self, parent: &str, child: &str, c: EdgeCounts) {
        let key = (parent.to_string(), child.to_string());
        let room = self.edges.len() < MAX_EDGES;
        match self.edges.get_mut(&key) {
            Some(e) => {
                e.calls += c.calls;
                e.errors += c.errors;
            }
            None if room => {
                self.edges.insert(key, c);
            }
            None => self.truncated = true,
        }
    }

    /// Adds `other`'s counts: for tiers holding disjoint traffic (writer
    /// peers, whose Kafka partitions split traces between them).
    pub fn sum(&mut self, other: &Graph) {
        self.truncated |= other.truncated;
        for ((p, c), e) in &other.edges {
            self.add(p, c, *e);
        }
    }

    /// Keeps the larger count of each edge: for tiers holding copies of
    /// the same traffic (hot store and Elasticsearch), where the more
    /// complete tier's count is the answer.
    pub fn max(&mut self, other: &Graph) {
        self.truncated |= other.truncated;
        for ((p, c), e) in &other.edges {
            match self.edges.get_mut(&(p.clone(), c.clone())) {
                Some(x) if x.calls >= e.calls => {}
                Some(x) => *x = *e,
                None => self.add(p, c, *e),
            }
        }
    }

    /// Adds one whole trace's cross-service calls whose child span starts
    /// in `[from, to]` (the reference computation, and the sampling path).
    pub fn add_trace(&mut self, spans: &[Span], from: u64, to: u64) {
        let by_id: HashMap<SpanId, &Span> = spans.iter().map(|s| (s.span_id, s)).collect();
        for child in spans {
            if child.start_ns < from || child.start_ns > to {
                continue;
            }
            let Some(parent) = child.parent_span_id.and_then(|p| by_id.get(&p)) else {
                continue;
            };
            let (ps, cs) = (parent.service_name(), child.service_name());
            if ps != cs {
                let errors = u64::from(child.is_error());
                self.add(ps, cs, EdgeCounts { calls: 1, errors });
            }
        }
    }
}

/// Groups spans by trace (for [`Graph::add_trace`] over a flat list).
pub fn by_trace(spans: &[Span]) -> HashMap<TraceId, Vec<Span>> {
    let mut out: HashMap<TraceId, Vec<Span>> = HashMap::new();
    for s in spans {
        out.entry(s.trace_id).or_default().push(s.clone());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{KeyValue, Resource, StatusCode};
    use std::sync::Arc;

    fn span(t: u8, s: u8, parent: Option<u8>, svc: &str, start: u64) -> Span {
        Span {
            trace_id: TraceId([t; 16]),
            span_id: SpanId([s; 8]),
            parent_span_id: parent.map(|p| SpanId([p; 8])),
            name: format!("op{s}"),
            start_ns: start,
            end_ns: start + 1,
            resource: Arc::new(Resource {
                attributes: vec![KeyValue::new("service.name", AttrValue::Str(svc.into()))],
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn int_text_matches_to_string() {
        for i in [0i64, 7, -7, 500, i64::MAX, i64::MIN] {
            assert_eq!(int_text(i, &mut [0u8; 24]), i.to_string());
        }
    }

    #[test]
    fn values_keep_types_and_bounds() {
        let mut k = KeyValues::default();
        k.add("200", TY_INT, 2);
        k.add("200", TY_STRING, 2);
        k.add("x", TY_STRING, 2);
        assert!(!k.incomplete);
        k.add("y", TY_STRING, 2);
        assert!(k.incomplete, "the third distinct value is over the bound");
        assert_eq!(k.values["200"], TY_INT | TY_STRING);
        assert_eq!(
            type_names(k.values["200"]).collect::<Vec<_>>(),
            ["string", "int"]
        );
        let mut long = KeyValues::default();
        long.add(&"v".repeat(MAX_VALUE_BYTES + 1), TY_STRING, 10);
        assert!(long.values.is_empty() && long.incomplete);
    }

    #[test]
    fn catalog_skips_service_name_and_bounds_keys() {
        let mut s = span(1, 1, None, "front", 0);
        s.attributes = (0..5)
            .map(|i| KeyValue::new(format!("k{i}"), AttrValue::Int(i)))
            .collect();
        let mut c = TagCatalog::default();
        c.add_span_attrs(&s, 3, 10);
        assert!(!c.resource.contains_key("service.name"));
        assert_eq!(c.span.len(), 3);
        assert!(c.keys_incomplete);
        assert_eq!(c.root_services.values.keys().collect::<Vec<_>>(), ["front"]);
    }

    #[test]
    fn graphs_sum_and_max() {
        let mut failed = span(1, 3, Some(2), "db", 5);
        failed.status.code = StatusCode::Error;
        let t = vec![
            span(1, 1, None, "a", 0),
            span(1, 2, Some(1), "b", 1),
            failed,
        ];
        let mut g = Graph::default();
        g.add_trace(&t, 0, 10);
        let mut once = g.clone();
        once.max(&g);
        assert_eq!(once, g, "max of copies is the copy");
        g.sum(&once);
        assert_eq!(
            g.edges[&("b".into(), "db".into())],
            EdgeCounts {
                calls: 2,
                errors: 2
            }
        );
        let mut w = Graph::default();
        w.add_trace(&t, 2, 10);
        assert_eq!(w.edges.len(), 1, "only children starting in the window");
    }
}
