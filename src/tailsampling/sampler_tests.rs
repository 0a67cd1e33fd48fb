use super::*;
use crate::config::{Config, IndexConfig, StorageConfig};
use crate::store::testutil::span;

fn cfg(extra: &str) -> Arc<TailSamplingConfig> {
    let c = Config::from_sources(
        &format!(
            "[sampling.tail]\nenabled = true\ndecision_wait_ms = 1000\nsettle_ms = 100\n{extra}\n[[sampling.tail.policies]]\nname = \"errors\"\ntype = \"status_code\"\nstatus_codes = [\"ERROR\"]\n"
        ),
        &[],
    )
    .unwrap();
    Arc::new(c.sampling.tail)
}

fn store(dir: &Path) -> Arc<HotStore> {
    let storage = StorageConfig {
        dir: dir.join("data"),
        writer_shards: 1,
        ..Default::default()
    };
    HotStore::open(&storage, &IndexConfig::default()).unwrap()
}

/// Trace `t` of `n` spans, one of them an error if `error`.
fn trace(t: u64, n: u64, error: bool) -> Vec<Span> {
    (0..n)
        .map(|i| {
            let mut s = span(t, i, "svc", "op");
            s.status.code = if error && i == n - 1 {
                crate::model::StatusCode::Error
            } else {
                crate::model::StatusCode::Unset
            };
            s
        })
        .collect()
}

#[test]
fn waits_until_quiet_then_keeps_errors_whole_and_follows_the_decision() {
    let dir = tempfile::tempdir().unwrap();
    let st = store(dir.path());
    let mut t = TailSampler::open(
        &dir.path().join("tail"),
        cfg(""),
        Quantiles::empty(),
        true,
        0,
    )
    .unwrap();
    // Children first: no root yet, so the long wait applies.
    let mut err = trace(1, 3, true);
    let root = err.remove(0);
    assert!(t.admit(Batch::new(err), 0).is_empty());
    assert!(t
        .admit(Batch::new(trace(2, 3, false)[1..].to_vec()), 0)
        .is_empty());
    t.sync().unwrap();
    assert!(
        t.take_due(500, &st).decisions.is_empty(),
        "not quiet for long enough"
    );
    // The root arrives: the short settle time applies from now.
    assert!(t.admit(Batch::new(vec![root]), 600).is_empty());
    let d = t.take_due(700, &st);
    assert_eq!(
        d.decisions,
        vec![(TraceId(trace(1, 1, false)[0].trace_id.0), true)]
    );
    assert_eq!(d.keep.len(), 3, "the whole error trace");
    t.applied(&d.decisions).unwrap();
    let d = t.take_due(1000, &st);
    assert_eq!(d.decisions.len(), 1);
    assert!(!d.decisions[0].1, "trace 2 has no error");
    assert!(d.keep.is_empty());
    t.applied(&d.decisions).unwrap();
    // Late spans follow the cached decisions.
    let late_keep = span(1, 7, "svc", "op");
    let late_drop = span(2, 7, "svc", "op");
    let stored = t.admit(Batch::new(vec![late_keep.clone(), late_drop]), 2000);
    assert_eq!(stored, vec![late_keep]);
    assert_eq!(t.waiting_traces(), 0);
}

#[test]
fn memory_pressure_decides_the_oldest_early() {
    let dir = tempfile::tempdir().unwrap();
    let st = store(dir.path());
    let mut t = TailSampler::open(
        &dir.path().join("tail"),
        cfg("max_pending_bytes = 1048576"),
        Quantiles::empty(),
        false,
        0,
    )
    .unwrap();
    let early = Counter::new("strand_tail_early_decisions_total", "", &[]);
    let before = early.get();
    let mut i = 0;
    while t.waiting_bytes() <= 1 << 20 {
        i += 1;
        t.admit(Batch::new(trace(i, 5, i == 1)), 0);
    }
    let d = t.take_due(0, &st);
    assert!(!d.decisions.is_empty(), "decided before they were due");
    assert_eq!(
        d.decisions[0].0,
        trace(1, 1, false)[0].trace_id,
        "oldest first"
    );
    assert!(
        d.decisions[0].1 && d.keep.len() == 5,
        "an early decision still keeps errors whole"
    );
    assert!(t.waiting_bytes() <= 1 << 20);
    assert_eq!(early.get() - before, d.decisions.len() as u64);
}

#[test]
fn waiting_traces_survive_a_restart_and_decided_ones_stay_decided() {
    let dir = tempfile::tempdir().unwrap();
    let st = store(dir.path());
    let log_dir = dir.path().join("tail");
    let mut t = TailSampler::open(&log_dir, cfg(""), Quantiles::empty(), true, 0).unwrap();
    t.admit(Batch::new(trace(1, 3, true)), 0);
    t.admit(Batch::new(trace(2, 2, false)), 0);
    t.sync().unwrap();
    let d = t.take_due(5000, &st);
    st.commit(0, vec![Batch::new(d.keep)]).unwrap();
    t.applied(&d.decisions).unwrap();
    t.admit(Batch::new(trace(3, 4, true)), 6000);
    t.sync().unwrap();
    // A crash: the sampler is gone without a word.
    drop(t);
    let mut t = TailSampler::open(&log_dir, cfg(""), Quantiles::empty(), true, 100).unwrap();
    assert_eq!(t.waiting_traces(), 1, "only trace 3 was waiting");
    let d = t.take_due(100_000, &st);
    assert_eq!(d.keep.len(), 4);
    // The cached decision of trace 1 came back from the log.
    let late = span(1, 9, "svc", "op");
    assert_eq!(t.admit(Batch::new(vec![late.clone()]), 0), vec![late]);
}

#[test]
fn a_recovered_trace_is_not_stored_twice() {
    let dir = tempfile::tempdir().unwrap();
    let st = store(dir.path());
    let log_dir = dir.path().join("tail");
    let mut t = TailSampler::open(&log_dir, cfg(""), Quantiles::empty(), true, 0).unwrap();
    t.admit(Batch::new(trace(1, 3, true)), 0);
    t.sync().unwrap();
    let d = t.take_due(5000, &st);
    // Kept spans reached the WAL, but the crash came before the decision
    // was logged.
    st.commit(0, vec![Batch::new(d.keep)]).unwrap();
    drop(t);
    let mut t = TailSampler::open(&log_dir, cfg(""), Quantiles::empty(), true, 0).unwrap();
    assert_eq!(t.waiting_traces(), 1);
    let d = t.take_due(100_000, &st);
    assert!(d.decisions[0].1);
    assert!(d.keep.is_empty(), "every span is already stored");
}
