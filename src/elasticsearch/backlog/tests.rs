//! Backlog unit tests: durability across reopen, bounds, corruption.

use super::format::{segment_path, HEADER, RECORD_HEADER};
use super::*;
use std::io::Write;
use std::sync::Arc;

fn entries(n: usize, tag: &str) -> Vec<Vec<u8>> {
    (0..n)
        .map(|i| format!("{tag}-{i}\n").into_bytes())
        .collect()
}

fn drain(b: &Backlog) -> Vec<String> {
    let batch = b.read(b.checkpoint(), usize::MAX, usize::MAX).unwrap();
    assert!(batch.corrupt.is_none(), "{:?}", batch.corrupt);
    batch
        .records
        .iter()
        .map(|r| String::from_utf8(r.payload.clone()).unwrap())
        .collect()
}

#[test]
fn appends_survive_reopen_and_commit_advances() {
    let dir = tempfile::tempdir().unwrap();
    {
        let b = Backlog::open(dir.path(), 1 << 20, 256).unwrap();
        b.append(&entries(10, "a"), 7).unwrap();
        assert_eq!(b.pending().records, 10);
        let batch = b.read(b.checkpoint(), 4, usize::MAX).unwrap();
        assert_eq!(batch.records.len(), 4);
        assert!(batch.full);
        assert_eq!(batch.records[0].append_ns, 7);
        b.commit(batch.end, 4).unwrap();
        // A second writer on the same directory is refused.
        assert!(matches!(
            Backlog::open(dir.path(), 1 << 20, 256),
            Err(Error::Unavailable(_))
        ));
    }
    let b = Backlog::open(dir.path(), 1 << 20, 256).unwrap();
    assert_eq!(b.pending().records, 6);
    assert_eq!(
        drain(&b),
        (4..10).map(|i| format!("a-{i}\n")).collect::<Vec<_>>()
    );
}

#[test]
fn segments_roll_and_settled_ones_are_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let b = Backlog::open(dir.path(), 1 << 20, 64).unwrap();
    for i in 0..20 {
        b.append(&entries(1, &format!("r{i}")), 1).unwrap();
    }
    let segs = || {
        fs::read_dir(dir.path())
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .ends_with(".seg")
            })
            .count()
    };
    assert!(segs() > 3);
    let got = drain(&b);
    assert_eq!(got.len(), 20);
    assert_eq!(got[19], "r19-0\n");
    let batch = b.read(b.checkpoint(), usize::MAX, usize::MAX).unwrap();
    b.commit(batch.end, 20).unwrap();
    assert_eq!(segs(), 1);
    assert_eq!(
        b.pending(),
        Pending {
            records: 0,
            bytes: 0
        }
    );
    b.append(&entries(1, "after"), 1).unwrap();
    assert_eq!(drain(&b), vec!["after-0\n"]);
}

#[test]
fn budget_is_enforced_with_overloaded() {
    let dir = tempfile::tempdir().unwrap();
    let b = Backlog::open(dir.path(), 200, 1 << 20).unwrap();
    b.append(&entries(5, "x"), 1).unwrap();
    let e = b.append(&entries(10, "y"), 1).unwrap_err();
    assert!(matches!(e, Error::Overloaded(_)), "{e}");
    assert!(matches!(
        b.append(&[vec![0u8; 300]], 1),
        Err(Error::TooLarge(_))
    ));
    let batch = b.read(b.checkpoint(), usize::MAX, usize::MAX).unwrap();
    b.commit(batch.end, 5).unwrap();
    b.append(&entries(5, "y"), 1).unwrap();
}

#[test]
fn byte_limit_bounds_a_batch_but_takes_at_least_one() {
    let dir = tempfile::tempdir().unwrap();
    let b = Backlog::open(dir.path(), 1 << 20, 1 << 20).unwrap();
    b.append(&[vec![b'a'; 100], vec![b'b'; 100], vec![b'c'; 100]], 1)
        .unwrap();
    assert_eq!(b.read(b.checkpoint(), 10, 150).unwrap().records.len(), 1);
    assert_eq!(b.read(b.checkpoint(), 10, 200).unwrap().records.len(), 2);
    assert_eq!(b.read(b.checkpoint(), 10, 10).unwrap().records.len(), 1);
}

