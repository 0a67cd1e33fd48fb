//! CPU cost of the ingest path on the load generator's pre-encoded OTLP
//! requests: protobuf decode alone (the raw ceiling), decode + conversion
//! into the span model, and the generator's own per-request patching.
//! Throughput is in spans. Run: `cargo bench --bench ingest`.

use std::time::Duration;

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use prost::Message;
use strand::loadgen::{build_request_pool, TopologyConfig};
use strand::otlp::convert::spans_from_proto;
use strand::otlp::proto::collector::trace::v1::ExportTraceServiceRequest;

fn ingest(c: &mut Criterion) {
    let pool = build_request_pool(&TopologyConfig::default(), 16, 512, 1);
    let spans = pool.total_spans() as u64;
    eprintln!(
        "ingest bench: {} requests, {spans} spans, {:.0} B/span encoded",
        pool.requests.len(),
        pool.avg_span_bytes()
    );
    let mut g = c.benchmark_group("ingest");
    g.sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    g.throughput(Throughput::Elements(spans));
    g.bench_function("decode", |b| {
        b.iter(|| {
            for r in &pool.requests {
                black_box(ExportTraceServiceRequest::decode(r.bytes.clone()).ok());
            }
        })
    });
    g.bench_function("decode_convert", |b| {
        b.iter(|| {
            for r in &pool.requests {
                if let Ok(req) = ExportTraceServiceRequest::decode(r.bytes.clone()) {
                    black_box(spans_from_proto(&req.resource_spans));
                }
            }
        })
    });
    g.bench_function("loadgen_patch", |b| {
        let mut seq = 0u64;
        b.iter(|| {
            for r in &pool.requests {
                seq += 1;
                black_box(r.patched(seq, 1_000));
            }
        })
    });
    g.finish();
}

criterion_group!(benches, ingest);
criterion_main!(benches);
