//! OTLP/JSON → `ExportTraceServiceRequest`. Mirror structs take the JSON
//! shape (with the OTLP-specific leniencies), then move into the proto
//! types, so both transports feed the same pipeline. Nesting depth is
//! bounded by serde_json's recursion limit (128).

use serde::Deserialize;

use super::scalar::{
    hex_id, nd, opt_base64, opt_f64_any, opt_i64_any, span_kind, status_code, u32_any, u64_any,
};

use crate::error::Error;
use crate::otlp::proto::collector::trace::v1::ExportTraceServiceRequest;
use crate::otlp::proto::common::v1 as pc;
use crate::otlp::proto::resource::v1 as pr;
use crate::otlp::proto::trace::v1 as pt;

/// Decodes an OTLP/JSON request body. Any syntax or type error (including
/// invalid UTF-8 and ids that are neither hex nor base64) is an
/// `InvalidArgument` naming the line and column.
pub fn decode_request(body: &[u8]) -> Result<ExportTraceServiceRequest, Error> {
    let req: JRequest = serde_json::from_slice(body)
        .map_err(|e| Error::InvalidArgument(format!("invalid OTLP/JSON body: {e}")))?;
    Ok(ExportTraceServiceRequest {
        resource_spans: req.resource_spans.into_iter().map(Into::into).collect(),
    })
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct JRequest {
    #[serde(alias = "resource_spans", deserialize_with = "nd")]
    resource_spans: Vec<JResourceSpans>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct JResourceSpans {
    resource: Option<JResource>,
    #[serde(alias = "scope_spans", deserialize_with = "nd")]
    scope_spans: Vec<JScopeSpans>,
    #[serde(alias = "schema_url", deserialize_with = "nd")]
    schema_url: String,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct JResource {
    #[serde(deserialize_with = "nd")]
    attributes: Vec<JKeyValue>,
    #[serde(alias = "dropped_attributes_count", deserialize_with = "u32_any")]
    dropped_attributes_count: u32,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct JScopeSpans {
    scope: Option<JScope>,
    #[serde(deserialize_with = "nd")]
    spans: Vec<JSpan>,
    #[serde(alias = "schema_url", deserialize_with = "nd")]
    schema_url: String,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct JScope {
    #[serde(deserialize_with = "nd")]
    name: String,
    #[serde(deserialize_with = "nd")]
    version: String,
    #[serde(deserialize_with = "nd")]
    attributes: Vec<JKeyValue>,
    #[serde(alias = "dropped_attributes_count", deserialize_with = "u32_any")]
    dropped_attributes_count: u32,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct JSpan {
    #[serde(alias = "trace_id", deserialize_with = "hex_id")]
    trace_id: Vec<u8>,
    #[serde(alias = "span_id", deserialize_with = "hex_id")]
    span_id: Vec<u8>,
    #[serde(alias = "trace_state", deserialize_with = "nd")]
    trace_state: String,
    #[serde(alias = "parent_span_id", deserialize_with = "hex_id")]
    parent_span_id: Vec<u8>,
    #[serde(deserialize_with = "u32_any")]
    flags: u32,
    #[serde(deserialize_with = "nd")]
    name: String,
    #[serde(deserialize_with = "span_kind")]
    kind: i32,
    #[serde(alias = "start_time_unix_nano", deserialize_with = "u64_any")]
    start_time_unix_nano: u64,
    #[serde(alias = "end_time_unix_nano", deserialize_with = "u64_any")]
    end_time_unix_nano: u64,
    #[serde(deserialize_with = "nd")]
    attributes: Vec<JKeyValue>,
    #[serde(alias = "dropped_attributes_count", deserialize_with = "u32_any")]
    dropped_attributes_count: u32,
    #[serde(deserialize_with = "nd")]
    events: Vec<JEvent>,
    #[serde(alias = "dropped_events_count", deserialize_with = "u32_any")]
    dropped_events_count: u32,
    #[serde(deserialize_with = "nd")]
    links: Vec<JLink>,
    #[serde(alias = "dropped_links_count", deserialize_with = "u32_any")]
    dropped_links_count: u32,
    status: Option<JStatus>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct JEvent {
    #[serde(alias = "time_unix_nano", deserialize_with = "u64_any")]
    time_unix_nano: u64,
    #[serde(deserialize_with = "nd")]
    name: String,
    #[serde(deserialize_with = "nd")]
    attributes: Vec<JKeyValue>,
    #[serde(alias = "dropped_attributes_count", deserialize_with = "u32_any")]
    dropped_attributes_count: u32,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct JLink {
    #[serde(alias = "trace_id", deserialize_with = "hex_id")]
    trace_id: Vec<u8>,
    #[serde(alias = "span_id", deserialize_with = "hex_id")]
    span_id: Vec<u8>,
    #[serde(alias = "trace_state", deserialize_with = "nd")]
    trace_state: String,
    #[serde(deserialize_with = "nd")]
    attributes: Vec<JKeyValue>,
    #[serde(alias = "dropped_attributes_count", deserialize_with = "u32_any")]
    dropped_attributes_count: u32,
    #[serde(deserialize_with = "u32_any")]
    flags: u32,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct JStatus {
    #[serde(deserialize_with = "nd")]
    message: String,
    #[serde(deserialize_with = "status_code")]
    code: i32,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct JKeyValue {
    #[serde(deserialize_with = "nd")]
    key: String,
    value: Option<JAnyValue>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct JAnyValue {
    #[serde(alias = "string_value")]
    string_value: Option<String>,
    #[serde(alias = "bool_value")]
    bool_value: Option<bool>,
    #[serde(alias = "int_value", deserialize_with = "opt_i64_any")]
    int_value: Option<i64>,
    #[serde(alias = "double_value", deserialize_with = "opt_f64_any")]
    double_value: Option<f64>,
    #[serde(alias = "bytes_value", deserialize_with = "opt_base64")]
    bytes_value: Option<Vec<u8>>,
    #[serde(alias = "array_value")]
    array_value: Option<JValues<JAnyValue>>,
    #[serde(alias = "kvlist_value")]
    kvlist_value: Option<JValues<JKeyValue>>,
}

#[derive(Deserialize)]
#[serde(default, bound(deserialize = "T: Deserialize<'de>"))]
struct JValues<T> {
    #[serde(deserialize_with = "nd")]
    values: Vec<T>,
}

impl<T> Default for JValues<T> {
    fn default() -> Self {
        JValues { values: Vec::new() }
    }
}

// ---- into proto ------------------------------------------------------------

fn attrs(kvs: Vec<JKeyValue>) -> Vec<pc::KeyValue> {
    kvs.into_iter()
        .map(|kv| pc::KeyValue {
            key: kv.key,
            value: kv.value.map(Into::into),
            ..Default::default()
        })
        .collect()
}

impl From<JAnyValue> for pc::AnyValue {
    fn from(v: JAnyValue) -> Self {
        use pc::any_value::Value as V;
        let value = if let Some(s) = v.string_value {
            Some(V::StringValue(s))
        } else if let Some(b) = v.bool_value {
            Some(V::BoolValue(b))
        } else if let Some(i) = v.int_value {
            Some(V::IntValue(i))
        } else if let Some(d) = v.double_value {
            Some(V::DoubleValue(d))
        } else if let Some(b) = v.bytes_value {
            Some(V::BytesValue(b))
        } else if let Some(a) = v.array_value {
            Some(V::ArrayValue(pc::ArrayValue {
                values: a.values.into_iter().map(Into::into).collect(),
            }))
        } else {
            v.kvlist_value.map(|m| {
                V::KvlistValue(pc::KeyValueList {
                    values: attrs(m.values),
                })
            })
        };
        pc::AnyValue { value }
    }
}

impl From<JResourceSpans> for pt::ResourceSpans {
    fn from(rs: JResourceSpans) -> Self {
        pt::ResourceSpans {
            resource: rs.resource.map(|r| pr::Resource {
                attributes: attrs(r.attributes),
                dropped_attributes_count: r.dropped_attributes_count,
                entity_refs: Vec::new(),
            }),
            scope_spans: rs.scope_spans.into_iter().map(Into::into).collect(),
            schema_url: rs.schema_url,
        }
    }
}

impl From<JScopeSpans> for pt::ScopeSpans {
    fn from(ss: JScopeSpans) -> Self {
        pt::ScopeSpans {
            scope: ss.scope.map(|s| pc::InstrumentationScope {
                name: s.name,
                version: s.version,
                attributes: attrs(s.attributes),
                dropped_attributes_count: s.dropped_attributes_count,
            }),
            spans: ss.spans.into_iter().map(Into::into).collect(),
            schema_url: ss.schema_url,
        }
    }
}

impl From<JSpan> for pt::Span {
    fn from(s: JSpan) -> Self {
        pt::Span {
            trace_id: s.trace_id,
            span_id: s.span_id,
            trace_state: s.trace_state,
            parent_span_id: s.parent_span_id,
            flags: s.flags,
            name: s.name,
            kind: s.kind,
            start_time_unix_nano: s.start_time_unix_nano,
            end_time_unix_nano: s.end_time_unix_nano,
            attributes: attrs(s.attributes),
            dropped_attributes_count: s.dropped_attributes_count,
            events: s
                .events
                .into_iter()
                .map(|e| pt::span::Event {
                    time_unix_nano: e.time_unix_nano,
                    name: e.name,
                    attributes: attrs(e.attributes),
                    dropped_attributes_count: e.dropped_attributes_count,
                })
                .collect(),
            dropped_events_count: s.dropped_events_count,
            links: s
                .links
                .into_iter()
                .map(|l| pt::span::Link {
                    trace_id: l.trace_id,
                    span_id: l.span_id,
                    trace_state: l.trace_state,
                    attributes: attrs(l.attributes),
                    dropped_attributes_count: l.dropped_attributes_count,
                    flags: l.flags,
                })
                .collect(),
            dropped_links_count: s.dropped_links_count,
            status: s.status.map(|st| pt::Status {
                message: st.message,
                code: st.code,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pc::any_value::Value as V;

    fn first_span(body: &str) -> pt::Span {
        let req = decode_request(body.as_bytes()).unwrap();
        req.resource_spans[0].scope_spans[0].spans[0].clone()
    }

    #[test]
    fn decodes_the_otlp_json_encoding() {
        let s = first_span(
            r#"{"resourceSpans":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"api"}}]},
            "scopeSpans":[{"scope":{"name":"lib"},"spans":[{
              "traceId":"5B8EFFF798038103D269B633813FC60C","spanId":"eee19b7ec3c1b174","parentSpanId":"",
              "name":"op","kind":2,"startTimeUnixNano":"1544712660000000000","endTimeUnixNano":1544712661000000000,
              "attributes":[{"key":"i","value":{"intValue":"-42"}},{"key":"n","value":{"intValue":7}},
                {"key":"d","value":{"doubleValue":"NaN"}},{"key":"b","value":{"bytesValue":"AQL/"}},
                {"key":"a","value":{"arrayValue":{"values":[{"boolValue":true},{}]}}},
                {"key":"m","value":{"kvlistValue":{"values":[{"key":"k","value":{"stringValue":"v"}}]}}}],
              "events":[{"timeUnixNano":"5","name":"e"}],
              "status":{"code":2,"message":"bad"},"someFutureField":{"x":1}}]}]}]}"#,
        );
        assert_eq!(
            s.trace_id,
            hex::decode("5b8efff798038103d269b633813fc60c").unwrap()
        );
        assert_eq!(s.span_id.len(), 8);
        assert!(s.parent_span_id.is_empty());
        assert_eq!(
            (s.kind, s.start_time_unix_nano, s.end_time_unix_nano),
            (2, 1544712660000000000, 1544712661000000000)
        );
        let v = |i: usize| s.attributes[i].value.clone().and_then(|v| v.value);
        assert_eq!(v(0), Some(V::IntValue(-42)));
        assert_eq!(v(1), Some(V::IntValue(7)));
        assert!(matches!(v(2), Some(V::DoubleValue(d)) if d.is_nan()));
        assert_eq!(v(3), Some(V::BytesValue(vec![1, 2, 255])));
        let Some(V::ArrayValue(a)) = v(4) else {
            panic!("array")
        };
        assert_eq!(
            (a.values[0].value.clone(), a.values[1].value.clone()),
            (Some(V::BoolValue(true)), None)
        );
        assert!(matches!(v(5), Some(V::KvlistValue(m)) if m.values[0].key == "k"));
        assert_eq!(s.events[0].time_unix_nano, 5);
        assert_eq!(
            s.status,
            Some(pt::Status {
                code: 2,
                message: "bad".into()
            })
        );
    }

    #[test]
    fn accepts_snake_case_enum_names_nulls_and_base64_ids() {
        let s = first_span(
            r#"{"resource_spans":[{"scope_spans":[{"spans":[{
              "trace_id":"AQEBAQEBAQEBAQEBAQEBAQ==","span_id":"0202020202020202","kind":"SPAN_KIND_CLIENT",
              "start_time_unix_nano":10,"end_time_unix_nano":"20","attributes":null,
              "status":{"code":"STATUS_CODE_ERROR"}}]}]}]}"#,
        );
        assert_eq!(s.trace_id, vec![1; 16]);
        assert_eq!(s.span_id, vec![2; 8]);
        assert_eq!(s.kind, 3);
        assert_eq!(s.status.map(|st| st.code), Some(2));
        assert!(s.attributes.is_empty());
        // Wrong-length ids decode; validation rejects the span, not the request.
        assert_eq!(
            first_span(r#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"abcd"}]}]}]}"#)
                .trace_id
                .len(),
            2
        );
    }

    #[test]
    fn malformed_bodies_are_invalid_argument() {
        for body in [
            &b"{"[..],
            b"[1,2]",
            br#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"zz!"}]}]}]}"#,
            br#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"startTimeUnixNano":"-1"}]}]}]}"#,
            br#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"kind":"SPAN_KIND_NOPE"}]}]}]}"#,
            b"{\"resourceSpans\":[{\"schemaUrl\":\"\xff\xfe\"}]}",
        ] {
            match decode_request(body) {
                Err(Error::InvalidArgument(m)) => assert!(m.contains("OTLP/JSON"), "{m}"),
                other => panic!("{:?}: {other:?}", String::from_utf8_lossy(body)),
            }
        }
        let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
        assert!(decode_request(deep.as_bytes()).is_err());
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(body in proptest::collection::vec(proptest::num::u8::ANY, 0..256)) {
            let _ = decode_request(&body);
        }

        #[test]
        fn arbitrary_json_values_never_panic(key in "[a-zA-Z_]{1,16}", n in proptest::num::i64::ANY, t in "\\PC{0,16}") {
            let body = format!(
                r#"{{"resourceSpans":[{{"scopeSpans":[{{"spans":[{{"{key}":{n},"traceId":{t:?},"kind":{t:?},"attributes":[{{"key":{t:?},"value":{{"intValue":{t:?}}}}}]}}]}}]}}]}}"#
            );
            let _ = decode_request(body.as_bytes());
        }
    }
}
