//! The index sections added in index format 2: the segment's tag catalog
//! (attribute keys → distinct typed values per scope, root services and
//! names, bounded by `model::catalog`'s `SEGMENT_*` consts; then each
//! service's own keys and values, bounded by the `SERVICE_*` consts and
//! `SEGMENT_SERVICE_ENTRIES`) and its dependency edges bucketed by the
//! minute of the child span's start. Services and span names are not
//! repeated here: the service postings and the (service, operation) set
//! already hold them, complete.

use std::collections::{BTreeMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};

use xxhash_rust::xxh3::{xxh3_64, xxh3_64_with_seed};

use super::codec::{Reader, Writer};
use crate::error::{Error, Result};
use crate::model::catalog::{
    ByService, Dict, EdgeCounts, Graph, KeyValues, ServiceAttrs, ServiceBounds, TagCatalog,
    SEGMENT_KEYS, SEGMENT_SERVICE_ENTRIES, SEGMENT_VALUES_PER_KEY,
};
use crate::model::{AttrValue, KeyValue, Span};

const NS_PER_MINUTE: u64 = 60_000_000_000;

/// The minute (since the epoch) a time falls in.
pub fn minute_of(ns: u64) -> u32 {
    (ns / NS_PER_MINUTE).min(u64::from(u32::MAX)) as u32
}

/// Edge counts keyed by borrowed (parent, child) service names.
pub type EdgeSum<'a> = std::collections::HashMap<(&'a str, &'a str), EdgeCounts>;

/// Moves a sum into a graph (one key allocation per edge).
pub fn add_sum(g: &mut Graph, sum: EdgeSum<'_>) {
    for ((p, c), e) in sum {
        g.add(p, c, e);
    }
}

/// Edge counts: minute → parent service → child service → counts. Nested
/// so that counting an existing edge allocates nothing.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EdgeBuckets(pub BTreeMap<u32, BTreeMap<String, BTreeMap<String, EdgeCounts>>>);

impl EdgeBuckets {
    pub fn add(&mut self, child_start_ns: u64, parent: &str, child: &str, error: bool) {
        let by_parent = self.0.entry(minute_of(child_start_ns)).or_default();
        let by_child = match by_parent.get_mut(parent) {
            Some(m) => m,
            None => by_parent.entry(parent.to_string()).or_default(),
        };
        let e = match by_child.get_mut(child) {
            Some(e) => e,
            None => by_child.entry(child.to_string()).or_default(),
        };
        e.calls += 1;
        e.errors += u64::from(error);
    }

    /// Adds the buckets whose minute overlaps `[from_ns, to_ns]` (so up to
    /// a minute beyond each end of the window is included) to `sum`, which
    /// borrows the service names (no allocation per bucket).
    pub fn sum_window<'a>(&'a self, from_ns: u64, to_ns: u64, sum: &mut EdgeSum<'a>) {
        if from_ns > to_ns {
            return;
        }
        for by_parent in self
            .0
            .range(minute_of(from_ns)..=minute_of(to_ns))
            .map(|e| e.1)
        {
            for (p, by_child) in by_parent {
                for (c, e) in by_child {
                    let x = sum.entry((p.as_str(), c.as_str())).or_default();
                    x.calls += e.calls;
                    x.errors += e.errors;
                }
            }
        }
    }

    /// [`Self::sum_window`] straight into a graph.
    pub fn add_window_to(&self, from_ns: u64, to_ns: u64, g: &mut Graph) {
        let mut sum = EdgeSum::default();
        self.sum_window(from_ns, to_ns, &mut sum);
        add_sum(g, sum);
    }

    /// First and last minute with an edge.
    pub fn minutes(&self) -> Option<(u32, u32)> {
        Some((*self.0.keys().next()?, *self.0.keys().next_back()?))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn encode(&self, w: &mut Writer) {
        w.u32(self.0.len() as u32);
        for (minute, by_parent) in &self.0 {
            w.u32(*minute);
            w.u32(by_parent.len() as u32);
            for (p, by_child) in by_parent {
                w.str(p);
                w.u32(by_child.len() as u32);
                for (c, e) in by_child {
                    w.str(c);
                    w.u64(e.calls);
                    w.u64(e.errors);
                }
            }
        }
    }

    pub fn decode(r: &mut Reader) -> Result<EdgeBuckets> {
        let mut out = BTreeMap::new();
        for _ in 0..r.count(8)? {
            let minute = r.u32()?;
            let mut by_parent = BTreeMap::new();
            for _ in 0..r.count(8)? {
                let p = r.str()?;
                let mut by_child = BTreeMap::new();
                for _ in 0..r.count(20)? {
                    let c = r.str()?;
                    let (calls, errors) = (r.u64()?, r.u64()?);
                    if errors > calls {
                        return Err(Error::Corrupt("index: edge with errors > calls".into()));
                    }
                    by_child.insert(c, EdgeCounts { calls, errors });
                }
                by_parent.insert(p, by_child);
            }
            out.insert(minute, by_parent);
        }
        Ok(EdgeBuckets(out))
    }
}

