//! Encodes spans straight from the model into OTLP `TracesData` protobuf
//! bytes — the WAL payload — without building the prost message structs
//! (which would clone every string). Two passes: lengths, then bytes. The
//! output decodes with the generated types (a test checks it against them).

use std::sync::Arc;

use prost::encoding::{encode_key, encode_varint, encoded_len_varint, key_len, WireType};

use crate::model::{AttrValue, KeyValue, Span};

fn vl(n: usize) -> usize {
    encoded_len_varint(n as u64)
}

/// Length of a length-delimited field holding `n` bytes.
fn ld_len(tag: u32, n: usize) -> usize {
    key_len(tag) + vl(n) + n
}

fn put_ld(tag: u32, n: usize, buf: &mut Vec<u8>) {
    encode_key(tag, WireType::LengthDelimited, buf);
    encode_varint(n as u64, buf);
}

fn put_bytes(tag: u32, b: &[u8], buf: &mut Vec<u8>) {
    put_ld(tag, b.len(), buf);
    buf.extend_from_slice(b);
}

/// proto3 scalars are omitted when zero / empty (as prost does).
fn str_len(tag: u32, s: &str) -> usize {
    if s.is_empty() {
        0
    } else {
        ld_len(tag, s.len())
    }
}
fn put_str(tag: u32, s: &str, buf: &mut Vec<u8>) {
    if !s.is_empty() {
        put_bytes(tag, s.as_bytes(), buf);
    }
}
fn varint_len(tag: u32, v: u64) -> usize {
    if v == 0 {
        0
    } else {
        key_len(tag) + encoded_len_varint(v)
    }
}
fn put_varint(tag: u32, v: u64, buf: &mut Vec<u8>) {
    if v != 0 {
        encode_key(tag, WireType::Varint, buf);
        encode_varint(v, buf);
    }
}
fn fixed64_len(tag: u32, v: u64) -> usize {
    if v == 0 {
        0
    } else {
        key_len(tag) + 8
    }
}
fn put_fixed64(tag: u32, v: u64, buf: &mut Vec<u8>) {
    if v != 0 {
        encode_key(tag, WireType::SixtyFourBit, buf);
        buf.extend_from_slice(&v.to_le_bytes());
    }
}
fn fixed32_len(tag: u32, v: u32) -> usize {
    if v == 0 {
        0
    } else {
        key_len(tag) + 4
    }
}
fn put_fixed32(tag: u32, v: u32, buf: &mut Vec<u8>) {
    if v != 0 {
        encode_key(tag, WireType::ThirtyTwoBit, buf);
        buf.extend_from_slice(&v.to_le_bytes());
    }
}

/// AnyValue body. Oneof members are encoded even when zero.
fn any_len(v: &AttrValue) -> usize {
    match v {
        AttrValue::Empty => 0,
        AttrValue::Str(s) => ld_len(1, s.len()),
        AttrValue::Bool(_) => 2,
        AttrValue::Int(i) => 1 + encoded_len_varint(*i as u64),
        AttrValue::Double(_) => 9,
        AttrValue::Bytes(b) => ld_len(7, b.len()),
        AttrValue::Array(a) => ld_len(5, a.iter().map(|x| ld_len(1, any_len(x))).sum()),
        AttrValue::Map(m) => ld_len(6, kvs_len(1, m)),
    }
}

fn put_any(v: &AttrValue, buf: &mut Vec<u8>) {
    match v {
        AttrValue::Empty => {}
        AttrValue::Str(s) => put_bytes(1, s.as_bytes(), buf),
        AttrValue::Bool(b) => {
            encode_key(2, WireType::Varint, buf);
            buf.push(u8::from(*b));
        }
        AttrValue::Int(i) => {
            encode_key(3, WireType::Varint, buf);
            encode_varint(*i as u64, buf);
        }
        AttrValue::Double(d) => {
            encode_key(4, WireType::SixtyFourBit, buf);
            buf.extend_from_slice(&d.to_le_bytes());
        }
        AttrValue::Bytes(b) => put_bytes(7, b, buf),
        AttrValue::Array(a) => {
            put_ld(5, a.iter().map(|x| ld_len(1, any_len(x))).sum(), buf);
            for x in a {
                put_ld(1, any_len(x), buf);
                put_any(x, buf);
            }
        }
        AttrValue::Map(m) => {
            put_ld(6, kvs_len(1, m), buf);
            put_kvs(1, m, buf);
        }
    }
}

fn kv_len(kv: &KeyValue) -> usize {
    str_len(1, &kv.key) + ld_len(2, any_len(&kv.value))
}

fn kvs_len(tag: u32, kvs: &[KeyValue]) -> usize {
    kvs.iter().map(|kv| ld_len(tag, kv_len(kv))).sum()
}

fn put_kvs(tag: u32, kvs: &[KeyValue], buf: &mut Vec<u8>) {
    for kv in kvs {
        put_ld(tag, kv_len(kv), buf);
        put_str(1, &kv.key, buf);
        put_ld(2, any_len(&kv.value), buf);
        put_any(&kv.value, buf);
    }
}

fn event_len(e: &crate::model::Event) -> usize {
    fixed64_len(1, e.time_ns)
        + str_len(2, &e.name)
        + kvs_len(3, &e.attributes)
        + varint_len(4, e.dropped_attributes_count.into())
}

fn link_len(l: &crate::model::Link) -> usize {
    ld_len(1, 16)
        + ld_len(2, 8)
        + str_len(3, &l.trace_state)
        + kvs_len(4, &l.attributes)
        + varint_len(5, l.dropped_attributes_count.into())
        + fixed32_len(6, l.flags)
}

fn status_len(s: &Span) -> usize {
    str_len(2, &s.status.message) + varint_len(3, s.status.code as u64)
}

