//! The Arrow schema of a sealed segment (documented in docs/STORAGE.md) and
//! the conversions spans → RecordBatch and row → span.
//!
//! Nested OTLP structures (attributes, events, links) are stored as binary
//! columns of length-delimited OTLP protobuf messages: the model round-trips
//! exactly (every AnyValue type, dropped counts) and search never reads them
//! except to verify candidate rows. Repetitive strings and the per-resource
//! and per-scope blobs are dictionary-encoded.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use arrow::array::{
    ArrayRef, BinaryBuilder, BinaryDictionaryBuilder, FixedSizeBinaryBuilder, RecordBatch,
    StringBuilder, StringDictionaryBuilder, UInt32Builder, UInt64Builder, UInt8Builder,
};
use arrow::datatypes::{DataType, Field, Int32Type, Schema, SchemaRef};
use prost::Message;

use crate::error::{Error, Result};
use crate::model::*;
use crate::otlp::convert;
use crate::otlp::proto::resource::v1 as pr;
use crate::otlp::proto::trace::v1 as pt;

fn dict(v: DataType) -> DataType {
    DataType::Dictionary(Box::new(DataType::Int32), Box::new(v))
}

/// The segment schema, column order fixed (the decoder reads by position).
pub fn schema() -> SchemaRef {
    static S: OnceLock<SchemaRef> = OnceLock::new();
    S.get_or_init(|| {
        use DataType::*;
        Arc::new(Schema::new(vec![
            Field::new("trace_id", FixedSizeBinary(16), false),
            Field::new("span_id", FixedSizeBinary(8), false),
            Field::new("parent_span_id", FixedSizeBinary(8), true),
            Field::new("trace_state", Utf8, false),
            Field::new("flags", UInt32, false),
            Field::new("name", dict(Utf8), false),
            Field::new("kind", UInt8, false),
            Field::new("start_time_unix_nano", UInt64, false),
            Field::new("end_time_unix_nano", UInt64, false),
            Field::new("status_code", UInt8, false),
            Field::new("status_message", Utf8, false),
            Field::new("service_name", dict(Utf8), false),
            Field::new("resource", dict(Binary), false),
            Field::new("resource_schema_url", dict(Utf8), false),
            Field::new("scope_name", dict(Utf8), false),
            Field::new("scope_version", dict(Utf8), false),
            Field::new("scope_attributes", dict(Binary), false),
            Field::new("scope_dropped_attributes_count", UInt32, false),
            Field::new("scope_schema_url", dict(Utf8), false),
            Field::new("attributes", Binary, false),
            Field::new("dropped_attributes_count", UInt32, false),
            Field::new("events", Binary, false),
            Field::new("dropped_events_count", UInt32, false),
            Field::new("links", Binary, false),
            Field::new("dropped_links_count", UInt32, false),
        ]))
    })
    .clone()
}

fn encode_delimited<M: Message>(items: impl Iterator<Item = M>, out: &mut Vec<u8>) {
    out.clear();
    for m in items {
        // Writing into a Vec cannot fail.
        let _ = m.encode_length_delimited(out);
    }
}

