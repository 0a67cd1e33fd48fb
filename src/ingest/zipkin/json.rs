//! Zipkin v2 JSON (`[{"traceId": ..., "id": ..., ...}]`) read into the
//! protobuf types, so both encodings share one conversion. Ids are hex
//! (any case); a malformed body, a wrong type or an id that is not hex is
//! a 400 naming the span and field. Unknown fields are ignored, `null`
//! reads as absent, and tag values that are numbers or booleans (which
//! some clients send) are kept as their text.

use serde::Deserialize;
use std::collections::HashMap;
use std::net::{Ipv4Addr, Ipv6Addr};

use super::proto;
use crate::error::{Error, Result};

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct JsonSpan {
    trace_id: Option<String>,
    id: Option<String>,
    parent_id: Option<String>,
    kind: Option<String>,
    name: Option<String>,
    timestamp: Option<u64>,
    duration: Option<u64>,
    local_endpoint: Option<JsonEndpoint>,
    remote_endpoint: Option<JsonEndpoint>,
    annotations: Option<Vec<JsonAnnotation>>,
    tags: Option<HashMap<String, serde_json::Value>>,
    debug: Option<bool>,
    shared: Option<bool>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct JsonEndpoint {
    service_name: Option<String>,
    ipv4: Option<String>,
    ipv6: Option<String>,
    port: Option<i32>,
}

#[derive(Deserialize)]
struct JsonAnnotation {
    timestamp: Option<u64>,
    value: Option<String>,
}

/// Parses a JSON list of Zipkin v2 spans.
pub fn parse(body: &[u8]) -> Result<Vec<proto::Span>> {
    let spans: Vec<JsonSpan> = serde_json::from_slice(body)
        .map_err(|e| Error::InvalidArgument(format!("invalid Zipkin JSON: {e}")))?;
    spans
        .into_iter()
        .enumerate()
        .map(|(i, s)| {
            span(s).map_err(|why| {
                Error::InvalidArgument(format!("invalid Zipkin JSON: span {i}: {why}"))
            })
        })
        .collect()
}

fn span(s: JsonSpan) -> std::result::Result<proto::Span, String> {
    use proto::span::Kind;
    let kind = match s.kind.as_deref().map(str::to_ascii_uppercase).as_deref() {
        None | Some("") => Kind::SpanKindUnspecified,
        Some("CLIENT") => Kind::Client,
        Some("SERVER") => Kind::Server,
        Some("PRODUCER") => Kind::Producer,
        Some("CONSUMER") => Kind::Consumer,
        Some(other) => return Err(format!("unknown kind {other:?}")),
    };
    let tags = s
        .tags
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| match v {
            serde_json::Value::String(t) => Ok((k, t)),
            serde_json::Value::Number(n) => Ok((k, n.to_string())),
            serde_json::Value::Bool(b) => Ok((k, b.to_string())),
            _ => Err(format!("tag {k:?} is not a string")),
        })
        .collect::<std::result::Result<_, _>>()?;
    Ok(proto::Span {
        trace_id: hex_id("traceId", s.trace_id.as_deref(), 32)?,
        parent_id: hex_id("parentId", s.parent_id.as_deref(), 16)?,
        id: hex_id("id", s.id.as_deref(), 16)?,
        kind: kind as i32,
        name: s.name.unwrap_or_default(),
        timestamp: s.timestamp.unwrap_or(0),
        duration: s.duration.unwrap_or(0),
        local_endpoint: s.local_endpoint.map(endpoint).transpose()?,
        remote_endpoint: s.remote_endpoint.map(endpoint).transpose()?,
        annotations: s
            .annotations
            .unwrap_or_default()
            .into_iter()
            .map(|a| proto::Annotation {
                timestamp: a.timestamp.unwrap_or(0),
                value: a.value.unwrap_or_default(),
            })
            .collect(),
        tags,
        debug: s.debug.unwrap_or(false),
        shared: s.shared.unwrap_or(false),
    })
}

/// Hex of at most `max` digits, left-padded with zeros to a whole id (8 or
/// 16 bytes), as Zipkin normalises ids. Absent or empty stays empty (and is
/// then rejected per span by validation, or means "no parent").
fn hex_id(field: &str, text: Option<&str>, max: usize) -> std::result::Result<Vec<u8>, String> {
    let t = text.unwrap_or("");
    if t.is_empty() {
        return Ok(Vec::new());
    }
    if t.len() > max || !t.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(format!("{field} {t:?} is not {max} or fewer hex digits"));
    }
    let width = if t.len() <= 16 { 16 } else { 32 };
    let padded = format!("{t:0>width$}");
    hex::decode(padded).map_err(|e| format!("{field}: {e}"))
}

