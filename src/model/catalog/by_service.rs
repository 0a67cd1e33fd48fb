//! Each service's own attribute keys and values (both scopes), so that an
//! autocomplete scoped to a service lists exactly that service's keys and
//! values rather than the whole window's. Bounded per service
//! ([`SERVICE_KEYS`], [`SERVICE_VALUES_PER_KEY`] in a segment) and over all
//! services of a segment ([`SEGMENT_SERVICE_ENTRIES`]); a bound that cut
//! something marks the service's key or values incomplete.

use std::collections::BTreeMap;
use std::sync::Arc;

#[cfg(doc)]
use super::SEGMENT_SERVICE_ENTRIES;
use super::{
    add_value, merge_dict, Dict, ANSWER_KEYS, ANSWER_VALUES_PER_KEY, SERVICE_KEYS,
    SERVICE_VALUES_PER_KEY,
};
use crate::model::{AttrValue, KeyValue, Span};

/// Per-service bounds: keys over both scopes, distinct values per key.
#[derive(Clone, Copy, Debug)]
pub struct ServiceBounds {
    pub keys: usize,
    pub values_per_key: usize,
}

impl ServiceBounds {
    /// A segment's.
    pub const SEGMENT: ServiceBounds = ServiceBounds {
        keys: SERVICE_KEYS,
        values_per_key: SERVICE_VALUES_PER_KEY,
    };
    /// A merged answer's (and the reference tier's).
    pub const ANSWER: ServiceBounds = ServiceBounds {
        keys: ANSWER_KEYS,
        values_per_key: ANSWER_VALUES_PER_KEY,
    };
}

/// One service's keys and values.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ServiceAttrs {
    /// Resource attributes but `service.name` (the service itself).
    pub resource: Dict,
    pub span: Dict,
    /// Some of this service's keys were not kept (a bound).
    pub keys_incomplete: bool,
}

impl ServiceAttrs {
    /// Union with `other`, within the answer bounds (keys over both
    /// scopes, values per key).
    pub fn merge(&mut self, other: &ServiceAttrs) {
        let (keys, cap) = (ANSWER_KEYS, ANSWER_VALUES_PER_KEY);
        let mut cut = other.keys_incomplete;
        let room = keys.saturating_sub(self.span.len());
        cut |= merge_dict(&mut self.resource, &other.resource, room, cap);
        let room = keys.saturating_sub(self.resource.len());
        cut |= merge_dict(&mut self.span, &other.span, room, cap);
        self.keys_incomplete |= cut;
    }

    /// Keys plus values held (what the segment budget counts).
    pub fn entries(&self) -> usize {
        self.resource
            .values()
            .chain(self.span.values())
            .map(|v| 1 + v.values.len())
            .sum()
    }
}

/// Service → its own keys and values.
pub type ServiceMap = BTreeMap<String, ServiceAttrs>;

/// Each service's own keys and values, as parts (a segment's map, what a
/// tier or peer sent) unioned when read: merging catalogs only shares the
/// parts, so a window's answer copies nothing per request but the
/// services a request scopes to (a merged copy of every service's values
/// over many segments would cost more than the rest of the catalog).
#[derive(Clone, Debug, Default)]
pub struct ByService {
    parts: Vec<Arc<ServiceMap>>,
    /// Some segment or tier that contributed kept no per-service
    /// dictionaries (a format-1 segment, Elasticsearch, a sample, a tier
    /// that was down), or a service was dropped at the service bound:
    /// the parts may lack keys and values of the window.
    pub missing: bool,
}

/// Equal when the unions (and flags) are.
impl PartialEq for ByService {
    fn eq(&self, other: &Self) -> bool {
        self.missing == other.missing && self.union() == other.union()
    }
}

impl Eq for ByService {}

/// Adds `v` under `key`, within the service's key room and the budget:
/// `None` when the key is new and could not be kept, else whether the
/// value is held afterwards.
fn add(
    dict: &mut Dict,
    key: &str,
    v: &AttrValue,
    keys_left: &mut usize,
    budget: &mut usize,
    cap: usize,
) -> Option<bool> {
    let entry = match dict.get_mut(key) {
        Some(e) => e,
        None if *keys_left > 0 && *budget > 0 => {
            *keys_left -= 1;
            *budget -= 1;
            dict.entry(key.to_string()).or_default()
        }
        None => return None,
    };
    let before = entry.values.len();
    let held = add_value(entry, v, cap.min(before.saturating_add(*budget)));
    *budget -= entry.values.len() - before;
    Some(held)
}

