//! Reading exported Parquet back into spans: used by the round-trip tests
//! and handy for tools. Attribute types come back from the
//! `*_attribute_types` maps; arrays and maps come back from their JSON text
//! (so bytes nested inside them come back as base64 strings).

use std::sync::Arc;

use arrow::array::{
    Array, AsArray, FixedSizeBinaryArray, Int64Array, ListArray, MapArray, RecordBatch,
    StringArray, StructArray, TimestampNanosecondArray, UInt32Array,
};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::file::reader::ChunkReader;

use super::parquet::parquet_err;
use crate::error::{Error, Result};
use crate::model::*;

/// Every span of a Parquet file written by this module, in file order.
pub fn read_spans<R: ChunkReader + 'static>(source: R) -> Result<Vec<Span>> {
    let reader = ParquetRecordBatchReaderBuilder::try_new(source)
        .map_err(parquet_err)?
        .build()
        .map_err(parquet_err)?;
    let mut out = Vec::new();
    for batch in reader {
        let batch = batch.map_err(|e| Error::Corrupt(format!("parquet: {e}")))?;
        spans_from_batch(&batch, &mut out)?;
    }
    Ok(out)
}

pub fn read_spans_file(path: &std::path::Path) -> Result<Vec<Span>> {
    read_spans(std::fs::File::open(path)?)
}