#[test]
fn torn_tail_is_cut_and_corruption_is_reported_not_served() {
    let dir = tempfile::tempdir().unwrap();
    {
        let b = Backlog::open(dir.path(), 1 << 20, 1 << 20).unwrap();
        b.append(&entries(3, "t"), 1).unwrap();
    }
    let seg = segment_path(dir.path(), 0);
    let good_len = fs::metadata(&seg).unwrap().len();
    // A torn append: a header promising more bytes than were written.
    let mut f = OpenOptions::new().append(true).open(&seg).unwrap();
    f.write_all(&[200, 0, 0, 0, 1, 2, 3]).unwrap();
    drop(f);
    {
        let b = Backlog::open(dir.path(), 1 << 20, 1 << 20).unwrap();
        assert_eq!(fs::metadata(&seg).unwrap().len(), good_len);
        assert_eq!(drain(&b).len(), 3);
        b.append(&entries(1, "next"), 1).unwrap();
    }
    // Flip a payload byte of the first record: the checksum catches it.
    let mut bytes = fs::read(&seg).unwrap();
    bytes[HEADER as usize + RECORD_HEADER as usize] ^= 0xff;
    fs::write(&seg, &bytes).unwrap();
    let b = Backlog::open(dir.path(), 1 << 20, 1 << 20).unwrap();
    // The open-time scan cut everything from the bad record on, since
    // it was in the last segment, and kept the cut bytes aside;
    // nothing corrupt is ever returned.
    let batch = b.read(b.checkpoint(), usize::MAX, usize::MAX).unwrap();
    assert!(batch.records.is_empty());
    let kept = fs::read_dir(dir.path())
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .starts_with("torn-")
        })
        .count();
    assert_eq!(kept, 2);
}

#[test]
fn corruption_in_a_sealed_segment_skips_to_the_next() {
    let dir = tempfile::tempdir().unwrap();
    let b = Backlog::open(dir.path(), 1 << 20, 40).unwrap();
    b.append(&entries(1, "first"), 1).unwrap();
    b.append(&entries(1, "second"), 1).unwrap();
    let seg = segment_path(dir.path(), 0);
    let mut bytes = fs::read(&seg).unwrap();
    let last = bytes.len() - 2;
    bytes[last] ^= 0xff;
    fs::write(&seg, &bytes).unwrap();
    let batch = b.read(b.checkpoint(), usize::MAX, usize::MAX).unwrap();
    assert!(batch.corrupt.is_some());
    assert!(batch.records.is_empty());
    let rest = b.read(batch.end, usize::MAX, usize::MAX).unwrap();
    assert_eq!(rest.records.len(), 1);
    assert_eq!(rest.records[0].payload, b"second-0\n");
    // Settling past the corrupt region empties the backlog, count included.
    b.commit(rest.end, 1).unwrap();
    assert_eq!(
        b.pending(),
        Pending {
            records: 0,
            bytes: 0
        }
    );
}

#[test]
fn concurrent_appends_share_fsyncs_and_all_arrive_across_segments() {
    let dir = tempfile::tempdir().unwrap();
    // Small segments, so group commits straddle segment switches.
    let b = Arc::new(Backlog::open(dir.path(), 1 << 24, 512).unwrap());
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let b = b.clone();
            std::thread::spawn(move || {
                for i in 0..50 {
                    b.append(&entries(3, &format!("t{t}-{i}")), 1).unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(b.pending().records, 8 * 50 * 3);
    let mut got = drain(&b);
    let mut want: Vec<String> = (0..8)
        .flat_map(|t| (0..50).flat_map(move |i| entries(3, &format!("t{t}-{i}"))))
        .map(|e| String::from_utf8(e).unwrap())
        .collect();
    got.sort();
    want.sort();
    assert_eq!(got, want);
    drop(b);
    let reopened = Backlog::open(dir.path(), 1 << 24, 512).unwrap();
    assert_eq!(reopened.pending().records, 8 * 50 * 3);
}