impl ServiceAttrs {
    /// Adds one attribute of the resource (`resource`) or the span scope
    /// within `b` and `budget`; true when its value is held afterwards.
    pub fn add_one(
        &mut self,
        resource: bool,
        kv: &KeyValue,
        b: &ServiceBounds,
        budget: &mut usize,
    ) -> bool {
        let mut left = b.keys.saturating_sub(self.resource.len() + self.span.len());
        let dict = if resource {
            &mut self.resource
        } else {
            &mut self.span
        };
        match add(
            dict,
            &kv.key,
            &kv.value,
            &mut left,
            budget,
            b.values_per_key,
        ) {
            Some(held) => held,
            None => {
                self.keys_incomplete = true;
                false
            }
        }
    }
}

impl ByService {
    /// One part holding `map`.
    pub fn from_map(map: ServiceMap, missing: bool) -> ByService {
        let parts = if map.is_empty() {
            Vec::new()
        } else {
            vec![Arc::new(map)]
        };
        ByService { parts, missing }
    }

    /// The part spans are added to (created if there is none); copied
    /// first if another catalog shares it.
    pub fn own_mut(&mut self) -> &mut ServiceMap {
        if self.parts.is_empty() {
            self.parts.push(Arc::default());
        }
        let last = self.parts.len() - 1;
        Arc::make_mut(&mut self.parts[last])
    }

    /// Service `svc`'s dictionaries in the part spans are added to;
    /// `None`, and the catalog marked missing, when no more services fit.
    pub fn service_mut(&mut self, svc: &str) -> Option<&mut ServiceAttrs> {
        let map = self.own_mut();
        if !map.contains_key(svc) {
            if map.len() >= ANSWER_VALUES_PER_KEY {
                self.missing = true;
                return None;
            }
            map.insert(svc.to_string(), ServiceAttrs::default());
        }
        self.own_mut().get_mut(svc)
    }

    /// Adds a span's attributes under its service; `with_resource` false
    /// skips the resource (already added for this service). `budget` is
    /// the keys plus values still allowed over all services, decremented.
    pub fn add_span(
        &mut self,
        s: &Span,
        with_resource: bool,
        b: &ServiceBounds,
        budget: &mut usize,
    ) {
        let resource: &[KeyValue] = if with_resource {
            &s.resource.attributes
        } else {
            &[]
        };
        if resource.is_empty() && s.attributes.is_empty() {
            return;
        }
        let Some(attrs) = self.service_mut(s.service_name()) else {
            return;
        };
        for kv in resource.iter().filter(|kv| kv.key != "service.name") {
            attrs.add_one(true, kv, b, budget);
        }
        for kv in &s.attributes {
            attrs.add_one(false, kv, b, budget);
        }
    }

    /// Union with `other`: its parts are shared, not copied.
    pub fn merge(&mut self, other: &ByService) {
        self.missing |= other.missing;
        self.parts
            .extend(other.parts.iter().filter(|p| !p.is_empty()).cloned());
    }

    /// As [`Self::merge`], copying `other`'s parts: for a catalog that is
    /// still growing (an active segment's), which sharing would make copy
    /// itself on its next write.
    pub fn merge_copy(&mut self, other: &ByService) {
        self.missing |= other.missing;
        let copies = other.parts.iter().filter(|p| !p.is_empty());
        self.parts.extend(copies.map(|p| Arc::new((**p).clone())));
    }

    /// Adds service `svc`'s keys and values over all parts to `out`,
    /// within the answer bounds.
    pub fn add_service_to(&self, svc: &str, out: &mut ServiceAttrs) {
        for p in &self.parts {
            if let Some(a) = p.get(svc) {
                out.merge(a);
            }
        }
    }

    /// Every service's keys and values, unioned over the parts.
    pub fn union(&self) -> ServiceMap {
        if let [one] = self.parts.as_slice() {
            return (**one).clone();
        }
        let mut out = ServiceMap::new();
        for p in &self.parts {
            for (svc, a) in p.iter() {
                out.entry(svc.clone()).or_default().merge(a);
            }
        }
        out
    }

