//! The Arrow schema of exported spans (documented in docs/PARQUET.md) and
//! the conversion of spans into record batches.

use std::fmt::Write as _;
use std::sync::Arc;

use arrow::array::{
    ArrayBuilder, ArrayRef, FixedSizeBinaryBuilder, Int64Builder, ListArray, MapArray, RecordBatch,
    StringBuilder, StructArray, TimestampNanosecondBuilder, UInt32Builder,
};
use arrow::buffer::OffsetBuffer;
use arrow::datatypes::{DataType, Field, FieldRef, Fields, Schema, SchemaRef, TimeUnit};

use crate::error::{Error, Result};
use crate::model::{AttrValue, KeyValue, Span, StatusCode};

/// The type of the typed column of an allow-listed attribute key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TypedKind {
    /// Integer values (and strings that parse as integers); null otherwise.
    Int64,
    /// The value's text form.
    Utf8,
}

/// Keys whose OpenTelemetry semantic convention type is an integer get an
/// Int64 column; every other key gets Utf8. Fixed by name (not by the data)
/// so every file of an export, and every export, has the same schema.
pub fn typed_kind(key: &str) -> TypedKind {
    const INT_SUFFIXES: [&str; 5] = ["status_code", ".port", ".count", ".size", ".length"];
    if INT_SUFFIXES.iter().any(|s| key.ends_with(s)) {
        TypedKind::Int64
    } else {
        TypedKind::Utf8
    }
}

/// Prefix of typed attribute columns (`attr.http.status_code`), so that an
/// attribute key can never collide with a core column.
pub const TYPED_PREFIX: &str = "attr.";

fn ts_type() -> DataType {
    DataType::Timestamp(TimeUnit::Nanosecond, Some("UTC".into()))
}

fn map_type() -> DataType {
    let entries = Fields::from(vec![
        Field::new("key", DataType::Utf8, false),
        Field::new("value", DataType::Utf8, false),
    ]);
    DataType::Map(
        Arc::new(Field::new("key_value", DataType::Struct(entries), false)),
        false,
    )
}

fn event_fields() -> Fields {
    Fields::from(vec![
        Field::new("time", ts_type(), false),
        Field::new("name", DataType::Utf8, false),
        Field::new("attributes", map_type(), false),
        Field::new("dropped_attributes_count", DataType::UInt32, false),
    ])
}

fn link_fields() -> Fields {
    Fields::from(vec![
        Field::new("trace_id", DataType::FixedSizeBinary(16), false),
        Field::new("span_id", DataType::FixedSizeBinary(8), false),
        Field::new("trace_state", DataType::Utf8, false),
        Field::new("attributes", map_type(), false),
        Field::new("dropped_attributes_count", DataType::UInt32, false),
        Field::new("flags", DataType::UInt32, false),
    ])
}

fn list_item(fields: Fields) -> FieldRef {
    Arc::new(Field::new("element", DataType::Struct(fields), false))
}

/// The export schema for a given list of typed attribute keys.
pub fn schema(typed_keys: &[String]) -> SchemaRef {
    let mut f = vec![
        Field::new("trace_id", DataType::FixedSizeBinary(16), false),
        Field::new("span_id", DataType::FixedSizeBinary(8), false),
        Field::new("parent_span_id", DataType::FixedSizeBinary(8), true),
        Field::new("trace_state", DataType::Utf8, false),
        Field::new("flags", DataType::UInt32, false),
        Field::new("name", DataType::Utf8, false),
        Field::new("kind", DataType::Utf8, false),
        Field::new("start_time", ts_type(), false),
        Field::new("end_time", ts_type(), false),
        Field::new("duration_ns", DataType::Int64, false),
        Field::new("status_code", DataType::Utf8, false),
        Field::new("status_message", DataType::Utf8, false),
        Field::new("service_name", DataType::Utf8, false),
        Field::new("scope_name", DataType::Utf8, false),
        Field::new("scope_version", DataType::Utf8, false),
        Field::new("resource_schema_url", DataType::Utf8, false),
        Field::new("scope_schema_url", DataType::Utf8, false),
        Field::new("resource_attributes", map_type(), false),
        Field::new("resource_attribute_types", map_type(), false),
        Field::new("resource_dropped_attributes_count", DataType::UInt32, false),
        Field::new("span_attributes", map_type(), false),
        Field::new("span_attribute_types", map_type(), false),
        Field::new("dropped_attributes_count", DataType::UInt32, false),
        Field::new("events", DataType::List(list_item(event_fields())), false),
        Field::new("dropped_events_count", DataType::UInt32, false),
        Field::new("links", DataType::List(list_item(link_fields())), false),
        Field::new("dropped_links_count", DataType::UInt32, false),
    ];
    for k in typed_keys {
        let dt = match typed_kind(k) {
            TypedKind::Int64 => DataType::Int64,
            TypedKind::Utf8 => DataType::Utf8,
        };
        f.push(Field::new(format!("{TYPED_PREFIX}{k}"), dt, true));
    }
    Arc::new(Schema::new(f))
}