/// Adds a span's attributes to a segment catalog, within the segment bounds.
pub fn add_span(cat: &mut TagCatalog, s: &Span) {
    cat.add_span_attrs(s, SEGMENT_KEYS, SEGMENT_VALUES_PER_KEY);
}

/// Resources whose attributes a segment's catalog holds already: the
/// spans of one request share their resource, so most spans skip it.
#[derive(Default)]
pub struct SeenResources(Vec<std::sync::Arc<crate::model::Resource>>);

/// How many recent resources are remembered (a request seldom has more).
const RECENT_RESOURCES: usize = 8;

impl SeenResources {
    /// Whether `r` was seen; remembers it if not.
    pub fn check(&mut self, r: &std::sync::Arc<crate::model::Resource>) -> bool {
        if self.0.iter().any(|x| std::sync::Arc::ptr_eq(x, r)) {
            return true;
        }
        if self.0.len() >= RECENT_RESOURCES {
            self.0.remove(0);
        }
        self.0.push(r.clone());
        false
    }
}

/// What a growing segment catalog remembers between spans: the resources
/// it holds already, the per-service budget left, and which (scope,
/// service, key, value) it holds in both the segment's and the service's
/// dictionaries. Most attributes of most spans are one of those: they cost
/// two short hashes and a probe instead of four ordered-map lookups.
pub struct CatalogWriter {
    seen: SeenResources,
    service_budget: usize,
    held: HashSet<u64, BuildHasherDefault<Prehashed>>,
    /// Scratch, reused from span to span.
    misses: Vec<Miss>,
}

impl Default for CatalogWriter {
    fn default() -> Self {
        CatalogWriter {
            seen: SeenResources::default(),
            service_budget: SEGMENT_SERVICE_ENTRIES,
            held: HashSet::default(),
            misses: Vec::new(),
        }
    }
}

/// The keys of [`CatalogWriter::held`] are xxh3 hashes already.
#[derive(Default)]
pub struct Prehashed(u64);

impl Hasher for Prehashed {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        // Only u64 keys are hashed; fold anything else in anyway.
        self.0 = xxh3_64_with_seed(bytes, self.0);
    }
    fn write_u64(&mut self, v: u64) {
        self.0 = v;
    }
}

/// A hash of one attribute's scope, key, type and value under a
/// service's hash (numbers by their bits: nothing is formatted here).
fn attr_hash(service: u64, resource: bool, kv: &KeyValue) -> u64 {
    let key = xxh3_64_with_seed(kv.key.as_bytes(), service ^ u64::from(resource));
    let buf: [u8; 8];
    let (ty, bytes): (u64, &[u8]) = match &kv.value {
        AttrValue::Str(s) => (1, s.as_bytes()),
        AttrValue::Int(i) => {
            buf = i.to_le_bytes();
            (2, &buf)
        }
        AttrValue::Double(d) => {
            buf = d.to_bits().to_le_bytes();
            (3, &buf)
        }
        AttrValue::Bool(b) => (4, if *b { b"t" } else { b"f" }),
        _ => (5, &[]),
    };
    xxh3_64_with_seed(bytes, key.rotate_left(7) ^ ty)
}