/// Builds one RecordBatch of `spans`, in order (row i = spans[i]).
pub fn to_batch(spans: &[Span]) -> Result<RecordBatch> {
    let n = spans.len();
    let mut trace_id = FixedSizeBinaryBuilder::with_capacity(n, 16);
    let mut span_id = FixedSizeBinaryBuilder::with_capacity(n, 8);
    let mut parent = FixedSizeBinaryBuilder::with_capacity(n, 8);
    let mut trace_state = StringBuilder::new();
    let mut flags = UInt32Builder::with_capacity(n);
    let mut name = StringDictionaryBuilder::<Int32Type>::new();
    let mut kind = UInt8Builder::with_capacity(n);
    let mut start = UInt64Builder::with_capacity(n);
    let mut end = UInt64Builder::with_capacity(n);
    let mut status_code = UInt8Builder::with_capacity(n);
    let mut status_message = StringBuilder::new();
    let mut service = StringDictionaryBuilder::<Int32Type>::new();
    let mut resource = BinaryDictionaryBuilder::<Int32Type>::new();
    let mut resource_url = StringDictionaryBuilder::<Int32Type>::new();
    let mut scope_name = StringDictionaryBuilder::<Int32Type>::new();
    let mut scope_version = StringDictionaryBuilder::<Int32Type>::new();
    let mut scope_attrs = BinaryDictionaryBuilder::<Int32Type>::new();
    let mut scope_dropped = UInt32Builder::with_capacity(n);
    let mut scope_url = StringDictionaryBuilder::<Int32Type>::new();
    let mut attrs = BinaryBuilder::new();
    let mut dropped_attrs = UInt32Builder::with_capacity(n);
    let mut events = BinaryBuilder::new();
    let mut dropped_events = UInt32Builder::with_capacity(n);
    let mut links = BinaryBuilder::new();
    let mut dropped_links = UInt32Builder::with_capacity(n);

    // Resource and scope blobs are encoded once per distinct Arc.
    let mut res_cache: HashMap<*const Resource, Vec<u8>> = HashMap::new();
    let mut scope_cache: HashMap<*const Scope, Vec<u8>> = HashMap::new();
    let mut buf = Vec::new();
    let ae = |e: arrow::error::ArrowError| Error::Internal(format!("building segment batch: {e}"));
    for s in spans {
        trace_id.append_value(s.trace_id.0).map_err(ae)?;
        span_id.append_value(s.span_id.0).map_err(ae)?;
        match s.parent_span_id {
            Some(p) => parent.append_value(p.0).map_err(ae)?,
            None => parent.append_null(),
        }
        trace_state.append_value(&s.trace_state);
        flags.append_value(s.flags);
        name.append_value(&s.name);
        kind.append_value(s.kind as u8);
        start.append_value(s.start_ns);
        end.append_value(s.end_ns);
        status_code.append_value(s.status.code as u8);
        status_message.append_value(&s.status.message);
        service.append_value(s.service_name());
        let r = res_cache
            .entry(Arc::as_ptr(&s.resource))
            .or_insert_with(|| {
                pr::Resource {
                    attributes: convert::attrs_to_proto(&s.resource.attributes),
                    dropped_attributes_count: s.resource.dropped_attributes_count,
                    entity_refs: Vec::new(),
                }
                .encode_to_vec()
            });
        resource.append_value(r);
        resource_url.append_value(&s.resource.schema_url);
        scope_name.append_value(&s.scope.name);
        scope_version.append_value(&s.scope.version);
        let sc = scope_cache.entry(Arc::as_ptr(&s.scope)).or_insert_with(|| {
            let mut b = Vec::new();
            encode_delimited(
                convert::attrs_to_proto(&s.scope.attributes).into_iter(),
                &mut b,
            );
            b
        });
        scope_attrs.append_value(sc);
        scope_dropped.append_value(s.scope.dropped_attributes_count);
        scope_url.append_value(&s.scope.schema_url);
        encode_delimited(convert::attrs_to_proto(&s.attributes).into_iter(), &mut buf);
        attrs.append_value(&buf);
        dropped_attrs.append_value(s.dropped_attributes_count);
        encode_delimited(
            s.events.iter().map(|e| pt::span::Event {
                time_unix_nano: e.time_ns,
                name: e.name.clone(),
                attributes: convert::attrs_to_proto(&e.attributes),
                dropped_attributes_count: e.dropped_attributes_count,
            }),
            &mut buf,
        );
        events.append_value(&buf);
        dropped_events.append_value(s.dropped_events_count);
        encode_delimited(
            s.links.iter().map(|l| pt::span::Link {
                trace_id: l.trace_id.0.to_vec(),
                span_id: l.span_id.0.to_vec(),
                trace_state: l.trace_state.clone(),
                attributes: convert::attrs_to_proto(&l.attributes),
                dropped_attributes_count: l.dropped_attributes_count,
                flags: l.flags,
            }),
            &mut buf,
        );
        links.append_value(&buf);
        dropped_links.append_value(s.dropped_links_count);
    }
    let cols: Vec<ArrayRef> = vec![
        Arc::new(trace_id.finish()),
        Arc::new(span_id.finish()),
        Arc::new(parent.finish()),
        Arc::new(trace_state.finish()),
        Arc::new(flags.finish()),
        Arc::new(name.finish()),
        Arc::new(kind.finish()),
        Arc::new(start.finish()),
        Arc::new(end.finish()),
        Arc::new(status_code.finish()),
        Arc::new(status_message.finish()),
        Arc::new(service.finish()),
        Arc::new(resource.finish()),
        Arc::new(resource_url.finish()),
        Arc::new(scope_name.finish()),
        Arc::new(scope_version.finish()),
        Arc::new(scope_attrs.finish()),
        Arc::new(scope_dropped.finish()),
        Arc::new(scope_url.finish()),
        Arc::new(attrs.finish()),
        Arc::new(dropped_attrs.finish()),
        Arc::new(events.finish()),
        Arc::new(dropped_events.finish()),
        Arc::new(links.finish()),
        Arc::new(dropped_links.finish()),
    ];
    RecordBatch::try_new(schema(), cols).map_err(ae)
}
