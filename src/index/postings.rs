//! Postings: for each indexed field value, the roaring bitmap of rows that
//! hold it, plus the (service, operation, kind) set behind the services and
//! operations listings. Attribute postings index a span's *effective*
//! value for the key (span attribute, else resource attribute, as
//! `AttrValue::as_text`), which is exactly what `tag_matches` compares.

use std::collections::{BTreeMap, HashMap};

use roaring::RoaringBitmap;

use super::codec::{Reader, Writer};
use crate::error::{Error, Result};
use crate::model::catalog::int_text;
use crate::model::{AttrValue, SearchQuery, Span, SpanKind};

const KINDS: usize = 6;
const STATUSES: usize = 3;

#[cfg(test)]
#[test]
fn int_text_matches_to_string() {
    for i in [0i64, 7, -7, 500, i64::MAX, i64::MIN, -1_000_000] {
        assert_eq!(int_text(i, &mut [0u8; 24]), i.to_string());
    }
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Postings {
    pub service: HashMap<String, RoaringBitmap>,
    pub name: HashMap<String, RoaringBitmap>,
    pub kind: [RoaringBitmap; KINDS],
    /// By `StatusCode` (Unset, Ok, Error).
    pub status: [RoaringBitmap; STATUSES],
    /// Indexed key → value → rows. Every key indexed when the segment was
    /// built is present (maybe empty), so an absent key means "not indexed
    /// here" and the planner falls back to verification.
    pub attrs: BTreeMap<String, HashMap<String, RoaringBitmap>>,
    /// service → operation name → bitmask of span kinds.
    pub ops: HashMap<String, HashMap<String, u8>>,
}

fn add_to(map: &mut HashMap<String, RoaringBitmap>, key: &str, row: u32) {
    match map.get_mut(key) {
        Some(b) => {
            b.insert(row);
        }
        None => {
            map.insert(key.to_string(), RoaringBitmap::from_iter([row]));
        }
    }
}

/// Candidate rows for a query in one segment.
#[derive(Debug)]
pub struct Plan {
    /// `None`: every row is a candidate.
    pub rows: Option<RoaringBitmap>,
    /// Every candidate satisfies all conditions except the start-time
    /// window and the duration bounds (cheap to check from two columns).
    pub exact: bool,
}

impl Postings {
    pub fn new(attribute_keys: &[String]) -> Postings {
        Postings {
            attrs: attribute_keys
                .iter()
                .map(|k| (k.clone(), HashMap::new()))
                .collect(),
            ..Default::default()
        }
    }

    pub fn add(&mut self, row: u32, s: &Span) {
        let service = s.service_name();
        add_to(&mut self.service, service, row);
        add_to(&mut self.name, &s.name, row);
        self.kind[s.kind as usize].insert(row);
        self.status[s.status.code as usize].insert(row);
        for (key, values) in self.attrs.iter_mut() {
            match s.attr(key) {
                // The common types are indexed without allocating.
                Some(AttrValue::Str(v)) => add_to(values, v, row),
                Some(AttrValue::Int(i)) => {
                    let mut buf = [0u8; 24];
                    add_to(values, int_text(*i, &mut buf), row)
                }
                Some(v) => add_to(values, &v.as_text(), row),
                None => {}
            }
        }
        let ops = match self.ops.get_mut(service) {
            Some(o) => o,
            None => self.ops.entry(service.to_string()).or_default(),
        };
        match ops.get_mut(&s.name) {
            Some(mask) => *mask |= 1 << (s.kind as u8),
            None => {
                ops.insert(s.name.clone(), 1 << (s.kind as u8));
            }
        }
    }

    /// Intersects the postings of every indexed condition of `q`.
    pub fn plan(&self, q: &SearchQuery) -> Plan {
        let empty = RoaringBitmap::new();
        let mut acc: Option<RoaringBitmap> = None;
        let mut exact = true;
        let mut and = |b: &RoaringBitmap| {
            acc = Some(match acc.take() {
                None => b.clone(),
                Some(a) => a & b,
            });
        };
        if let Some(s) = &q.service {
            and(self.service.get(s).unwrap_or(&empty));
        }
        if let Some(op) = &q.operation {
            and(self.name.get(op).unwrap_or(&empty));
        }
        if let Some(k) = q.span_kind {
            and(&self.kind[k as usize]);
        }
        for (k, v) in &q.tags {
            match k.as_str() {
                "span.kind" => match self
                    .kind
                    .iter()
                    .enumerate()
                    .find(|(i, _)| SpanKind::from_i32(*i as i32).as_str() == v)
                {
                    Some((_, b)) => and(b),
                    None => and(&empty),
                },
                "otel.status_code" => match v.as_str() {
                    "UNSET" => and(&self.status[0]),
                    "OK" => and(&self.status[1]),
                    "ERROR" => and(&self.status[2]),
                    _ => and(&empty),
                },
                // error=true also matches error-status spans without an
                // `error` attribute: a superset, verified afterwards.
                "error" => {
                    exact = false;
                    if v == "true" {
                        if let Some(values) = self.attrs.get("error") {
                            let mut b = self.status[2].clone();
                            if let Some(t) = values.get("true") {
                                b |= t;
                            }
                            and(&b);
                        }
                    }
                }
                key => match self.attrs.get(key) {
                    Some(values) => and(values.get(v).unwrap_or(&empty)),
                    None => exact = false,
                },
            }
        }
        Plan { rows: acc, exact }
    }

    pub fn encode(&self, w: &mut Writer) {
        fn map(w: &mut Writer, m: &HashMap<String, RoaringBitmap>) {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            w.u32(keys.len() as u32);
            for k in keys {
                w.str(k);
                bitmap(w, &m[k]);
            }
        }
        fn bitmap(w: &mut Writer, b: &RoaringBitmap) {
            let mut buf = Vec::with_capacity(b.serialized_size());
            // Serializing into a Vec cannot fail.
            let _ = b.serialize_into(&mut buf);
            w.bytes(&buf);
        }
        map(w, &self.service);
        map(w, &self.name);
        for b in self.kind.iter().chain(self.status.iter()) {
            bitmap(w, b);
        }
        w.u32(self.attrs.len() as u32);
        for (k, m) in &self.attrs {
            w.str(k);
            map(w, m);
        }
        let mut services: Vec<&String> = self.ops.keys().collect();
        services.sort();
        w.u32(services.len() as u32);
        for s in services {
            w.str(s);
            let ops = &self.ops[s];
            let mut names: Vec<&String> = ops.keys().collect();
            names.sort();
            w.u32(names.len() as u32);
            for n in names {
                w.str(n);
                w.u8(ops[n]);
            }
        }
    }

    pub fn decode(r: &mut Reader, nrows: u32) -> Result<Postings> {
        fn bitmap(r: &mut Reader, nrows: u32) -> Result<RoaringBitmap> {
            let b = RoaringBitmap::deserialize_from(r.bytes()?)
                .map_err(|e| Error::Corrupt(format!("index: bitmap: {e}")))?;
            if b.max().is_some_and(|m| m >= nrows) {
                return Err(Error::Corrupt("index: bitmap row out of range".into()));
            }
            Ok(b)
        }
        fn map(r: &mut Reader, nrows: u32) -> Result<HashMap<String, RoaringBitmap>> {
            let n = r.count(8)?;
            let mut m = HashMap::with_capacity(n);
            for _ in 0..n {
                let k = r.str()?;
                m.insert(k, bitmap(r, nrows)?);
            }
            Ok(m)
        }
        let mut p = Postings {
            service: map(r, nrows)?,
            name: map(r, nrows)?,
            ..Default::default()
        };
        for b in p.kind.iter_mut().chain(p.status.iter_mut()) {
            *b = bitmap(r, nrows)?;
        }
        let n = r.count(8)?;
        for _ in 0..n {
            let k = r.str()?;
            p.attrs.insert(k, map(r, nrows)?);
        }
        let n = r.count(8)?;
        for _ in 0..n {
            let s = r.str()?;
            let m = r.count(5)?;
            let mut ops = HashMap::with_capacity(m);
            for _ in 0..m {
                let name = r.str()?;
                ops.insert(name, r.u8()?);
            }
            p.ops.insert(s, ops);
        }
        Ok(p)
    }
}
