//! The store against a fake clock: appends read back, retention and
//! downsampling drop and merge exactly what they should, totals survive
//! retention and restarts, torn tails and interrupted merges are harmless.

use std::sync::atomic::{AtomicU64, Ordering};

use super::*;
use crate::model::{SpanKind, StatusCode};
use crate::spanmetrics::{MetricsReader, RangeQuery};

struct FakeClock(AtomicU64);

impl Clock for FakeClock {
    fn now_ns(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }
}

impl FakeClock {
    fn set_s(&self, s: u64) {
        self.0.store(s * NS, Ordering::SeqCst);
    }
}

const DAY: u64 = 86_400;
/// A day boundary far from the epoch.
const T0: u64 = 20_000 * DAY;

fn opts() -> Options {
    Options {
        resolution_s: 10,
        down_1m_after_s: 6 * 3600,
        down_1h_after_s: 7 * DAY,
        retention_s: 30 * DAY,
        compact_after_s: 120,
        read_cache_bytes: 64 << 20,
    }
}

fn key(op: &str) -> SeriesKey {
    SeriesKey {
        service: "shop".into(),
        operation: op.into(),
        kind: SpanKind::Server,
        status: StatusCode::Unset,
    }
}

fn pt(at_s: u64, calls: u64) -> Point {
    let mut p = point::empty(at_s * NS);
    p.calls = calls;
    p.errors = calls / 2;
    p.duration_sum_ns = calls * 1000;
    p.buckets[point::bucket_of(1000)] = calls;
    p
}

fn open(dir: &Path, clock: &Arc<FakeClock>) -> Arc<MetricsStore> {
    MetricsStore::open(dir, opts(), clock.clone()).unwrap()
}

fn all(s: &MetricsStore, step_s: u64) -> Vec<(u64, u64)> {
    let q = RangeQuery {
        service: Some("shop".into()),
        start_ns: 0,
        end_ns: u64::MAX / 2,
        step_ns: step_s * NS,
        ..Default::default()
    };
    let r = s.range(&q).unwrap();
    r.iter()
        .filter(|(k, _)| k.operation == "GET")
        .flat_map(|(_, pts)| pts.iter().map(|p| (p.start_ns / NS, p.calls)))
        .collect()
}

fn tiers(dir: &Path) -> Vec<u8> {
    let mut t: Vec<u8> = fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| FileMeta::parse(&e.unwrap().path()))
        .map(|f| f.tier)
        .collect();
    t.sort_unstable();
    t
}

#[test]
fn appends_read_back_per_step_and_survive_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(FakeClock(AtomicU64::new(0)));
    clock.set_s(T0 + 100);
    let s = open(dir.path(), &clock);
    s.append(
        vec![(key("GET"), pt(T0 + 3, 2)), (key("PUT"), pt(T0 + 3, 1))],
        &Source::default(),
    )
    .unwrap();
    s.append(vec![(key("GET"), pt(T0 + 7, 3))], &Source::default())
        .unwrap();
    s.append(vec![(key("GET"), pt(T0 + 25, 4))], &Source::default())
        .unwrap();
    assert_eq!(all(&s, 10), vec![(T0, 5), (T0 + 20, 4)]);
    assert_eq!(all(&s, 60), vec![(T0, 9)]);
    assert_eq!(s.services().unwrap(), vec!["shop"]);
    let totals = s.totals().unwrap();
    assert_eq!(totals.iter().map(|(_, p)| p.calls).sum::<u64>(), 10);
    drop(s);
    let s = open(dir.path(), &clock);
    assert_eq!(all(&s, 10), vec![(T0, 5), (T0 + 20, 4)]);
    assert_eq!(
        s.totals()
            .unwrap()
            .iter()
            .map(|(_, p)| p.calls)
            .sum::<u64>(),
        10
    );
    // Kinds filter and a window that excludes everything.
    let q = RangeQuery {
        kinds: vec![SpanKind::Client],
        start_ns: 0,
        end_ns: u64::MAX / 2,
        step_ns: NS,
        ..Default::default()
    };
    assert!(s.range(&q).unwrap().is_empty());
}

#[test]
fn downsampling_happens_exactly_at_its_age_and_keeps_every_count() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(FakeClock(AtomicU64::new(0)));
    clock.set_s(T0);
    let s = open(dir.path(), &clock);
    // One point in every 10 s window of the first hour: 1 call each.
    for w in 0..360 {
        s.append(vec![(key("GET"), pt(T0 + w * 10, 1))], &Source::default())
            .unwrap();
    }
    let hour_end = T0 + 3600;
    clock.set_s(hour_end + 119);
    assert_eq!(s.run_janitor().unwrap(), JanitorReport::default());
    clock.set_s(hour_end + 120);
    assert_eq!(s.run_janitor().unwrap().compacted, 1);
    assert_eq!(tiers(dir.path()), vec![0]);
    assert_eq!(all(&s, 10).len(), 360, "compaction keeps the resolution");

    clock.set_s(hour_end + 6 * 3600 - 1);
    assert_eq!(s.run_janitor().unwrap().downsampled, 0);
    assert_eq!(all(&s, 10).len(), 360);
    clock.set_s(hour_end + 6 * 3600);
    assert_eq!(s.run_janitor().unwrap().downsampled, 1);
    assert_eq!(tiers(dir.path()), vec![1]);
    let pts = all(&s, 10);
    assert_eq!(pts.len(), 60, "one point per minute");
    assert!(pts.iter().all(|&(t, c)| (t - T0) % 60 == 0 && c == 6));

    // Late data for the downsampled hour lands beside it and is merged in.
    s.append(vec![(key("GET"), pt(T0 + 5, 100))], &Source::default())
        .unwrap();
    assert_eq!(all(&s, 60)[0], (T0, 106));
    s.run_janitor().unwrap();
    assert_eq!(tiers(dir.path()), vec![1]);
    assert_eq!(all(&s, 60)[0], (T0, 106));

    let day_end = T0 + DAY;
    clock.set_s(day_end + 7 * DAY - 1);
    s.run_janitor().unwrap();
    assert_eq!(tiers(dir.path()), vec![1]);
    clock.set_s(day_end + 7 * DAY);
    assert_eq!(s.run_janitor().unwrap().downsampled, 1);
    assert_eq!(tiers(dir.path()), vec![2]);
    assert_eq!(all(&s, 10), vec![(T0, 460)], "the hour is one point");
    let t = s.totals().unwrap();
    assert_eq!(t[0].1.calls, 460);
    assert_eq!(
        t[0].1.errors, 50,
        "1 call per point: 0 errors each; 100/2 once"
    );
}