fn col<'a, T: 'static>(b: &'a RecordBatch, name: &str) -> Result<&'a T> {
    b.column_by_name(name)
        .and_then(|c| c.as_any().downcast_ref::<T>())
        .ok_or_else(|| Error::Corrupt(format!("column {name:?} missing or of the wrong type")))
}

fn field<'a, T: 'static>(s: &'a StructArray, name: &str) -> Result<&'a T> {
    s.column_by_name(name)
        .and_then(|c| c.as_any().downcast_ref::<T>())
        .ok_or_else(|| Error::Corrupt(format!("field {name:?} missing or of the wrong type")))
}

fn json_to_value(v: &serde_json::Value) -> AttrValue {
    use serde_json::Value as J;
    match v {
        J::Null => AttrValue::Empty,
        J::Bool(b) => AttrValue::Bool(*b),
        J::Number(n) => n
            .as_i64()
            .map(AttrValue::Int)
            .unwrap_or(AttrValue::Double(n.as_f64().unwrap_or(0.0))),
        J::String(s) => AttrValue::Str(s.clone()),
        J::Array(a) => AttrValue::Array(a.iter().map(json_to_value).collect()),
        J::Object(m) => AttrValue::Map(
            m.iter()
                .map(|(k, v)| KeyValue::new(k.clone(), json_to_value(v)))
                .collect(),
        ),
    }
}

/// Rebuilds a value from its text form and its type tag.
pub fn value_from_text(text: &str, ty: Option<&str>) -> AttrValue {
    let parsed = match ty {
        None => return AttrValue::Str(text.to_string()),
        Some("int") => text.parse().ok().map(AttrValue::Int),
        Some("double") => text.parse().ok().map(AttrValue::Double),
        Some("bool") => Some(AttrValue::Bool(text == "true")),
        Some("empty") => Some(AttrValue::Empty),
        Some("bytes") => base64::Engine::decode(&base64::engine::general_purpose::STANDARD, text)
            .ok()
            .map(AttrValue::Bytes),
        Some("array") | Some("map") => serde_json::from_str(text).ok().map(|j| json_to_value(&j)),
        Some(_) => None,
    };
    parsed.unwrap_or_else(|| AttrValue::Str(text.to_string()))
}

fn map_row(m: &MapArray, types: Option<&MapArray>, row: usize) -> Result<Vec<KeyValue>> {
    let entries = m.value(row);
    let keys = field::<StringArray>(&entries, "key")?;
    let values = field::<StringArray>(&entries, "value")?;
    let type_entries = types.map(|t| t.value(row));
    let type_of = |key: &str| -> Result<Option<String>> {
        let Some(te) = &type_entries else {
            return Ok(None);
        };
        let tk = field::<StringArray>(te, "key")?;
        let tv = field::<StringArray>(te, "value")?;
        Ok((0..tk.len())
            .find(|&i| tk.value(i) == key)
            .map(|i| tv.value(i).to_string()))
    };
    let mut out = Vec::with_capacity(keys.len());
    for i in 0..keys.len() {
        let ty = type_of(keys.value(i))?;
        out.push(KeyValue::new(
            keys.value(i),
            value_from_text(values.value(i), ty.as_deref()),
        ));
    }
    Ok(out)
}

fn fixed<const N: usize>(a: &FixedSizeBinaryArray, i: usize) -> Result<[u8; N]> {
    <[u8; N]>::try_from(a.value(i)).map_err(|_| Error::Corrupt("id of the wrong width".into()))
}

fn u64_ns(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

fn spans_from_batch(b: &RecordBatch, out: &mut Vec<Span>) -> Result<()> {
    let trace_id = col::<FixedSizeBinaryArray>(b, "trace_id")?;
    let span_id = col::<FixedSizeBinaryArray>(b, "span_id")?;
    let parent = col::<FixedSizeBinaryArray>(b, "parent_span_id")?;
    let s = |n| col::<StringArray>(b, n);
    let u = |n| col::<UInt32Array>(b, n);
    let m = |n| col::<MapArray>(b, n);
    let (trace_state, name, kind, status_code, status_message) = (
        s("trace_state")?,
        s("name")?,
        s("kind")?,
        s("status_code")?,
        s("status_message")?,
    );
    let (scope_name, scope_version, resource_url, scope_url) = (
        s("scope_name")?,
        s("scope_version")?,
        s("resource_schema_url")?,
        s("scope_schema_url")?,
    );
    let start = col::<TimestampNanosecondArray>(b, "start_time")?;
    let end = col::<TimestampNanosecondArray>(b, "end_time")?;
    let _duration = col::<Int64Array>(b, "duration_ns")?;
    let (res_attrs, res_types, attrs, attr_types) = (
        m("resource_attributes")?,
        m("resource_attribute_types")?,
        m("span_attributes")?,
        m("span_attribute_types")?,
    );
    let events = col::<ListArray>(b, "events")?;
    let links = col::<ListArray>(b, "links")?;
    for i in 0..b.num_rows() {
        let ev = events.value(i);
        let ev = ev.as_struct();
        let (et, en) = (
            field::<TimestampNanosecondArray>(ev, "time")?,
            field::<StringArray>(ev, "name")?,
        );
        let (ea, ed) = (
            field::<MapArray>(ev, "attributes")?,
            field::<UInt32Array>(ev, "dropped_attributes_count")?,
        );
        let mut span_events = Vec::with_capacity(ev.len());
        for j in 0..ev.len() {
            span_events.push(Event {
                time_ns: u64_ns(et.value(j)),
                name: en.value(j).to_string(),
                attributes: map_row(ea, None, j)?,
                dropped_attributes_count: ed.value(j),
            });
        }
        let ln = links.value(i);
        let ln = ln.as_struct();
        let (lt, ls) = (
            field::<FixedSizeBinaryArray>(ln, "trace_id")?,
            field::<FixedSizeBinaryArray>(ln, "span_id")?,
        );
        let (lst, la) = (
            field::<StringArray>(ln, "trace_state")?,
            field::<MapArray>(ln, "attributes")?,
        );
        let (ld, lf) = (
            field::<UInt32Array>(ln, "dropped_attributes_count")?,
            field::<UInt32Array>(ln, "flags")?,
        );
        let mut span_links = Vec::with_capacity(ln.len());
        for j in 0..ln.len() {
            span_links.push(Link {
                trace_id: TraceId(fixed(lt, j)?),
                span_id: SpanId(fixed(ls, j)?),
                trace_state: lst.value(j).to_string(),
                attributes: map_row(la, None, j)?,
                dropped_attributes_count: ld.value(j),
                flags: lf.value(j),
            });
        }
        out.push(Span {
            trace_id: TraceId(fixed(trace_id, i)?),
            span_id: SpanId(fixed(span_id, i)?),
            parent_span_id: if parent.is_null(i) {
                None
            } else {
                Some(SpanId(fixed(parent, i)?))
            },
            trace_state: trace_state.value(i).to_string(),
            flags: u("flags")?.value(i),
            name: name.value(i).to_string(),
            kind: SpanKind::parse(kind.value(i)).unwrap_or_default(),
            start_ns: u64_ns(start.value(i)),
            end_ns: u64_ns(end.value(i)),
            attributes: map_row(attrs, Some(attr_types), i)?,
            dropped_attributes_count: u("dropped_attributes_count")?.value(i),
            events: span_events,
            dropped_events_count: u("dropped_events_count")?.value(i),
            links: span_links,
            dropped_links_count: u("dropped_links_count")?.value(i),
            status: Status {
                code: match status_code.value(i) {
                    "OK" => StatusCode::Ok,
                    "ERROR" => StatusCode::Error,
                    _ => StatusCode::Unset,
                },
                message: status_message.value(i).to_string(),
            },
            resource: Arc::new(Resource {
                attributes: map_row(res_attrs, Some(res_types), i)?,
                dropped_attributes_count: u("resource_dropped_attributes_count")?.value(i),
                schema_url: resource_url.value(i).to_string(),
            }),
            scope: Arc::new(Scope {
                name: scope_name.value(i).to_string(),
                version: scope_version.value(i).to_string(),
                schema_url: scope_url.value(i).to_string(),
                ..Default::default()
            }),
        });
    }
    Ok(())
}
