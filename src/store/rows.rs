//! Row access to a segment batch: typed column views and the decoding of
//! one row back into a [`Span`] (see `schema.rs` for the layout).

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{
    Array, BinaryArray, DictionaryArray, FixedSizeBinaryArray, Int32Array, RecordBatch,
    StringArray, UInt32Array, UInt64Array, UInt8Array,
};
use arrow::datatypes::Int32Type;
use prost::Message;

use super::schema::schema;
use crate::error::{Error, Result};
use crate::model::*;
use crate::otlp::convert;
use crate::otlp::proto::common::v1 as pc;
use crate::otlp::proto::resource::v1 as pr;
use crate::otlp::proto::trace::v1 as pt;

fn decode_delimited<M: Message + Default>(mut buf: &[u8]) -> Result<Vec<M>> {
    let mut out = Vec::new();
    while !buf.is_empty() {
        out.push(
            M::decode_length_delimited(&mut buf)
                .map_err(|e| Error::Corrupt(format!("nested column: {e}")))?,
        );
    }
    Ok(out)
}

/// A dictionary column split into keys and values for row access.
struct Dict<V> {
    keys: Int32Array,
    values: V,
}

/// Typed views of a segment batch's columns, for decoding rows.
pub struct Columns {
    trace_id: FixedSizeBinaryArray,
    span_id: FixedSizeBinaryArray,
    parent: FixedSizeBinaryArray,
    trace_state: StringArray,
    flags: UInt32Array,
    name: Dict<StringArray>,
    kind: UInt8Array,
    start: UInt64Array,
    end: UInt64Array,
    status_code: UInt8Array,
    status_message: StringArray,
    resource: Dict<BinaryArray>,
    resource_url: Dict<StringArray>,
    scope_name: Dict<StringArray>,
    scope_version: Dict<StringArray>,
    scope_attrs: Dict<BinaryArray>,
    scope_dropped: UInt32Array,
    scope_url: Dict<StringArray>,
    attrs: BinaryArray,
    dropped_attrs: UInt32Array,
    events: BinaryArray,
    dropped_events: UInt32Array,
    links: BinaryArray,
    dropped_links: UInt32Array,
    len: usize,
}

fn col<T: Array + Clone + 'static>(b: &RecordBatch, i: usize) -> Result<T> {
    b.columns()
        .get(i)
        .and_then(|c| c.as_any().downcast_ref::<T>())
        .cloned()
        .ok_or_else(|| Error::Corrupt(format!("segment column {i} has an unexpected type")))
}

fn dict_col<V: Array + Clone + 'static>(b: &RecordBatch, i: usize) -> Result<Dict<V>> {
    let d: DictionaryArray<Int32Type> = col(b, i)?;
    let values = d
        .values()
        .as_any()
        .downcast_ref::<V>()
        .cloned()
        .ok_or_else(|| {
            Error::Corrupt(format!(
                "segment column {i} has unexpected dictionary values"
            ))
        })?;
    Ok(Dict {
        keys: d.keys().clone(),
        values,
    })
}

fn key<V: Array>(d: &Dict<V>, row: usize) -> Result<usize> {
    let k = usize::try_from(d.keys.value(row))
        .map_err(|_| Error::Corrupt("negative dictionary key".into()))?;
    if k >= d.values.len() {
        return Err(Error::Corrupt("dictionary key out of range".into()));
    }
    Ok(k)
}

fn dict_str(d: &Dict<StringArray>, row: usize) -> Result<&str> {
    Ok(d.values.value(key(d, row)?))
}

