//! The read path (records walked in place, per-file slots, the cache)
//! against the whole-record reference on random stores: the same answer
//! cold, warm, after more appends to a cached raw file, after janitor
//! runs, and with the cache off.

use std::sync::atomic::{AtomicU64, Ordering};

use proptest::prelude::*;

use super::super::*;
use crate::model::{SpanId, SpanKind, StatusCode, TraceId};
use crate::spanmetrics::{Exemplar, MetricsReader, RangeQuery};

struct TestClock(AtomicU64);

impl Clock for TestClock {
    fn now_ns(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }
}

const T0: u64 = 20_000 * 86_400;

fn opts(cache: usize) -> Options {
    Options {
        resolution_s: 10,
        down_1m_after_s: 3 * 3600,
        down_1h_after_s: 86_400,
        retention_s: 2 * 86_400,
        compact_after_s: 120,
        read_cache_bytes: cache,
    }
}

/// (service, operation, kind, status, seconds after T0, calls, bucket,
/// exemplar time): one record.
type Rec = (usize, usize, usize, usize, u64, u64, usize, u64);

fn rec() -> impl Strategy<Value = Rec> {
    (
        0..2usize,
        0..3usize,
        0..2usize,
        0..2usize,
        0..8 * 3600u64,
        1..40u64,
        0..25usize,
        0..3u64,
    )
}

fn to_point(r: &Rec, seq: u64) -> (SeriesKey, Point) {
    let &(svc, op, kind, status, at, calls, bucket, ex_t) = r;
    let key = SeriesKey {
        service: ["shop", "cart"][svc].into(),
        operation: format!("op{op}"),
        kind: [SpanKind::Server, SpanKind::Client][kind],
        status: [StatusCode::Unset, StatusCode::Error][status],
    };
    let mut p = point::empty((T0 + at) * NS);
    p.calls = calls;
    p.errors = calls * status as u64;
    p.duration_sum_ns = calls * 1000 + seq;
    p.buckets[bucket] = calls;
    // Few distinct times, so exemplar ties between records are common.
    p.exemplars[bucket] = Some(Exemplar {
        trace_id: TraceId([seq as u8; 16]),
        span_id: SpanId(seq.to_le_bytes()),
        duration_ns: seq,
        time_ns: ex_t,
    });
    (key, p)
}

/// (service or all, kinds, start after T0, length, step): one query.
fn query() -> impl Strategy<Value = (Option<usize>, usize, u64, u64, usize)> {
    (
        prop::option::of(0..2usize),
        0..3usize,
        0..8 * 3600u64,
        1..10 * 3600u64,
        0..6usize,
    )
}

fn to_query(q: &(Option<usize>, usize, u64, u64, usize)) -> RangeQuery {
    let &(svc, kinds, start, len, step) = q;
    RangeQuery {
        service: svc.map(|s| ["shop", "cart"][s].to_string()),
        kinds: [
            vec![],
            vec![SpanKind::Server],
            vec![SpanKind::Client, SpanKind::Server, SpanKind::Client],
        ][kinds]
            .clone(),
        start_ns: (T0 + start) * NS,
        end_ns: (T0 + start + len) * NS + 7,
        step_ns: [1, 10, 70, 1800, 3600, 86_400][step] * NS,
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]
    #[test]
    fn reads_equal_the_whole_record_reference(
        batches in prop::collection::vec(prop::collection::vec(rec(), 1..12), 1..7),
        janitor_at in prop::collection::vec(any::<bool>(), 7),
        queries in prop::collection::vec(query(), 1..5),
        cache_on in any::<bool>(),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let clock = Arc::new(TestClock(AtomicU64::new(0)));
        let store = MetricsStore::open(
            dir.path(),
            opts(if cache_on { 1 << 20 } else { 0 }),
            clock.clone(),
        )
        .unwrap();
        let mut seq = 0;
        for (i, batch) in batches.iter().enumerate() {
            // Time moves on, so later batches are late data for hours the
            // janitor already merged, or the current raw hour grown.
            clock.0.store((T0 + 6 * 3600 + i as u64 * 1200) * NS, Ordering::SeqCst);
            let recs = batch.iter().map(|r| {
                seq += 1;
                to_point(r, seq)
            });
            store.append(recs.collect(), &Source::default()).unwrap();
            if janitor_at[i] {
                store.run_janitor().unwrap();
            }
            for q in &queries {
                let q = to_query(q);
                let want = store.range_reference(&q).unwrap();
                prop_assert_eq!(&store.range(&q).unwrap(), &want, "cold {:?}", q);
                prop_assert_eq!(&store.range(&q).unwrap(), &want, "warm {:?}", q);
            }
        }
        // Retention cuts through what is cached.
        clock.0.store((T0 + 2 * 86_400 + 4 * 3600) * NS, Ordering::SeqCst);
        for q in &queries {
            let q = to_query(q);
            prop_assert_eq!(store.range(&q).unwrap(), store.range_reference(&q).unwrap());
        }
    }
}

#[test]
fn a_cached_raw_file_reads_on_and_a_rewritten_one_is_read_again() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(TestClock(AtomicU64::new((T0 + 100) * NS)));
    let store = MetricsStore::open(dir.path(), opts(1 << 20), clock).unwrap();
    let q = RangeQuery {
        service: Some("shop".into()),
        start_ns: T0 * NS,
        end_ns: (T0 + 3600) * NS,
        step_ns: 3600 * NS,
        ..Default::default()
    };
    let calls = |s: &MetricsStore| s.range(&q).unwrap()[0].1[0].calls;
    let r = |calls| (0, 0, 0, 0, 10, calls, 3, 1);
    store
        .append(vec![to_point(&r(5), 1)], &Source::default())
        .unwrap();
    assert_eq!(calls(&store), 5);
    assert_eq!(store.read_cache_usage().0, 1);
    store
        .append(vec![to_point(&r(7), 2)], &Source::default())
        .unwrap();
    assert_eq!(calls(&store), 12, "the appended block is read on");
    // The last block is cut and another one written in its place (what a
    // failed append's roll-back and the next append do): the bytes where
    // the cached read ended no longer match, so the file is read again.
    let path = store.visible.read()[0].path.clone();
    let mut bytes = fs::read(&path).unwrap();
    let (blocks, _) = codec::decode_blocks(&bytes, &|_| true);
    let second = codec::encode_block(&Source::default(), &blocks[1].records).len();
    bytes.truncate(bytes.len() - second);
    let mut p = blocks[1].records[0].clone();
    p.1.calls = 9;
    p.1.buckets[3] = 9;
    bytes.extend(codec::encode_block(&Source::default(), &[p]));
    fs::write(&path, &bytes).unwrap();
    assert_eq!(calls(&store), 14);
    assert_eq!(store.range(&q).unwrap(), store.range_reference(&q).unwrap());
}
