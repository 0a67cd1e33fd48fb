//! Conversion between OTLP protobuf messages and the span model, both ways.
//! Decoding here does no validation: `crate::otlp::validate` (ingest) decides
//! what is accepted; stored data (WAL, Kafka) was validated before it was
//! written.

use std::sync::Arc;

use super::proto::common::v1 as pc;
use super::proto::resource::v1 as pr;
use super::proto::trace::v1 as pt;
use crate::model::*;

pub fn value_from_proto(v: Option<&pc::AnyValue>) -> AttrValue {
    use pc::any_value::Value as V;
    match v.and_then(|v| v.value.as_ref()) {
        // String-table references are for profiles only; other signals
        // must ignore them.
        None | Some(V::StringValueStrindex(_)) => AttrValue::Empty,
        Some(V::StringValue(s)) => AttrValue::Str(s.clone()),
        Some(V::BoolValue(b)) => AttrValue::Bool(*b),
        Some(V::IntValue(i)) => AttrValue::Int(*i),
        Some(V::DoubleValue(d)) => AttrValue::Double(*d),
        Some(V::BytesValue(b)) => AttrValue::Bytes(b.clone()),
        Some(V::ArrayValue(a)) => {
            AttrValue::Array(a.values.iter().map(|v| value_from_proto(Some(v))).collect())
        }
        Some(V::KvlistValue(kv)) => AttrValue::Map(attrs_from_proto(&kv.values)),
    }
}

pub fn attrs_from_proto(kvs: &[pc::KeyValue]) -> Vec<KeyValue> {
    kvs.iter()
        .map(|kv| KeyValue {
            key: kv.key.clone(),
            value: value_from_proto(kv.value.as_ref()),
        })
        .collect()
}

pub fn value_to_proto(v: &AttrValue) -> pc::AnyValue {
    use pc::any_value::Value as V;
    let value = match v {
        AttrValue::Empty => None,
        AttrValue::Str(s) => Some(V::StringValue(s.clone())),
        AttrValue::Bool(b) => Some(V::BoolValue(*b)),
        AttrValue::Int(i) => Some(V::IntValue(*i)),
        AttrValue::Double(d) => Some(V::DoubleValue(*d)),
        AttrValue::Bytes(b) => Some(V::BytesValue(b.clone())),
        AttrValue::Array(a) => Some(V::ArrayValue(pc::ArrayValue {
            values: a.iter().map(value_to_proto).collect(),
        })),
        AttrValue::Map(m) => Some(V::KvlistValue(pc::KeyValueList {
            values: attrs_to_proto(m),
        })),
    };
    pc::AnyValue { value }
}

pub fn attrs_to_proto(kvs: &[KeyValue]) -> Vec<pc::KeyValue> {
    kvs.iter()
        .map(|kv| pc::KeyValue {
            key: kv.key.clone(),
            value: Some(value_to_proto(&kv.value)),
            key_strindex: 0,
        })
        .collect()
}

pub fn resource_from_proto(r: Option<&pr::Resource>, schema_url: &str) -> Resource {
    Resource {
        attributes: r
            .map(|r| attrs_from_proto(&r.attributes))
            .unwrap_or_default(),
        dropped_attributes_count: r.map(|r| r.dropped_attributes_count).unwrap_or(0),
        schema_url: schema_url.to_string(),
    }
}

pub fn scope_from_proto(s: Option<&pc::InstrumentationScope>, schema_url: &str) -> Scope {
    match s {
        None => Scope {
            schema_url: schema_url.to_string(),
            ..Default::default()
        },
        Some(s) => Scope {
            name: s.name.clone(),
            version: s.version.clone(),
            attributes: attrs_from_proto(&s.attributes),
            dropped_attributes_count: s.dropped_attributes_count,
            schema_url: schema_url.to_string(),
        },
    }
}