fn endpoint(e: JsonEndpoint) -> std::result::Result<proto::Endpoint, String> {
    let ipv4 = match e.ipv4.as_deref().filter(|t| !t.is_empty()) {
        None => Vec::new(),
        Some(t) => t
            .parse::<Ipv4Addr>()
            .map_err(|_| format!("ipv4 {t:?} is not an IPv4 address"))?
            .octets()
            .to_vec(),
    };
    let ipv6 = match e.ipv6.as_deref().filter(|t| !t.is_empty()) {
        None => Vec::new(),
        Some(t) => t
            .parse::<Ipv6Addr>()
            .map_err(|_| format!("ipv6 {t:?} is not an IPv6 address"))?
            .octets()
            .to_vec(),
    };
    Ok(proto::Endpoint {
        service_name: e.service_name.unwrap_or_default(),
        ipv4,
        ipv6,
        port: e.port.unwrap_or(0),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_hex_and_left_padded() {
        let spans = parse(
            br#"[{"traceId":"A1B2","id":"1","parentId":null,"timestamp":5},
                 {"traceId":"463ac35c9f6413ad48485a3953bb6124","id":"00000000000000ff"}]"#,
        )
        .unwrap();
        assert_eq!(hex::encode(&spans[0].trace_id), "000000000000a1b2");
        assert_eq!(hex::encode(&spans[0].id), "0000000000000001");
        assert!(spans[0].parent_id.is_empty());
        assert_eq!(spans[1].trace_id.len(), 16);
        assert_eq!(hex::encode(&spans[1].id), "00000000000000ff");
    }

    #[test]
    fn bad_input_names_the_span_and_field() {
        let cases: [(&[u8], &str); 7] = [
            (b"{not json", "invalid Zipkin JSON"),
            (br#"{"traceId":"1"}"#, "invalid Zipkin JSON"),
            (
                br#"[{"traceId":"xyz","id":"1"}]"#,
                "span 0: traceId \"xyz\"",
            ),
            (
                br#"[{"traceId":"1","id":"12345678901234567"}]"#,
                "span 0: id",
            ),
            (
                br#"[{},{"traceId":"1","id":"1","kind":"SIDEWAYS"}]"#,
                "span 1: unknown kind",
            ),
            (br#"[{"timestamp":"soon"}]"#, "invalid type"),
            (br#"[{"localEndpoint":{"ipv4":"1.2.3"}}]"#, "ipv4 \"1.2.3\""),
        ];
        for (body, want) in cases {
            let e = parse(body).unwrap_err();
            assert!(matches!(e, Error::InvalidArgument(_)), "{e}");
            assert!(e.to_string().contains(want), "{want:?} not in {e}");
        }
    }

    #[test]
    fn fields_kinds_endpoints_and_lenient_tags() {
        let spans = parse(
            br#"[{"traceId":"1","id":"2","kind":"server","name":"get","timestamp":10,"duration":3,
                  "localEndpoint":{"serviceName":"api","ipv4":"10.0.0.1","ipv6":"::1","port":8080},
                  "remoteEndpoint":{"serviceName":"web"},
                  "annotations":[{"timestamp":11,"value":"ws"}],
                  "tags":{"a":"b","n":7,"t":true},"debug":true,"shared":true,"extra":1}]"#,
        )
        .unwrap();
        let s = &spans[0];
        assert_eq!(s.kind, proto::span::Kind::Server as i32);
        assert_eq!((s.timestamp, s.duration), (10, 3));
        let l = s.local_endpoint.as_ref().unwrap();
        assert_eq!(l.ipv4, vec![10, 0, 0, 1]);
        assert_eq!(l.ipv6.len(), 16);
        assert_eq!(l.port, 8080);
        assert_eq!(s.remote_endpoint.as_ref().unwrap().service_name, "web");
        assert_eq!(s.annotations[0].value, "ws");
        assert_eq!(s.tags["n"], "7");
        assert_eq!(s.tags["t"], "true");
        assert!(s.debug && s.shared);
    }
}