/// Index of `start_time` in the schema (for the sorting-columns metadata).
pub const START_TIME_COLUMN: usize = 7;

/// The type tag kept in the `*_attribute_types` maps for non-string values.
pub fn type_name(v: &AttrValue) -> Option<&'static str> {
    Some(match v {
        AttrValue::Str(_) => return None,
        AttrValue::Bool(_) => "bool",
        AttrValue::Int(_) => "int",
        AttrValue::Double(_) => "double",
        AttrValue::Bytes(_) => "bytes",
        AttrValue::Array(_) => "array",
        AttrValue::Map(_) => "map",
        AttrValue::Empty => "empty",
    })
}

fn push_text(b: &mut StringBuilder, v: &AttrValue) {
    match v {
        AttrValue::Str(s) => b.append_value(s),
        AttrValue::Int(i) => {
            let _ = write!(b, "{i}");
            b.append_value("");
        }
        AttrValue::Bool(x) => b.append_value(if *x { "true" } else { "false" }),
        AttrValue::Double(d) => {
            let _ = write!(b, "{d}");
            b.append_value("");
        }
        other => b.append_value(other.as_text()),
    }
}

/// Builds a `Map<Utf8, Utf8>` column row by row.
struct MapCols {
    offsets: Vec<i32>,
    keys: StringBuilder,
    values: StringBuilder,
}

impl MapCols {
    fn new(rows: usize) -> Self {
        let mut offsets = Vec::with_capacity(rows + 1);
        offsets.push(0);
        MapCols {
            offsets,
            keys: StringBuilder::new(),
            values: StringBuilder::new(),
        }
    }
    fn close_row(&mut self) -> Result<()> {
        let n = i32::try_from(self.keys.len())
            .map_err(|_| Error::Internal("map column over 2^31 entries".into()))?;
        self.offsets.push(n);
        Ok(())
    }
    fn push_attrs(&mut self, attrs: &[KeyValue]) -> Result<()> {
        for kv in attrs {
            self.keys.append_value(&kv.key);
            push_text(&mut self.values, &kv.value);
        }
        self.close_row()
    }
    fn push_types(&mut self, attrs: &[KeyValue]) -> Result<()> {
        for kv in attrs {
            if let Some(t) = type_name(&kv.value) {
                self.keys.append_value(&kv.key);
                self.values.append_value(t);
            }
        }
        self.close_row()
    }
    fn finish(mut self) -> Result<ArrayRef> {
        let DataType::Map(entry_field, _) = map_type() else {
            unreachable!("map_type is a map")
        };
        let DataType::Struct(fields) = entry_field.data_type().clone() else {
            unreachable!("entries are a struct")
        };
        let entries = StructArray::try_new(
            fields,
            vec![Arc::new(self.keys.finish()), Arc::new(self.values.finish())],
            None,
        )
        .map_err(arrow_err)?;
        let offsets = OffsetBuffer::new(self.offsets.into());
        Ok(Arc::new(
            MapArray::try_new(entry_field, offsets, entries, None, false).map_err(arrow_err)?,
        ))
    }
}

/// Arrow errors here are programming errors (schema mismatch), not bad input.
pub(crate) fn arrow_err(e: arrow::error::ArrowError) -> Error {
    Error::Internal(format!("arrow: {e}"))
}

fn list_offsets(offsets: Vec<i32>) -> OffsetBuffer<i32> {
    OffsetBuffer::new(offsets.into())
}

fn len_i32(n: usize) -> Result<i32> {
    i32::try_from(n).map_err(|_| Error::Internal("list column over 2^31 entries".into()))
}

fn status_text(c: StatusCode) -> &'static str {
    match c {
        StatusCode::Unset => "UNSET",
        StatusCode::Ok => "OK",
        StatusCode::Error => "ERROR",
    }
}