#[test]
fn retention_drops_exactly_the_old_days_and_totals_survive_it() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(FakeClock(AtomicU64::new(0)));
    clock.set_s(T0);
    let s = open(dir.path(), &clock);
    s.append(vec![(key("GET"), pt(T0 + 10, 1))], &Source::default())
        .unwrap();
    s.append(vec![(key("GET"), pt(T0 + DAY + 10, 2))], &Source::default())
        .unwrap();
    // Downsampled all the way, then the first day ages out.
    clock.set_s(T0 + 2 * DAY + 7 * DAY);
    s.run_janitor().unwrap();
    assert_eq!(tiers(dir.path()), vec![2, 2]);
    // A point is served until its window start is older than retention...
    clock.set_s(T0 + 30 * DAY);
    assert_eq!(all(&s, 3600).len(), 2);
    clock.set_s(T0 + 30 * DAY + 1);
    assert_eq!(all(&s, 3600), vec![(T0 + DAY, 2)]);
    // ...and its file deleted once all of the file's points are.
    clock.set_s(T0 + DAY + 30 * DAY - 1);
    assert_eq!(s.run_janitor().unwrap().retired, 0);
    assert_eq!(tiers(dir.path()), vec![2, 2]);
    clock.set_s(T0 + DAY + 30 * DAY);
    assert_eq!(s.run_janitor().unwrap().retired, 1);
    assert_eq!(tiers(dir.path()), vec![2]);
    assert_eq!(all(&s, 3600), vec![(T0 + DAY, 2)]);
    let total = |s: &MetricsStore| s.totals().unwrap()[0].1.calls;
    assert_eq!(total(&s), 3, "totals only grow");
    drop(s);
    let s = open(dir.path(), &clock);
    assert_eq!(total(&s), 3, "and survive a restart after retention");
    assert_eq!(all(&s, 3600), vec![(T0 + DAY, 2)]);
    // Appends older than retention are dropped.
    s.append(vec![(key("GET"), pt(T0, 50))], &Source::default())
        .unwrap();
    assert_eq!(total(&s), 3);
}

#[test]
fn a_torn_tail_is_cut_and_an_interrupted_merge_counts_nothing_twice() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(FakeClock(AtomicU64::new(0)));
    clock.set_s(T0);
    let s = open(dir.path(), &clock);
    s.append(vec![(key("GET"), pt(T0, 1))], &Source::default())
        .unwrap();
    s.append(vec![(key("GET"), pt(T0 + 10, 2))], &Source::default())
        .unwrap();
    drop(s);
    let raw = fs::read_dir(dir.path())
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let mut bytes = fs::read(&raw).unwrap();
    bytes.truncate(bytes.len() - 3);
    fs::write(&raw, &bytes).unwrap();
    let s = open(dir.path(), &clock);
    assert_eq!(all(&s, 10), vec![(T0, 1)], "the torn block is gone");
    s.append(vec![(key("GET"), pt(T0 + 20, 4))], &Source::default())
        .unwrap();
    drop(s);
    // A merge output written but its inputs not yet deleted (a crash
    // between the two): copy the inputs back after compaction.
    let saved: Vec<(PathBuf, Vec<u8>)> = fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .map(|p| (p.clone(), fs::read(&p).unwrap()))
        .collect();
    clock.set_s(T0 + 3600 + 120);
    let s = open(dir.path(), &clock);
    assert_eq!(s.run_janitor().unwrap().compacted, 1);
    drop(s);
    for (p, b) in &saved {
        fs::write(p, b).unwrap();
    }
    let s = open(dir.path(), &clock);
    assert_eq!(all(&s, 10), vec![(T0, 1), (T0 + 20, 4)]);
    assert_eq!(s.totals().unwrap()[0].1.calls, 5);
    assert_eq!(
        tiers(dir.path()),
        vec![0],
        "the shadowed inputs were deleted"
    );
}

#[test]
fn kafka_progress_is_stored_with_the_data() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(FakeClock(AtomicU64::new(0)));
    clock.set_s(T0);
    let s = open(dir.path(), &clock);
    let src = |seq: u64, off: u64| Source {
        producers: vec![(7, seq)],
        offsets: vec![(0, off)],
        gens: vec![],
    };
    s.append(vec![(key("GET"), pt(T0, 1))], &src(1, 10))
        .unwrap();
    s.append(Vec::new(), &src(2, 11)).unwrap();
    assert_eq!((s.producer_seq(7), s.offsets()), (Some(2), vec![(0, 11)]));
    clock.set_s(T0 + 40 * DAY);
    s.run_janitor().unwrap();
    assert!(all(&s, 10).is_empty());
    drop(s);
    let s = open(dir.path(), &clock);
    assert_eq!((s.producer_seq(7), s.offsets()), (Some(2), vec![(0, 11)]));
}