/// Adds a span to the segment catalog and to its service's dictionaries,
/// skipping the resource when `w` says it is in already (a resource names
/// one service, so it is in that service's dictionaries too) and every
/// attribute both hold already.
pub fn add_span_seen(cat: &mut TagCatalog, s: &Span, w: &mut CatalogWriter) {
    let fresh = !w.seen.check(&s.resource);
    let resource: &[KeyValue] = if fresh { &s.resource.attributes } else { &[] };
    let service = s.service_name();
    let svc_hash = xxh3_64(service.as_bytes());
    let attr = |is_resource: bool, i: usize| match is_resource {
        true => &resource[i],
        false => &s.attributes[i],
    };
    let scopes = [(true, resource.len()), (false, s.attributes.len())];
    w.misses.clear();
    for (is_resource, i) in scopes
        .iter()
        .flat_map(|&(r, n)| (0..n).map(move |i| (r, i)))
    {
        let kv = attr(is_resource, i);
        if is_resource && kv.key == "service.name" {
            continue;
        }
        let h = attr_hash(svc_hash, is_resource, kv);
        if !w.held.contains(&h) {
            w.misses.push(Miss {
                hash: h,
                is_resource,
                index: i,
                in_segment: false,
            });
        }
    }
    if !w.misses.is_empty() {
        for m in w.misses.iter_mut() {
            let kv = attr(m.is_resource, m.index);
            m.in_segment = cat.add_one(m.is_resource, kv, SEGMENT_KEYS, SEGMENT_VALUES_PER_KEY);
        }
        if let Some(a) = cat.by_service.service_mut(service) {
            for m in &w.misses {
                let kv = attr(m.is_resource, m.index);
                let bounds = &ServiceBounds::SEGMENT;
                let in_service = a.add_one(m.is_resource, kv, bounds, &mut w.service_budget);
                if in_service && m.in_segment {
                    w.held.insert(m.hash);
                }
            }
        }
    }
    cat.add_root(s, SEGMENT_VALUES_PER_KEY);
}

/// An attribute of the span being added that [`CatalogWriter::held`]
/// did not know.
struct Miss {
    hash: u64,
    is_resource: bool,
    index: usize,
    in_segment: bool,
}

fn encode_values(w: &mut Writer, v: &KeyValues) {
    w.u8(u8::from(v.incomplete));
    w.u32(v.values.len() as u32);
    for (text, ty) in &v.values {
        w.str(text);
        w.u8(*ty);
    }
}

fn decode_values(r: &mut Reader) -> Result<KeyValues> {
    let incomplete = r.u8()? != 0;
    let mut values = BTreeMap::new();
    for _ in 0..r.count(5)? {
        let text = r.str()?;
        values.insert(text, r.u8()?);
    }
    Ok(KeyValues { values, incomplete })
}

fn encode_dict(w: &mut Writer, d: &Dict) {
    w.u32(d.len() as u32);
    for (k, v) in d {
        w.str(k);
        encode_values(w, v);
    }
}

fn decode_dict(r: &mut Reader) -> Result<Dict> {
    let mut d = Dict::new();
    for _ in 0..r.count(9)? {
        let k = r.str()?;
        d.insert(k, decode_values(r)?);
    }
    Ok(d)
}

/// The per-service part: a missing flag, then per service its name, a
/// keys-incomplete flag, its resource dict and its span dict.
fn encode_by_service(w: &mut Writer, b: &ByService) {
    let services = b.union();
    w.u8(u8::from(b.missing));
    w.u32(services.len() as u32);
    for (svc, a) in &services {
        w.str(svc);
        w.u8(u8::from(a.keys_incomplete));
        encode_dict(w, &a.resource);
        encode_dict(w, &a.span);
    }
}