fn ns_i64(ns: u64) -> i64 {
    i64::try_from(ns).unwrap_or(i64::MAX)
}

/// Converts spans (in the order given) into one record batch of `schema`.
pub fn to_batch(schema: &SchemaRef, typed_keys: &[String], spans: &[&Span]) -> Result<RecordBatch> {
    let n = spans.len();
    let mut trace_id = FixedSizeBinaryBuilder::with_capacity(n, 16);
    let mut span_id = FixedSizeBinaryBuilder::with_capacity(n, 8);
    let mut parent = FixedSizeBinaryBuilder::with_capacity(n, 8);
    let mut trace_state = StringBuilder::new();
    let mut flags = UInt32Builder::with_capacity(n);
    let mut name = StringBuilder::new();
    let mut kind = StringBuilder::new();
    let mut start = TimestampNanosecondBuilder::with_capacity(n).with_timezone("UTC");
    let mut end = TimestampNanosecondBuilder::with_capacity(n).with_timezone("UTC");
    let mut duration = Int64Builder::with_capacity(n);
    let mut status_code = StringBuilder::new();
    let mut status_message = StringBuilder::new();
    let mut service = StringBuilder::new();
    let mut scope_name = StringBuilder::new();
    let mut scope_version = StringBuilder::new();
    let mut resource_url = StringBuilder::new();
    let mut scope_url = StringBuilder::new();
    let mut res_attrs = MapCols::new(n);
    let mut res_types = MapCols::new(n);
    let mut res_dropped = UInt32Builder::with_capacity(n);
    let mut attrs = MapCols::new(n);
    let mut attr_types = MapCols::new(n);
    let mut dropped_attrs = UInt32Builder::with_capacity(n);
    let mut dropped_events = UInt32Builder::with_capacity(n);
    let mut dropped_links = UInt32Builder::with_capacity(n);
    // Events and links: flat children plus per-span offsets.
    let mut ev_offsets = vec![0i32];
    let mut ev_time = TimestampNanosecondBuilder::new().with_timezone("UTC");
    let mut ev_name = StringBuilder::new();
    let mut ev_attrs = MapCols::new(0);
    let mut ev_dropped = UInt32Builder::new();
    let mut ln_offsets = vec![0i32];
    let mut ln_trace = FixedSizeBinaryBuilder::new(16);
    let mut ln_span = FixedSizeBinaryBuilder::new(8);
    let mut ln_state = StringBuilder::new();
    let mut ln_attrs = MapCols::new(0);
    let mut ln_dropped = UInt32Builder::new();
    let mut ln_flags = UInt32Builder::new();

    for s in spans {
        trace_id.append_value(s.trace_id.0).map_err(arrow_err)?;
        span_id.append_value(s.span_id.0).map_err(arrow_err)?;
        match s.parent_span_id {
            Some(p) => parent.append_value(p.0).map_err(arrow_err)?,
            None => parent.append_null(),
        }
        trace_state.append_value(&s.trace_state);
        flags.append_value(s.flags);
        name.append_value(&s.name);
        kind.append_value(s.kind.as_str());
        start.append_value(ns_i64(s.start_ns));
        end.append_value(ns_i64(s.end_ns));
        duration.append_value(ns_i64(s.duration_ns()));
        status_code.append_value(status_text(s.status.code));
        status_message.append_value(&s.status.message);
        service.append_value(s.service_name());
        scope_name.append_value(&s.scope.name);
        scope_version.append_value(&s.scope.version);
        resource_url.append_value(&s.resource.schema_url);
        scope_url.append_value(&s.scope.schema_url);
        res_attrs.push_attrs(&s.resource.attributes)?;
        res_types.push_types(&s.resource.attributes)?;
        res_dropped.append_value(s.resource.dropped_attributes_count);
        attrs.push_attrs(&s.attributes)?;
        attr_types.push_types(&s.attributes)?;
        dropped_attrs.append_value(s.dropped_attributes_count);
        for e in &s.events {
            ev_time.append_value(ns_i64(e.time_ns));
            ev_name.append_value(&e.name);
            ev_attrs.push_attrs(&e.attributes)?;
            ev_dropped.append_value(e.dropped_attributes_count);
        }
        ev_offsets.push(len_i32(ev_name.len())?);
        dropped_events.append_value(s.dropped_events_count);
        for l in &s.links {
            ln_trace.append_value(l.trace_id.0).map_err(arrow_err)?;
            ln_span.append_value(l.span_id.0).map_err(arrow_err)?;
            ln_state.append_value(&l.trace_state);
            ln_attrs.push_attrs(&l.attributes)?;
            ln_dropped.append_value(l.dropped_attributes_count);
            ln_flags.append_value(l.flags);
        }
        ln_offsets.push(len_i32(ln_state.len())?);
        dropped_links.append_value(s.dropped_links_count);
    }

    let events = StructArray::try_new(
        event_fields(),
        vec![
            Arc::new(ev_time.finish()),
            Arc::new(ev_name.finish()),
            ev_attrs.finish()?,
            Arc::new(ev_dropped.finish()),
        ],
        None,
    )
    .map_err(arrow_err)?;
    let links = StructArray::try_new(
        link_fields(),
        vec![
            Arc::new(ln_trace.finish()),
            Arc::new(ln_span.finish()),
            Arc::new(ln_state.finish()),
            ln_attrs.finish()?,
            Arc::new(ln_dropped.finish()),
            Arc::new(ln_flags.finish()),
        ],
        None,
    )
    .map_err(arrow_err)?;
    let mut cols: Vec<ArrayRef> = vec![
        Arc::new(trace_id.finish()),
        Arc::new(span_id.finish()),
        Arc::new(parent.finish()),
        Arc::new(trace_state.finish()),
        Arc::new(flags.finish()),
        Arc::new(name.finish()),
        Arc::new(kind.finish()),
        Arc::new(start.finish()),
        Arc::new(end.finish()),
        Arc::new(duration.finish()),
        Arc::new(status_code.finish()),
        Arc::new(status_message.finish()),
        Arc::new(service.finish()),
        Arc::new(scope_name.finish()),
        Arc::new(scope_version.finish()),
        Arc::new(resource_url.finish()),
        Arc::new(scope_url.finish()),
        res_attrs.finish()?,
        res_types.finish()?,
        Arc::new(res_dropped.finish()),
        attrs.finish()?,
        attr_types.finish()?,
        Arc::new(dropped_attrs.finish()),
        Arc::new(
            ListArray::try_new(
                list_item(event_fields()),
                list_offsets(ev_offsets),
                Arc::new(events),
                None,
            )
            .map_err(arrow_err)?,
        ),
        Arc::new(dropped_events.finish()),
        Arc::new(
            ListArray::try_new(
                list_item(link_fields()),
                list_offsets(ln_offsets),
                Arc::new(links),
                None,
            )
            .map_err(arrow_err)?,
        ),
        Arc::new(dropped_links.finish()),
    ];
    cols.extend(typed_columns(typed_keys, spans));
    RecordBatch::try_new(schema.clone(), cols).map_err(arrow_err)
}