    /// Keys plus values held over all parts.
    pub fn entries(&self) -> usize {
        self.parts
            .iter()
            .flat_map(|p| p.values())
            .map(ServiceAttrs::entries)
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{KeyValue, Resource, TraceId};
    use std::sync::Arc;

    fn span(svc: &str, attrs: &[(&str, &str)]) -> Span {
        Span {
            trace_id: TraceId([1; 16]),
            name: "op".into(),
            resource: Arc::new(Resource {
                attributes: vec![
                    KeyValue::new("service.name", AttrValue::Str(svc.into())),
                    KeyValue::new("host", AttrValue::Str(format!("{svc}-host"))),
                ],
                ..Default::default()
            }),
            attributes: attrs
                .iter()
                .map(|(k, v)| KeyValue::new(*k, AttrValue::Str(v.to_string())))
                .collect(),
            ..Default::default()
        }
    }

    fn values(d: &Dict, k: &str) -> Vec<String> {
        d[k].values.keys().cloned().collect()
    }

    #[test]
    fn services_keep_their_own_values() {
        let mut b = ByService::default();
        let mut budget = usize::MAX;
        b.add_span(
            &span("a", &[("route", "/a")]),
            true,
            &ServiceBounds::SEGMENT,
            &mut budget,
        );
        b.add_span(
            &span("b", &[("route", "/b")]),
            true,
            &ServiceBounds::SEGMENT,
            &mut budget,
        );
        b.add_span(
            &span("a", &[("route", "/a2")]),
            false,
            &ServiceBounds::SEGMENT,
            &mut budget,
        );
        let m = b.union();
        assert_eq!(values(&m["a"].span, "route"), ["/a", "/a2"]);
        assert_eq!(values(&m["b"].span, "route"), ["/b"]);
        assert_eq!(values(&m["a"].resource, "host"), ["a-host"]);
        assert!(!m["a"].resource.contains_key("service.name"));
        assert!(!m["a"].keys_incomplete && !b.missing);
    }

    #[test]
    fn per_service_bounds_and_the_budget_cut_and_say_so() {
        let tight = ServiceBounds {
            keys: 2,
            values_per_key: 2,
        };
        let mut b = ByService::default();
        let mut budget = usize::MAX;
        for v in ["1", "2", "3"] {
            b.add_span(&span("a", &[("k", v), ("j", v)]), true, &tight, &mut budget);
        }
        let m = b.union();
        let a = &m["a"];
        assert_eq!(a.resource.len() + a.span.len(), 2, "host and k kept");
        assert!(a.keys_incomplete, "j was cut");
        assert_eq!(a.span["k"].values.len(), 2);
        assert!(a.span["k"].incomplete, "the third value was cut");

        // A budget of 5 entries over all services.
        let mut b = ByService::default();
        let mut budget = 5;
        b.add_span(
            &span("a", &[("k", "1")]),
            true,
            &ServiceBounds::SEGMENT,
            &mut budget,
        );
        assert_eq!((budget, b.entries()), (1, 4));
        b.add_span(
            &span("b", &[("k", "1")]),
            true,
            &ServiceBounds::SEGMENT,
            &mut budget,
        );
        assert_eq!(b.entries(), 5);
        assert_eq!(budget, 0);
        assert!(b.union()["b"].keys_incomplete, "b's second key did not fit");
        b.add_span(
            &span("a", &[("k", "2")]),
            false,
            &ServiceBounds::SEGMENT,
            &mut budget,
        );
        assert!(
            b.union()["a"].span["k"].incomplete,
            "no budget for a new value"
        );
        assert_eq!(b.entries(), 5);
    }

    #[test]
    fn merge_is_a_union_and_carries_the_flags() {
        let mut budget = usize::MAX;
        let mut x = ByService::default();
        x.add_span(
            &span("a", &[("k", "1")]),
            true,
            &ServiceBounds::SEGMENT,
            &mut budget,
        );
        let mut y = ByService::default();
        y.add_span(
            &span("a", &[("k", "2")]),
            true,
            &ServiceBounds::SEGMENT,
            &mut budget,
        );
        y.add_span(
            &span("b", &[("j", "9")]),
            true,
            &ServiceBounds::SEGMENT,
            &mut budget,
        );
        y.own_mut().get_mut("b").unwrap().keys_incomplete = true;
        let mut m = x.clone();
        m.merge(&y);
        let u = m.union();
        assert_eq!(values(&u["a"].span, "k"), ["1", "2"]);
        assert!(u["b"].keys_incomplete && !u["a"].keys_incomplete);
        assert!(!m.missing);
        let mut one = ServiceAttrs::default();
        m.add_service_to("a", &mut one);
        assert_eq!(one, u["a"], "one service over the parts");
        let mut copied = x.clone();
        copied.merge_copy(&y);
        assert_eq!(copied, m);
        // Writing to a copy leaves the shared part alone.
        y.add_span(
            &span("a", &[("k", "3")]),
            true,
            &ServiceBounds::SEGMENT,
            &mut budget,
        );
        assert_eq!(values(&m.union()["a"].span, "k"), ["1", "2"]);
        m.merge(&ByService {
            missing: true,
            ..Default::default()
        });
        assert!(
            m.missing,
            "one source without per-service data taints the union"
        );
        let mut again = m.clone();
        again.merge(&m);
        assert_eq!(again, m, "merging is idempotent");
    }
}