fn decode_by_service(r: &mut Reader) -> Result<ByService> {
    let missing = r.u8()? != 0;
    let mut services = BTreeMap::new();
    // Name, flag and two empty dicts: at least 13 bytes each.
    for _ in 0..r.count(13)? {
        let svc = r.str()?;
        let a = ServiceAttrs {
            keys_incomplete: r.u8()? != 0,
            resource: decode_dict(r)?,
            span: decode_dict(r)?,
        };
        services.insert(svc, a);
    }
    Ok(ByService::from_map(services, missing))
}

/// Encodes the attribute part of a segment catalog (its `services` are
/// rebuilt from the postings when read): keys-incomplete flag, resource
/// and span dicts, root services and names, then the per-service part.
/// `per_service` false writes format 2 (which had no per-service part).
pub fn encode_catalog(w: &mut Writer, c: &TagCatalog, per_service: bool) {
    w.u8(u8::from(c.keys_incomplete));
    encode_dict(w, &c.resource);
    encode_dict(w, &c.span);
    encode_values(w, &c.root_services);
    encode_values(w, &c.root_names);
    if per_service {
        encode_by_service(w, &c.by_service);
    }
}

/// `per_service` false reads format 2: its per-service part is marked
/// missing, so scoped autocomplete over it takes the sample path.
pub fn decode_catalog(r: &mut Reader, per_service: bool) -> Result<TagCatalog> {
    Ok(TagCatalog {
        keys_incomplete: r.u8()? != 0,
        resource: decode_dict(r)?,
        span: decode_dict(r)?,
        root_services: decode_values(r)?,
        root_names: decode_values(r)?,
        services: BTreeMap::new(),
        by_service: if per_service {
            decode_by_service(r)?
        } else {
            ByService::from_map(Default::default(), true)
        },
    })
}