/// Converts one proto span; `None` if an id has the wrong length (callers
/// that validated first never see that).
pub fn span_from_proto(s: &pt::Span, resource: &Arc<Resource>, scope: &Arc<Scope>) -> Option<Span> {
    let parent_span_id = match s.parent_span_id.len() {
        0 => None,
        _ => Some(SpanId::from_slice(&s.parent_span_id)?).filter(|p| !p.is_zero()),
    };
    Some(Span {
        trace_id: TraceId::from_slice(&s.trace_id)?,
        span_id: SpanId::from_slice(&s.span_id)?,
        parent_span_id,
        trace_state: s.trace_state.clone(),
        flags: s.flags,
        name: s.name.clone(),
        kind: SpanKind::from_i32(s.kind),
        start_ns: s.start_time_unix_nano,
        end_ns: s.end_time_unix_nano,
        attributes: attrs_from_proto(&s.attributes),
        dropped_attributes_count: s.dropped_attributes_count,
        events: s
            .events
            .iter()
            .map(|e| Event {
                time_ns: e.time_unix_nano,
                name: e.name.clone(),
                attributes: attrs_from_proto(&e.attributes),
                dropped_attributes_count: e.dropped_attributes_count,
            })
            .collect(),
        dropped_events_count: s.dropped_events_count,
        links: s
            .links
            .iter()
            .filter_map(|l| {
                Some(Link {
                    trace_id: TraceId::from_slice(&l.trace_id)?,
                    span_id: SpanId::from_slice(&l.span_id)?,
                    trace_state: l.trace_state.clone(),
                    attributes: attrs_from_proto(&l.attributes),
                    dropped_attributes_count: l.dropped_attributes_count,
                    flags: l.flags,
                })
            })
            .collect(),
        dropped_links_count: s.dropped_links_count,
        status: s
            .status
            .as_ref()
            .map(|st| Status {
                code: StatusCode::from_i32(st.code),
                message: st.message.clone(),
            })
            .unwrap_or_default(),
        resource: resource.clone(),
        scope: scope.clone(),
    })
}

/// Every well-formed span of the request; spans with malformed ids are
/// skipped (validation upstream reports them).
pub fn spans_from_proto(resource_spans: &[pt::ResourceSpans]) -> Vec<Span> {
    let mut out = Vec::new();
    for rs in resource_spans {
        let resource = Arc::new(resource_from_proto(rs.resource.as_ref(), &rs.schema_url));
        for ss in &rs.scope_spans {
            let scope = Arc::new(scope_from_proto(ss.scope.as_ref(), &ss.schema_url));
            out.extend(
                ss.spans
                    .iter()
                    .filter_map(|s| span_from_proto(s, &resource, &scope)),
            );
        }
    }
    out
}

pub fn span_to_proto(s: &Span) -> pt::Span {
    pt::Span {
        trace_id: s.trace_id.0.to_vec(),
        span_id: s.span_id.0.to_vec(),
        trace_state: s.trace_state.clone(),
        parent_span_id: s.parent_span_id.map(|p| p.0.to_vec()).unwrap_or_default(),
        flags: s.flags,
        name: s.name.clone(),
        kind: s.kind as i32,
        start_time_unix_nano: s.start_ns,
        end_time_unix_nano: s.end_ns,
        attributes: attrs_to_proto(&s.attributes),
        dropped_attributes_count: s.dropped_attributes_count,
        events: s
            .events
            .iter()
            .map(|e| pt::span::Event {
                time_unix_nano: e.time_ns,
                name: e.name.clone(),
                attributes: attrs_to_proto(&e.attributes),
                dropped_attributes_count: e.dropped_attributes_count,
            })
            .collect(),
        dropped_events_count: s.dropped_events_count,
        links: s
            .links
            .iter()
            .map(|l| pt::span::Link {
                trace_id: l.trace_id.0.to_vec(),
                span_id: l.span_id.0.to_vec(),
                trace_state: l.trace_state.clone(),
                attributes: attrs_to_proto(&l.attributes),
                dropped_attributes_count: l.dropped_attributes_count,
                flags: l.flags,
            })
            .collect(),
        dropped_links_count: s.dropped_links_count,
        status: Some(pt::Status {
            message: s.status.message.clone(),
            code: s.status.code as i32,
        }),
    }
}

