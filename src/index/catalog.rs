//! The index sections added in index format 2: the segment's tag catalog
//! (attribute keys → distinct typed values per scope, root services and
//! names, bounded by `model::catalog`'s `SEGMENT_*` consts; then each
//! service's own keys and values, bounded by the `SERVICE_*` consts and
//! `SEGMENT_SERVICE_ENTRIES`) and its dependency edges bucketed by the
//! minute of the child span's start. Services and span names are not
//! repeated here: the service postings and the (service, operation) set
//! already hold them, complete.

use std::collections::BTreeMap;

use super::codec::{Reader, Writer};
use crate::error::{Error, Result};
use crate::model::catalog::{
    ByService, Dict, EdgeCounts, Graph, KeyValues, ServiceAttrs, ServiceBounds, TagCatalog,
    SEGMENT_KEYS, SEGMENT_SERVICE_ENTRIES, SEGMENT_VALUES_PER_KEY,
};
use crate::model::Span;

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
/// it holds already, and the per-service budget left.
pub struct CatalogWriter {
    seen: SeenResources,
    service_budget: usize,
}

impl Default for CatalogWriter {
    fn default() -> Self {
        CatalogWriter {
            seen: SeenResources::default(),
            service_budget: SEGMENT_SERVICE_ENTRIES,
        }
    }
}

/// [`add_span`] and the span's service's own dictionary, skipping the
/// resource when `w` says it is in already (a resource names one service,
/// so it is in that service's dictionary too).
pub fn add_span_seen(cat: &mut TagCatalog, s: &Span, w: &mut CatalogWriter) {
    let fresh = !w.seen.check(&s.resource);
    cat.add_attrs(s, fresh, SEGMENT_KEYS, SEGMENT_VALUES_PER_KEY);
    cat.by_service
        .add_span(s, fresh, &ServiceBounds::SEGMENT, &mut w.service_budget);
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
pub fn encode_catalog(w: &mut Writer, c: &TagCatalog) {
    w.u8(u8::from(c.keys_incomplete));
    encode_dict(w, &c.resource);
    encode_dict(w, &c.span);
    encode_values(w, &c.root_services);
    encode_values(w, &c.root_names);
    encode_by_service(w, &c.by_service);
}

pub fn decode_catalog(r: &mut Reader) -> Result<TagCatalog> {
    Ok(TagCatalog {
        keys_incomplete: r.u8()? != 0,
        resource: decode_dict(r)?,
        span: decode_dict(r)?,
        root_services: decode_values(r)?,
        root_names: decode_values(r)?,
        services: BTreeMap::new(),
        by_service: decode_by_service(r)?,
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
            encode_catalog(&mut w, &cat);
            let bytes = w.into_inner();
            let mut r = Reader::new(&bytes);
            assert_eq!(decode_catalog(&mut r).unwrap(), cat);
            r.finish().unwrap();
            for cut in 0..bytes.len() {
                let mut r = Reader::new(&bytes[..cut]);
                assert!(decode_catalog(&mut r).is_err() || r.finish().is_err());
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
