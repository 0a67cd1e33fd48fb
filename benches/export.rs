//! Parquet export throughput (spans/s) and size (bytes/span) on
//! loadgen-realistic traces, with the raw OTLP decode of the same traces as
//! the in-run baseline. Prints `BYTES_PER_SPAN <case> <value>` lines for
//! scripts/bench.sh. Run: `cargo bench --bench export`.

use std::time::Duration;

use criterion::{black_box, criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use prost::Message;
use strand::export::parquet::sort_spans;
use strand::export::{encode_to_vec, schema, WriteOptions};
use strand::loadgen::{build_request_pool, synthetic_spans, TopologyConfig};
use strand::model::Span;
use strand::otlp::proto::collector::trace::v1::ExportTraceServiceRequest;

const SPANS: usize = 100_000;

fn export(c: &mut Criterion) {
    let cases = [
        ("realistic", TopologyConfig::default()),
        (
            "unpadded",
            TopologyConfig {
                span_bytes: 0,
                ..Default::default()
            },
        ),
    ];
    let mut g = c.benchmark_group("export");
    g.sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5));
    for (name, cfg) in cases {
        let spans = synthetic_spans(&cfg, SPANS, 2, 1_764_180_000_000_000_000);
        let opts = WriteOptions::default();
        let size = encode_to_vec(&mut spans.clone(), &opts)
            .map(|b| b.len())
            .unwrap_or(0);
        println!(
            "BYTES_PER_SPAN {name} {:.2}",
            size as f64 / spans.len() as f64
        );
        g.throughput(Throughput::Elements(spans.len() as u64));
        // Dropping the spans is left out of every timing (returned, then
        // dropped by criterion outside the measurement).
        g.bench_function(format!("parquet_{name}"), |b| {
            b.iter_batched(
                || spans.clone(),
                |mut s| {
                    black_box(encode_to_vec(&mut s, &opts).ok());
                    s
                },
                BatchSize::LargeInput,
            )
        });
        if name == "realistic" {
            // Phases of the write, for the breakdown in docs/BENCHMARKS.md.
            g.bench_function("phase_sort", |b| {
                b.iter_batched(
                    || spans.clone(),
                    |mut s| {
                        sort_spans(&mut s);
                        s
                    },
                    BatchSize::LargeInput,
                )
            });
            let schema = schema::schema(&opts.typed_keys);
            let mut sorted = spans.clone();
            sort_spans(&mut sorted);
            g.bench_function("phase_arrow_convert", |b| {
                b.iter(|| {
                    for part in sorted.chunks(16 * 1024) {
                        let refs: Vec<&Span> = part.iter().collect();
                        black_box(schema::to_batch(&schema, &opts.typed_keys, &refs).ok());
                    }
                })
            });
        }
    }
    let pool = build_request_pool(&TopologyConfig::default(), 16, 512, 1);
    g.throughput(Throughput::Elements(pool.total_spans() as u64));
    g.bench_function("otlp_decode_baseline", |b| {
        b.iter(|| {
            for r in &pool.requests {
                black_box(ExportTraceServiceRequest::decode(r.bytes.clone()).ok());
            }
        })
    });
    g.finish();
}

criterion_group!(benches, export);
criterion_main!(benches);