/// Groups spans back into ResourceSpans/ScopeSpans, keeping the original
/// grouping where spans share their `Arc`ed resource and scope (and merging
/// equal ones), in first-seen order.
pub fn spans_to_proto(spans: &[Span]) -> Vec<pt::ResourceSpans> {
    type Scoped = (Arc<Scope>, Vec<pt::Span>);
    let mut out: Vec<(Arc<Resource>, Vec<Scoped>)> = Vec::new();
    for s in spans {
        let ri = match out
            .iter()
            .position(|(r, _)| Arc::ptr_eq(r, &s.resource) || **r == *s.resource)
        {
            Some(i) => i,
            None => {
                out.push((s.resource.clone(), Vec::new()));
                out.len() - 1
            }
        };
        let scopes = &mut out[ri].1;
        let si = match scopes
            .iter()
            .position(|(sc, _)| Arc::ptr_eq(sc, &s.scope) || **sc == *s.scope)
        {
            Some(i) => i,
            None => {
                scopes.push((s.scope.clone(), Vec::new()));
                scopes.len() - 1
            }
        };
        scopes[si].1.push(span_to_proto(s));
    }
    out.into_iter()
        .map(|(r, scopes)| pt::ResourceSpans {
            resource: Some(pr::Resource {
                attributes: attrs_to_proto(&r.attributes),
                dropped_attributes_count: r.dropped_attributes_count,
                entity_refs: Vec::new(),
            }),
            schema_url: r.schema_url.clone(),
            scope_spans: scopes
                .into_iter()
                .map(|(sc, spans)| pt::ScopeSpans {
                    scope: Some(pc::InstrumentationScope {
                        name: sc.name.clone(),
                        version: sc.version.clone(),
                        attributes: attrs_to_proto(&sc.attributes),
                        dropped_attributes_count: sc.dropped_attributes_count,
                    }),
                    spans,
                    schema_url: sc.schema_url.clone(),
                })
                .collect(),
        })
        .collect()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A span exercising every field and value kind; shared by the codec tests.
    pub(crate) fn sample_span(seed: u8) -> Span {
        Span {
            trace_id: TraceId([seed; 16]),
            span_id: SpanId([seed + 1; 8]),
            parent_span_id: Some(SpanId([0xab; 8])),
            trace_state: "k=v".into(),
            flags: 1,
            name: "GET /users".into(),
            kind: SpanKind::Server,
            start_ns: 1_700_000_000_000_000_123,
            end_ns: 1_700_000_000_050_000_000,
            attributes: vec![
                KeyValue::new("http.status_code", AttrValue::Int(i64::MIN)),
                KeyValue::new("ratio", AttrValue::Double(0.5)),
                KeyValue::new("inf", AttrValue::Double(f64::INFINITY)),
                KeyValue::new(
                    "list",
                    AttrValue::Array(vec![AttrValue::Bool(true), AttrValue::Str("x".into())]),
                ),
                KeyValue::new(
                    "map",
                    AttrValue::Map(vec![KeyValue::new("a", AttrValue::Bytes(vec![1, 2, 255]))]),
                ),
                KeyValue::new("empty", AttrValue::Empty),
            ],
            dropped_attributes_count: 2,
            events: vec![Event {
                time_ns: 5,
                name: "retry".into(),
                attributes: vec![],
                dropped_attributes_count: 1,
            }],
            dropped_events_count: 1,
            links: vec![Link {
                trace_id: TraceId([3; 16]),
                span_id: SpanId([4; 8]),
                flags: 7,
                ..Default::default()
            }],
            dropped_links_count: 3,
            status: Status {
                code: StatusCode::Error,
                message: "boom".into(),
            },
            resource: Arc::new(Resource {
                attributes: vec![KeyValue::new("service.name", AttrValue::Str("api".into()))],
                dropped_attributes_count: 0,
                schema_url: "https://opentelemetry.io/schemas/1.26.0".into(),
            }),
            scope: Arc::new(Scope {
                name: "lib".into(),
                version: "1.0".into(),
                ..Default::default()
            }),
        }
    }

    #[test]
    fn proto_round_trip_keeps_every_field() {
        let spans = vec![sample_span(1), sample_span(2)];
        let proto = spans_to_proto(&spans);
        assert_eq!(proto.len(), 1, "spans sharing a resource stay grouped");
        assert_eq!(spans_from_proto(&proto), spans);
    }

    #[test]
    fn wrong_length_ids_are_skipped_not_panicked_on() {
        let mut p = span_to_proto(&sample_span(1));
        p.trace_id = vec![1, 2, 3];
        let r = Arc::new(Resource::default());
        let s = Arc::new(Scope::default());
        assert!(span_from_proto(&p, &r, &s).is_none());
    }
}