/// The typed columns, filled in one pass over each span's attributes (span
/// attributes win over resource attributes, as in `Span::attr`).
fn typed_columns(keys: &[String], spans: &[&Span]) -> Vec<ArrayRef> {
    enum Col {
        Int(Int64Builder),
        Text(StringBuilder),
    }
    let index: std::collections::HashMap<&str, usize> = keys
        .iter()
        .enumerate()
        .map(|(i, k)| (k.as_str(), i))
        .collect();
    let mut cols: Vec<Col> = keys
        .iter()
        .map(|k| match typed_kind(k) {
            TypedKind::Int64 => Col::Int(Int64Builder::with_capacity(spans.len())),
            TypedKind::Utf8 => Col::Text(StringBuilder::new()),
        })
        .collect();
    let mut slots: Vec<Option<&AttrValue>> = vec![None; keys.len()];
    for s in spans {
        slots.iter_mut().for_each(|x| *x = None);
        for kv in s.resource.attributes.iter().chain(&s.attributes) {
            if let Some(&i) = index.get(kv.key.as_str()) {
                slots[i] = Some(&kv.value);
            }
        }
        for (col, v) in cols.iter_mut().zip(&slots) {
            match col {
                Col::Int(b) => b.append_option(match v {
                    Some(AttrValue::Int(i)) => Some(*i),
                    Some(AttrValue::Str(t)) => t.parse().ok(),
                    _ => None,
                }),
                Col::Text(b) => match v {
                    Some(v) => push_text(b, v),
                    None => b.append_null(),
                },
            }
        }
    }
    cols.into_iter()
        .map(|c| -> ArrayRef {
            match c {
                Col::Int(mut b) => Arc::new(b.finish()),
                Col::Text(mut b) => Arc::new(b.finish()),
            }
        })
        .collect()
}