fn span_len(s: &Span) -> usize {
    ld_len(1, 16)
        + ld_len(2, 8)
        + str_len(3, &s.trace_state)
        + s.parent_span_id.map_or(0, |_| ld_len(4, 8))
        + fixed32_len(16, s.flags)
        + str_len(5, &s.name)
        + varint_len(6, s.kind as u64)
        + fixed64_len(7, s.start_ns)
        + fixed64_len(8, s.end_ns)
        + kvs_len(9, &s.attributes)
        + varint_len(10, s.dropped_attributes_count.into())
        + s.events
            .iter()
            .map(|e| ld_len(11, event_len(e)))
            .sum::<usize>()
        + varint_len(12, s.dropped_events_count.into())
        + s.links
            .iter()
            .map(|l| ld_len(13, link_len(l)))
            .sum::<usize>()
        + varint_len(14, s.dropped_links_count.into())
        + ld_len(15, status_len(s))
}

fn put_span(s: &Span, buf: &mut Vec<u8>) {
    put_bytes(1, &s.trace_id.0, buf);
    put_bytes(2, &s.span_id.0, buf);
    put_str(3, &s.trace_state, buf);
    if let Some(p) = s.parent_span_id {
        put_bytes(4, &p.0, buf);
    }
    put_str(5, &s.name, buf);
    put_varint(6, s.kind as u64, buf);
    put_fixed64(7, s.start_ns, buf);
    put_fixed64(8, s.end_ns, buf);
    put_kvs(9, &s.attributes, buf);
    put_varint(10, s.dropped_attributes_count.into(), buf);
    for e in &s.events {
        put_ld(11, event_len(e), buf);
        put_fixed64(1, e.time_ns, buf);
        put_str(2, &e.name, buf);
        put_kvs(3, &e.attributes, buf);
        put_varint(4, e.dropped_attributes_count.into(), buf);
    }
    put_varint(12, s.dropped_events_count.into(), buf);
    for l in &s.links {
        put_ld(13, link_len(l), buf);
        put_bytes(1, &l.trace_id.0, buf);
        put_bytes(2, &l.span_id.0, buf);
        put_str(3, &l.trace_state, buf);
        put_kvs(4, &l.attributes, buf);
        put_varint(5, l.dropped_attributes_count.into(), buf);
        put_fixed32(6, l.flags, buf);
    }
    put_varint(14, s.dropped_links_count.into(), buf);
    put_ld(15, status_len(s), buf);
    put_str(2, &s.status.message, buf);
    put_varint(3, s.status.code as u64, buf);
    put_fixed32(16, s.flags, buf);
}

/// Runs of spans sharing resource / scope, as index ranges.
struct Group {
    start: usize,
    scopes: Vec<(usize, usize)>,
}

fn groups(spans: &[Span]) -> Vec<Group> {
    let mut out: Vec<Group> = Vec::new();
    for (i, s) in spans.iter().enumerate() {
        let prev = i.checked_sub(1).and_then(|p| spans.get(p));
        let same_res =
            prev.is_some_and(|p| Arc::ptr_eq(&p.resource, &s.resource) || p.resource == s.resource);
        let same_scope =
            same_res && prev.is_some_and(|p| Arc::ptr_eq(&p.scope, &s.scope) || p.scope == s.scope);
        if !same_res {
            out.push(Group {
                start: i,
                scopes: Vec::new(),
            });
        }
        if let Some(g) = out.last_mut() {
            match g.scopes.last_mut() {
                Some(sc) if same_scope => sc.1 = i + 1,
                _ => g.scopes.push((i, i + 1)),
            }
        }
    }
    out
}

/// The `TracesData` encoding of `spans`, appended to `buf`.
pub fn encode_traces_data(spans: &[Span], buf: &mut Vec<u8>) {
    let lens: Vec<usize> = spans.iter().map(span_len).collect();
    for g in groups(spans) {
        let Some(first) = spans.get(g.start) else {
            continue;
        };
        let r = &first.resource;
        let res_len = kvs_len(1, &r.attributes) + varint_len(2, r.dropped_attributes_count.into());
        let scope_lens: Vec<(usize, usize)> = g
            .scopes
            .iter()
            .map(|&(a, b)| {
                let sc = &spans[a].scope;
                let scope_len = str_len(1, &sc.name)
                    + str_len(2, &sc.version)
                    + kvs_len(3, &sc.attributes)
                    + varint_len(4, sc.dropped_attributes_count.into());
                let body = ld_len(1, scope_len)
                    + lens[a..b].iter().map(|&l| ld_len(2, l)).sum::<usize>()
                    + str_len(3, &sc.schema_url);
                (scope_len, body)
            })
            .collect();
        let rs_len = ld_len(1, res_len)
            + scope_lens.iter().map(|&(_, b)| ld_len(2, b)).sum::<usize>()
            + str_len(3, &r.schema_url);
        put_ld(1, rs_len, buf);
        put_ld(1, res_len, buf);
        put_kvs(1, &r.attributes, buf);
        put_varint(2, r.dropped_attributes_count.into(), buf);
        for (&(a, b), &(scope_len, body)) in g.scopes.iter().zip(&scope_lens) {
            let sc = &spans[a].scope;
            put_ld(2, body, buf);
            put_ld(1, scope_len, buf);
            put_str(1, &sc.name, buf);
            put_str(2, &sc.version, buf);
            put_kvs(3, &sc.attributes, buf);
            put_varint(4, sc.dropped_attributes_count.into(), buf);
            for (s, &l) in spans[a..b].iter().zip(&lens[a..b]) {
                put_ld(2, l, buf);
                put_span(s, buf);
            }
            put_str(3, &sc.schema_url, buf);
        }
        put_str(3, &r.schema_url, buf);
    }
}
