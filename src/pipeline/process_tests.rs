use super::*;
use crate::otlp::proto::common::v1 as pc;
use crate::otlp::proto::resource::v1 as pr;
use crate::otlp::proto::trace::v1 as pt;

fn sv(s: &str) -> Option<pc::AnyValue> {
    Some(pc::AnyValue {
        value: Some(pc::any_value::Value::StringValue(s.into())),
    })
}

fn span(trace: u8, id: u8, error: bool) -> pt::Span {
    pt::Span {
        trace_id: vec![trace; 16],
        span_id: vec![id; 8],
        name: "op".into(),
        start_time_unix_nano: 100,
        end_time_unix_nano: 200,
        attributes: vec![pc::KeyValue {
            key: "card".into(),
            value: sv("4111 1111 1111 1111"),
            ..Default::default()
        }],
        status: Some(pt::Status {
            code: if error { 2 } else { 0 },
            message: String::new(),
        }),
        ..Default::default()
    }
}

fn request(spans: Vec<pt::Span>) -> ExportTraceServiceRequest {
    ExportTraceServiceRequest {
        resource_spans: vec![pt::ResourceSpans {
            resource: Some(pr::Resource {
                attributes: vec![pc::KeyValue {
                    key: "owner".into(),
                    value: sv("ops@example.com"),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            scope_spans: vec![pt::ScopeSpans {
                spans,
                ..Default::default()
            }],
            schema_url: String::new(),
        }],
    }
}

#[test]
fn rejects_bad_spans_keeps_the_rest_and_explains() {
    let mut bad = (0..5).map(|i| span(1, 10 + i, false)).collect::<Vec<_>>();
    for s in &mut bad {
        s.trace_id = vec![0; 16];
    }
    let mut long = span(2, 2, false);
    long.attributes.push(pc::KeyValue {
        key: "big".into(),
        value: sv(&"x".repeat(100)),
        ..Default::default()
    });
    let mut spans = vec![span(1, 1, false), long];
    spans.extend(bad);
    let mut cfg = Config::default();
    cfg.ingest.max_attribute_value_bytes = 20;
    let out = Processor::new(&cfg).process(request(spans));
    assert_eq!(
        (out.received, out.rejected, out.spans.len(), out.truncated),
        (7, 5, 2, 1)
    );
    assert!(
        out.message
            .starts_with("rejected 5 of 7 spans: span 0a0a0a0a0a0a0a0a: trace_id is all zero"),
        "{}",
        out.message
    );
    assert!(
        out.message.contains("; ...")
            && out
                .message
                .contains("truncated 1 values longer than 20 bytes"),
        "{}",
        out.message
    );
    // Scrubbed: span and resource attributes (rejected spans are not scanned).
    assert_eq!(
        out.spans[0].attributes[0].value,
        crate::model::AttrValue::Str("[REDACTED:card]".into())
    );
    assert_eq!(
        out.spans[0].resource.attributes[0].value,
        crate::model::AttrValue::Str("[REDACTED:email]".into())
    );
    assert_eq!(out.redacted, 3);
}

#[test]
fn sampling_keeps_whole_traces_and_error_traces() {
    let mut cfg = Config::default();
    cfg.sampling.ratio = 0.0;
    cfg.sampling.keep_errors = true;
    let p = Processor::new(&cfg);
    let spans = vec![span(1, 1, false), span(1, 2, true), span(2, 3, false)];
    let out = p.process(request(spans));
    assert_eq!(out.sampled_out, 1);
    assert_eq!(
        out.spans.iter().map(|s| s.span_id.0[0]).collect::<Vec<_>>(),
        vec![1, 2]
    );
    assert!(
        out.message.is_empty(),
        "sampling is not rejection: {}",
        out.message
    );
}

#[test]
fn the_entry_span_decides_for_its_trace_and_th_is_raised() {
    use crate::config::SamplingRule;
    let mut cfg = Config::default();
    cfg.sampling.rules = vec![
        SamplingRule {
            service: "unknown_service".into(),
            operation: "entry".into(),
            ratio: 0.5,
        },
        SamplingRule {
            service: "unknown_service".into(),
            operation: String::new(),
            ratio: 1.0,
        },
    ];
    let p = Processor::new(&cfg);
    // R = 2^54 (0.25 of the range): below 0.5's threshold, so dropped
    // at 0.5; its child (ratio 1.0 on its own) goes with it.
    let mut low = vec![0u8; 16];
    low[9] = 0x40;
    let mut high = vec![0u8; 16];
    high[9] = 0xc0;
    let mk = |id: &Vec<u8>, sid: u8, name: &str, parent: bool, ts: &str| pt::Span {
        trace_id: id.clone(),
        span_id: vec![sid; 8],
        parent_span_id: if parent { vec![9; 8] } else { vec![] },
        name: name.into(),
        trace_state: ts.into(),
        flags: 0x302,
        start_time_unix_nano: 1,
        end_time_unix_nano: 2,
        ..Default::default()
    };
    let spans = vec![
        mk(&low, 1, "entry", false, ""),
        mk(&low, 2, "child", true, ""),
        mk(&high, 3, "entry", false, "ot=th:4"),
        mk(&high, 4, "child", true, "ot=th:4"),
    ];
    let out = p.process(request(spans));
    assert_eq!(out.sampled_out, 2);
    let kept: Vec<u8> = out.spans.iter().map(|s| s.span_id.0[0]).collect();
    assert_eq!(kept, vec![3, 4]);
    assert!(
        out.spans.iter().all(|s| s.trace_state == "ot=th:8"),
        "th raised from 4 (p=0.75) to 8 (p=0.5): {:?}",
        out.spans[0].trace_state
    );
}

#[test]
fn span_metrics_count_every_valid_span_before_sampling() {
    let mut cfg = Config::default();
    cfg.sampling.ratio = 0.0;
    cfg.sampling.keep_errors = true;
    let p = Processor::new(&cfg);
    let hub = crate::spanmetrics::accum::Hub::new(10_000_000_000, 100);
    let acc = hub.worker();
    let mut invalid = span(3, 9, false);
    invalid.trace_id = vec![0; 16];
    let spans = vec![
        span(1, 1, false),
        span(1, 2, true),
        span(2, 3, false),
        invalid,
    ];
    let out = p.process_counting(request(spans), Some(&mut acc.lock()));
    assert_eq!((out.spans.len(), out.sampled_out, out.rejected), (2, 1, 1));
    let pts = hub.drain();
    let calls: u64 = pts.iter().map(|(_, p)| p.calls).sum();
    let errors: u64 = pts.iter().map(|(_, p)| p.errors).sum();
    assert_eq!(
        (calls, errors),
        (3, 1),
        "sampled-out spans count, invalid ones do not"
    );
    let exemplars: Vec<u8> = pts
        .iter()
        .flat_map(|(_, p)| p.exemplars.iter().flatten())
        .map(|e| e.trace_id.0[0])
        .collect();
    assert_eq!(exemplars.len(), 2);
    assert!(
        exemplars.iter().all(|&t| t == 1),
        "only kept traces: {exemplars:?}"
    );
    assert!(pts
        .iter()
        .all(|(k, _)| k.service == "unknown_service" && k.operation == "op"));
}

fn arb_span() -> impl proptest::strategy::Strategy<Value = pt::Span> {
    use proptest::prelude::*;
    let id = |n: usize| proptest::collection::vec(any::<u8>(), 0..n);
    (
        id(20),
        id(12),
        id(12),
        any::<u64>(),
        any::<u64>(),
        "\\PC{0,40}",
        any::<i32>(),
    )
        .prop_map(
            |(trace_id, span_id, parent_span_id, start, end, text, code)| pt::Span {
                trace_id,
                span_id,
                parent_span_id,
                start_time_unix_nano: start,
                end_time_unix_nano: end,
                name: text.clone(),
                kind: code,
                attributes: vec![pc::KeyValue {
                    key: text.clone(),
                    value: sv(&text),
                    ..Default::default()
                }],
                status: Some(pt::Status {
                    code,
                    message: text,
                }),
                ..Default::default()
            },
        )
}

proptest::proptest! {
    #[test]
    fn arbitrary_spans_never_panic_and_counts_add_up(
        spans in proptest::collection::vec(arb_span(), 0..20),
        ratio in 0.0f64..=1.0,
    ) {
        let mut cfg = Config::default();
        cfg.sampling.ratio = ratio;
        cfg.ingest.max_attribute_value_bytes = 8;
        let n = spans.len() as u64;
        let out = Processor::new(&cfg).process(request(spans));
        proptest::prop_assert_eq!(out.received, n);
        proptest::prop_assert_eq!(out.rejected + out.sampled_out + out.spans.len() as u64, n);
        for s in &out.spans {
            proptest::prop_assert!(!s.trace_id.is_zero() && !s.span_id.is_zero() && s.end_ns >= s.start_ns);
        }
    }
}