/// The catalog of a format-1 index, which kept none: per-service data is
/// marked missing, so scoped autocomplete over it takes the sample path.
pub fn format_1_catalog() -> TagCatalog {
    TagCatalog {
        by_service: ByService::from_map(Default::default(), true),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{AttrValue, KeyValue, Resource};
    use std::sync::Arc;

    fn span(svc: &str, route: &str) -> Span {
        Span {
            name: "op".into(),
            resource: Arc::new(Resource {
                attributes: vec![
                    KeyValue::new("service.name", AttrValue::Str(svc.into())),
                    KeyValue::new("zone", AttrValue::Int(3)),
                ],
                ..Default::default()
            }),
            attributes: vec![KeyValue::new("http.route", AttrValue::Str(route.into()))],
            ..Default::default()
        }
    }

    proptest::proptest! {
        /// The held-attribute shortcut changes the cost, never the
        /// catalog: it equals adding every attribute of every span.
        #[test]
        fn skipping_held_attributes_builds_the_same_catalog(
            spans in proptest::collection::vec(
                (0usize..3, 0usize..4, proptest::collection::vec((0usize..5, 0i64..6), 0..4)),
                1..60,
            )
        ) {
            let resources: Vec<Arc<Resource>> = (0..4)
                .map(|r| Arc::new(Resource {
                    attributes: vec![
                        KeyValue::new("service.name", AttrValue::Str(format!("s{}", r % 3))),
                        KeyValue::new("host", AttrValue::Int(r as i64)),
                    ],
                    ..Default::default()
                }))
                .collect();
            let (mut fast, mut slow) = (TagCatalog::default(), TagCatalog::default());
            let mut w = CatalogWriter::default();
            let mut seen = SeenResources::default();
            let mut budget = SEGMENT_SERVICE_ENTRIES;
            for (root, res, attrs) in spans {
                let s = Span {
                    name: "op".into(),
                    parent_span_id: (root != 0).then_some(crate::model::SpanId([1; 8])),
                    resource: resources[res].clone(),
                    attributes: attrs
                        .iter()
                        .map(|&(k, v)| match k {
                            0 => KeyValue::new("n", AttrValue::Int(v)),
                            1 => KeyValue::new("f", AttrValue::Double(v as f64 / 2.0)),
                            2 => KeyValue::new("b", AttrValue::Bool(v % 2 == 0)),
                            3 => KeyValue::new("n", AttrValue::Str(v.to_string())),
                            _ => KeyValue::new("a", AttrValue::Array(vec![AttrValue::Int(v)])),
                        })
                        .collect(),
                    ..Default::default()
                };
                add_span_seen(&mut fast, &s, &mut w);
                let fresh = !seen.check(&s.resource);
                slow.add_attrs(&s, fresh, SEGMENT_KEYS, SEGMENT_VALUES_PER_KEY);
                slow.by_service.add_span(&s, fresh, &ServiceBounds::SEGMENT, &mut budget);
            }
            proptest::prop_assert_eq!(&fast, &slow);
            proptest::prop_assert_eq!(fast.by_service.union(), slow.by_service.union());
        }
    }

    #[test]
    fn per_service_catalog_round_trips_and_rejects_truncation() {
        let mut cat = TagCatalog::default();
        let mut w = CatalogWriter::default();
        for (svc, route) in [("a", "/a"), ("b", "/b"), ("a", "/a2")] {
            add_span_seen(&mut cat, &span(svc, route), &mut w);
        }
        cat.by_service
            .own_mut()
            .get_mut("b")
            .unwrap()
            .keys_incomplete = true;
        let all = cat.by_service.union();
        let a = &all["a"];
        assert_eq!(a.span["http.route"].values.len(), 2);
        assert_eq!(a.resource["zone"].values.keys().collect::<Vec<_>>(), ["3"]);
        for missing in [false, true] {
            cat.by_service.missing = missing;
            let mut w = Writer::default();
            encode_catalog(&mut w, &cat, true);
            let bytes = w.into_inner();
            let mut r = Reader::new(&bytes);
            assert_eq!(decode_catalog(&mut r, true).unwrap(), cat);
            r.finish().unwrap();
            for cut in 0..bytes.len() {
                let mut r = Reader::new(&bytes[..cut]);
                assert!(decode_catalog(&mut r, true).is_err() || r.finish().is_err());
            }
        }
    }

    #[test]
    fn the_segment_budget_bounds_all_services_together() {
        let mut cat = TagCatalog::default();
        let mut w = CatalogWriter::default();
        let mut n = 0;
        while w.service_budget > 0 {
            add_span_seen(&mut cat, &span(&format!("s{n}"), &format!("/{n}")), &mut w);
            n += 1;
        }
        assert_eq!(cat.by_service.entries(), SEGMENT_SERVICE_ENTRIES);
        add_span_seen(&mut cat, &span("late", "/late"), &mut w);
        assert_eq!(cat.by_service.entries(), SEGMENT_SERVICE_ENTRIES);
        assert!(
            cat.by_service.union()["late"].keys_incomplete,
            "cut and said so"
        );
        assert!(
            cat.per_service_complete(),
            "cut values are marked, not missing"
        );
    }

    #[test]
    fn edges_round_trip_and_select_by_minute() {
        let mut b = EdgeBuckets::default();
        let m = NS_PER_MINUTE;
        b.add(10 * m + 5, "a", "b", false);
        b.add(10 * m + 9, "a", "b", true);
        b.add(12 * m, "a", "c", false);
        let mut w = Writer::default();
        b.encode(&mut w);
        let bytes = w.into_inner();
        let mut r = Reader::new(&bytes);
        let back = EdgeBuckets::decode(&mut r).unwrap();
        r.finish().unwrap();
        assert_eq!(back, b);
        let mut g = Graph::default();
        back.add_window_to(10 * m + 30, 11 * m, &mut g);
        assert_eq!(g.edges.len(), 1);
        assert_eq!(
            g.edges[&("a".into(), "b".into())],
            EdgeCounts {
                calls: 2,
                errors: 1
            }
        );
        let mut g = Graph::default();
        back.add_window_to(0, 20 * m, &mut g);
        assert_eq!(g.edges.len(), 2);
        for cut in 0..bytes.len() {
            assert!(EdgeBuckets::decode(&mut Reader::new(&bytes[..cut])).is_err());
        }
    }
}
