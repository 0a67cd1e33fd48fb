use super::*;
use crate::config::Config;
use crate::ingest::zipkin::{decode_json, decode_protobuf};
use crate::pipeline::Processor;
use prost::Message as _;

fn spans_of(req: &ExportTraceServiceRequest) -> Vec<(&str, &Span)> {
    let mut out = Vec::new();
    for rs in &req.resource_spans {
        let service = rs.resource.as_ref().unwrap().attributes[0]
            .value
            .as_ref()
            .and_then(|v| match &v.value {
                Some(any_value::Value::StringValue(s)) => Some(s.as_str()),
                _ => None,
            })
            .unwrap();
        for ss in &rs.scope_spans {
            out.extend(ss.spans.iter().map(|s| (service, s)));
        }
    }
    out
}

fn attr<'a>(s: &'a Span, key: &str) -> Option<&'a any_value::Value> {
    s.attributes
        .iter()
        .find(|a| a.key == key)
        .and_then(|a| a.value.as_ref()?.value.as_ref())
}

fn by_name<'a>(spans: &[(&'a str, &'a Span)], name: &str) -> (&'a str, &'a Span) {
    *spans.iter().find(|(_, s)| s.name == name).unwrap()
}

#[test]
fn ids_times_kinds_and_services() {
    let req = decode_json(
        br#"[
        {"traceId":"48485a3953bb6124","id":"1","name":"root","kind":"SERVER","timestamp":1700000000000000,"duration":1500,
         "localEndpoint":{"serviceName":"front"}},
        {"traceId":"463ac35c9f6413ad48485a3953bb6124","id":"2","parentId":"1","name":"call","kind":"CLIENT",
         "timestamp":1700000000000100,"duration":1,"localEndpoint":{"serviceName":"front"}},
        {"traceId":"1","id":"3","name":"p","kind":"PRODUCER","timestamp":1},
        {"traceId":"1","id":"4","name":"c","kind":"CONSUMER","timestamp":1},
        {"traceId":"1","id":"5","name":"local","timestamp":1}]"#,
    )
    .unwrap();
    let spans = spans_of(&req);
    let (svc, root) = by_name(&spans, "root");
    assert_eq!(svc, "front");
    assert_eq!(
        hex::encode(&root.trace_id),
        "000000000000000048485a3953bb6124"
    );
    assert_eq!(root.start_time_unix_nano, 1_700_000_000_000_000_000);
    assert_eq!(
        root.end_time_unix_nano - root.start_time_unix_nano,
        1_500_000
    );
    assert_eq!(root.kind, span::SpanKind::Server as i32);
    assert!(root.parent_span_id.is_empty());
    let (_, call) = by_name(&spans, "call");
    assert_eq!(
        hex::encode(&call.trace_id),
        "463ac35c9f6413ad48485a3953bb6124"
    );
    assert_eq!(hex::encode(&call.parent_span_id), "0000000000000001");
    assert_eq!(call.kind, span::SpanKind::Client as i32);
    assert_eq!(by_name(&spans, "p").1.kind, span::SpanKind::Producer as i32);
    assert_eq!(by_name(&spans, "c").1.kind, span::SpanKind::Consumer as i32);
    let (svc, local) = by_name(&spans, "local");
    assert_eq!(local.kind, span::SpanKind::Internal as i32);
    assert_eq!(svc, UNKNOWN_SERVICE);
}

#[test]
fn shared_server_half_gets_its_own_id_under_the_client() {
    let req = decode_json(
        br#"[
        {"traceId":"a","id":"b","parentId":"c","name":"client","kind":"CLIENT","timestamp":10,"duration":9,
         "localEndpoint":{"serviceName":"front"}},
        {"traceId":"a","id":"b","parentId":"c","name":"server","kind":"SERVER","shared":true,"timestamp":11,"duration":7,
         "localEndpoint":{"serviceName":"back"}},
        {"traceId":"a","id":"d","parentId":"b","name":"db","kind":"CLIENT","timestamp":12,"duration":1,
         "localEndpoint":{"serviceName":"back"}}]"#,
    )
    .unwrap();
    let spans = spans_of(&req);
    let (_, client) = by_name(&spans, "client");
    let (_, server) = by_name(&spans, "server");
    let (_, db) = by_name(&spans, "db");
    assert_eq!(hex::encode(&client.span_id), "000000000000000b");
    assert_ne!(server.span_id, client.span_id);
    assert_eq!(
        server.span_id,
        derived_id(&server.trace_id, &client.span_id)
    );
    assert_eq!(server.parent_span_id, client.span_id);
    assert_eq!(
        attr(server, SHARED_ID_KEY),
        Some(&any_value::Value::StringValue("000000000000000b".into()))
    );
    // The server's own child follows it; the client keeps its parent.
    assert_eq!(db.parent_span_id, server.span_id);
    assert_eq!(hex::encode(&client.parent_span_id), "000000000000000c");
    // The same input gets the same ids (resends deduplicate).
    let again =
        decode_json(br#"[{"traceId":"a","id":"b","shared":true,"kind":"SERVER","timestamp":11}]"#)
            .unwrap();
    assert_eq!(spans_of(&again)[0].1.span_id, server.span_id);
}