impl Columns {
    pub fn new(b: &RecordBatch) -> Result<Columns> {
        if b.schema().fields() != schema().fields() {
            return Err(Error::Corrupt(
                "segment schema does not match this version".into(),
            ));
        }
        Ok(Columns {
            trace_id: col(b, 0)?,
            span_id: col(b, 1)?,
            parent: col(b, 2)?,
            trace_state: col(b, 3)?,
            flags: col(b, 4)?,
            name: dict_col(b, 5)?,
            kind: col(b, 6)?,
            start: col(b, 7)?,
            end: col(b, 8)?,
            status_code: col(b, 9)?,
            status_message: col(b, 10)?,
            resource: dict_col(b, 12)?,
            resource_url: dict_col(b, 13)?,
            scope_name: dict_col(b, 14)?,
            scope_version: dict_col(b, 15)?,
            scope_attrs: dict_col(b, 16)?,
            scope_dropped: col(b, 17)?,
            scope_url: dict_col(b, 18)?,
            attrs: col(b, 19)?,
            dropped_attrs: col(b, 20)?,
            events: col(b, 21)?,
            dropped_events: col(b, 22)?,
            links: col(b, 23)?,
            dropped_links: col(b, 24)?,
            len: b.num_rows(),
        })
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn check(&self, row: usize) -> Result<()> {
        if row >= self.len {
            return Err(Error::Corrupt(format!(
                "row {row} beyond segment end {}",
                self.len
            )));
        }
        Ok(())
    }

    pub fn trace_id(&self, row: usize) -> Result<TraceId> {
        self.check(row)?;
        TraceId::from_slice(self.trace_id.value(row))
            .ok_or_else(|| Error::Corrupt("trace id width".into()))
    }

    pub fn start_ns(&self, row: usize) -> Result<u64> {
        self.check(row)?;
        Ok(self.start.value(row))
    }

    pub fn end_ns(&self, row: usize) -> Result<u64> {
        self.check(row)?;
        Ok(self.end.value(row))
    }

    /// The row's resource, decoded once per distinct dictionary entry.
    fn resource(&self, row: usize, cache: &mut RowCache) -> Result<Arc<Resource>> {
        let rk = (key(&self.resource, row)?, key(&self.resource_url, row)?);
        if let Some(r) = cache.resources.get(&rk) {
            return Ok(r.clone());
        }
        let p = pr::Resource::decode(self.resource.values.value(rk.0))
            .map_err(|_| Error::Corrupt(format!("segment row {row}: resource")))?;
        let r = Arc::new(convert::resource_from_proto(
            Some(&p),
            self.resource_url.values.value(rk.1),
        ));
        cache.resources.insert(rk, r.clone());
        Ok(r)
    }

    /// Decodes only what `SearchQuery::matches` reads (name, kind, times,
    /// status, span attributes, resource): much cheaper than [`Self::span`]
    /// for verifying candidates that are mostly rejected.
    pub fn span_for_match(&self, row: usize, cache: &mut RowCache) -> Result<Span> {
        self.check(row)?;
        let attrs: Vec<pc::KeyValue> = decode_delimited(self.attrs.value(row))?;
        Ok(Span {
            name: dict_str(&self.name, row)?.to_string(),
            kind: SpanKind::from_i32(i32::from(self.kind.value(row))),
            start_ns: self.start.value(row),
            end_ns: self.end.value(row),
            attributes: convert::attrs_from_proto(&attrs),
            status: Status {
                code: StatusCode::from_i32(i32::from(self.status_code.value(row))),
                message: String::new(),
            },
            resource: self.resource(row, cache)?,
            ..Default::default()
        })
    }

    /// Decodes row `row`; resource and scope `Arc`s are shared through
    /// `cache` across calls.
    pub fn span(&self, row: usize, cache: &mut RowCache) -> Result<Span> {
        self.check(row)?;
        let corrupt = |what: &str| Error::Corrupt(format!("segment row {row}: {what}"));
        let resource = self.resource(row, cache)?;
        let sk = (
            key(&self.scope_name, row)?,
            key(&self.scope_version, row)?,
            key(&self.scope_attrs, row)?,
            key(&self.scope_url, row)?,
            self.scope_dropped.value(row),
        );
        let scope = match cache.scopes.get(&sk) {
            Some(s) => s.clone(),
            None => {
                let attrs: Vec<pc::KeyValue> =
                    decode_delimited(self.scope_attrs.values.value(sk.2))?;
                let s = Arc::new(Scope {
                    name: dict_str(&self.scope_name, row)?.to_string(),
                    version: dict_str(&self.scope_version, row)?.to_string(),
                    attributes: convert::attrs_from_proto(&attrs),
                    dropped_attributes_count: sk.4,
                    schema_url: dict_str(&self.scope_url, row)?.to_string(),
                });
                cache.scopes.insert(sk, s.clone());
                s
            }
        };
        let attrs: Vec<pc::KeyValue> = decode_delimited(self.attrs.value(row))?;
        let proto = pt::Span {
            trace_id: self.trace_id.value(row).to_vec(),
            span_id: self.span_id.value(row).to_vec(),
            parent_span_id: if self.parent.is_null(row) {
                Vec::new()
            } else {
                self.parent.value(row).to_vec()
            },
            trace_state: self.trace_state.value(row).to_string(),
            flags: self.flags.value(row),
            name: dict_str(&self.name, row)?.to_string(),
            kind: i32::from(self.kind.value(row)),
            start_time_unix_nano: self.start.value(row),
            end_time_unix_nano: self.end.value(row),
            attributes: Vec::new(),
            dropped_attributes_count: self.dropped_attrs.value(row),
            events: decode_delimited(self.events.value(row))?,
            dropped_events_count: self.dropped_events.value(row),
            links: decode_delimited(self.links.value(row))?,
            dropped_links_count: self.dropped_links.value(row),
            status: Some(pt::Status {
                message: self.status_message.value(row).to_string(),
                code: i32::from(self.status_code.value(row)),
            }),
        };
        let mut span = convert::span_from_proto(&proto, &resource, &scope)
            .ok_or_else(|| corrupt("id width"))?;
        span.attributes = convert::attrs_from_proto(&attrs);
        Ok(span)
    }
}

/// Shares decoded resources and scopes between rows of one segment.
#[derive(Default)]
pub struct RowCache {
    resources: HashMap<(usize, usize), Arc<Resource>>,
    scopes: HashMap<(usize, usize, usize, usize, u32), Arc<Scope>>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::schema::to_batch;
    use crate::store::testutil::span;

    #[test]
    fn batch_round_trips_rows() {
        let mut spans: Vec<Span> = (0..20)
            .map(|i| span(i % 4, i, if i % 2 == 0 { "a" } else { "b" }, "op"))
            .collect();
        spans[3].events.push(Event {
            time_ns: 5,
            name: "ev".into(),
            attributes: vec![],
            dropped_attributes_count: 2,
        });
        spans[4].links.push(Link {
            trace_id: TraceId([7; 16]),
            span_id: SpanId([8; 8]),
            flags: 1,
            ..Default::default()
        });
        let b = to_batch(&spans).unwrap();
        let cols = Columns::new(&b).unwrap();
        let mut cache = RowCache::default();
        for (i, s) in spans.iter().enumerate() {
            assert_eq!(&cols.span(i, &mut cache).unwrap(), s);
        }
        assert!(cols.span(20, &mut cache).is_err());
    }
}