#[test]
fn endpoints_become_collector_attributes() {
    let req = decode_json(
        br#"[{"traceId":"1","id":"2","timestamp":1,"kind":"CLIENT",
          "localEndpoint":{"serviceName":"front","ipv4":"10.1.2.3","port":8080},
          "remoteEndpoint":{"serviceName":"db","ipv6":"2001:db8::1","port":5432},
          "tags":{"peer.service":"from-tag"}}]"#,
    )
    .unwrap();
    let s = spans_of(&req)[0].1;
    let st = |v: &str| Some(any_value::Value::StringValue(v.into()));
    assert_eq!(attr(s, "net.host.ip").cloned(), st("10.1.2.3"));
    assert_eq!(
        attr(s, "net.host.port").cloned(),
        Some(any_value::Value::IntValue(8080))
    );
    assert_eq!(attr(s, "net.peer.ip").cloned(), st("2001:db8::1"));
    assert_eq!(
        attr(s, "net.peer.port").cloned(),
        Some(any_value::Value::IntValue(5432))
    );
    // A tag of the same name wins.
    assert_eq!(attr(s, "peer.service").cloned(), st("from-tag"));
}

#[test]
fn annotations_tags_scope_and_status() {
    let req = decode_json(
        br#"[{"traceId":"1","id":"2","timestamp":5,"name":"a",
          "annotations":[{"timestamp":6,"value":"cache miss"}],
          "tags":{"http.method":"GET","error":"connection refused","otel.scope.name":"lib","otel.scope.version":"1.2"}},
          {"traceId":"1","id":"3","timestamp":5,"name":"b",
          "tags":{"otel.status_code":"ERROR","otel.status_description":"boom","error":"boom"}},
          {"traceId":"1","id":"4","timestamp":5,"name":"c","tags":{"otel.status_code":"OK"}},
          {"traceId":"1","id":"5","timestamp":5,"name":"d","tags":{"error":"true"}},
          {"traceId":"1","id":"6","timestamp":5,"name":"e"},
          {"traceId":"1","id":"7","timestamp":5,"name":"f","tags":{"otel.status_code":"ERROR","error":"timeout"}}]"#,
    )
    .unwrap();
    let scope = req.resource_spans[0]
        .scope_spans
        .iter()
        .find_map(|ss| ss.scope.as_ref().filter(|s| s.name == "lib"))
        .unwrap();
    assert_eq!(scope.version, "1.2");
    let spans = spans_of(&req);
    let (_, a) = by_name(&spans, "a");
    assert_eq!(a.events.len(), 1);
    assert_eq!(a.events[0].name, "cache miss");
    assert_eq!(a.events[0].time_unix_nano, 6_000);
    assert_eq!(
        attr(a, "http.method").cloned(),
        Some(any_value::Value::StringValue("GET".into()))
    );
    assert!(attr(a, "otel.scope.name").is_none());
    assert!(
        attr(a, "error").is_none(),
        "the status carries the error tag"
    );
    let st = a.status.as_ref().unwrap();
    assert_eq!((st.code, st.message.as_str()), (2, "connection refused"));
    let (_, b) = by_name(&spans, "b");
    let st = b.status.as_ref().unwrap();
    assert_eq!((st.code, st.message.as_str()), (2, "boom"));
    assert!(attr(b, "otel.status_code").is_none());
    assert_eq!(by_name(&spans, "c").1.status.as_ref().unwrap().code, 1);
    let d = by_name(&spans, "d").1.status.as_ref().unwrap();
    assert_eq!((d.code, d.message.as_str()), (2, ""));
    assert!(by_name(&spans, "e").1.status.is_none());
    let f = by_name(&spans, "f").1.status.as_ref().unwrap();
    assert_eq!((f.code, f.message.as_str()), (2, "timeout"));
}

#[test]
fn debug_spans_keep_their_trace_through_sampling() {
    let mut cfg = Config::default();
    cfg.sampling.ratio = 0.0;
    cfg.sampling.keep_errors = false;
    let p = Processor::new(&cfg);
    let req = decode_json(
        br#"[{"traceId":"1","id":"2","timestamp":5,"debug":true},
             {"traceId":"1","id":"3","parentId":"2","timestamp":5},
             {"traceId":"9","id":"4","timestamp":5}]"#,
    )
    .unwrap();
    let out = p.process(req);
    assert_eq!(out.sampled_out, 1);
    assert_eq!(out.spans.len(), 2);
    assert!(out.spans.iter().all(|s| s.trace_id.0[15] == 1));
}

#[test]
fn protobuf_and_json_agree() {
    let list = proto::ListOfSpans {
        spans: vec![proto::Span {
            trace_id: vec![7; 16],
            id: vec![1; 8],
            parent_id: vec![2; 8],
            kind: proto::span::Kind::Server as i32,
            name: "get".into(),
            timestamp: 1_000,
            duration: 20,
            local_endpoint: Some(proto::Endpoint {
                service_name: "api".into(),
                ipv4: vec![127, 0, 0, 1],
                ..Default::default()
            }),
            annotations: vec![proto::Annotation {
                timestamp: 1_001,
                value: "ws".into(),
            }],
            tags: [("k".to_string(), "v".to_string())].into(),
            ..Default::default()
        }],
    };
    let from_pb = decode_protobuf(&list.encode_to_vec()).unwrap();
    let from_json = decode_json(
        br#"[{"traceId":"07070707070707070707070707070707","id":"0101010101010101","parentId":"0202020202020202",
          "kind":"SERVER","name":"get","timestamp":1000,"duration":20,
          "localEndpoint":{"serviceName":"api","ipv4":"127.0.0.1"},
          "annotations":[{"timestamp":1001,"value":"ws"}],"tags":{"k":"v"}}]"#,
    )
    .unwrap();
    assert_eq!(from_pb, from_json);
    let e = decode_protobuf(b"\x0a\xff").unwrap_err();
    assert!(e.to_string().contains("invalid Zipkin protobuf"), "{e}");
}
