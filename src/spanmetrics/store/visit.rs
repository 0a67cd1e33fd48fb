//! Walking a file's records in place: keys borrowed from the file's bytes
//! and counts on the stack, so a read builds no `Vec<(SeriesKey, Point)>`
//! (a `Point` is ~1.4 KB in memory against ~40 bytes on disk). The same
//! framing and checks as [`codec::decode_blocks`]: a block with a bad
//! magic, length or CRC ends the valid prefix.

use super::codec::{le_u32, Cursor, BLOCK_HEADER_LEN, BLOCK_MAGIC, MAX_BLOCK};
use crate::error::Result;
use crate::model::{SpanId, SpanKind, StatusCode, TraceId};
use crate::spanmetrics::{Exemplar, Point, SeriesKey, BUCKETS};

/// One record as stored; `buckets` is zero where `bucket_mask` is unset.
pub struct RecordRef<'a> {
    pub window_s: u64,
    pub service: &'a str,
    pub operation: &'a str,
    pub kind: SpanKind,
    pub status: StatusCode,
    pub calls: u64,
    pub errors: u64,
    pub duration_sum_ns: u64,
    pub bucket_mask: u32,
    pub buckets: [u64; BUCKETS],
    /// (bucket, exemplar) for each set bit of the exemplar mask.
    pub exemplars: &'a [(usize, Exemplar)],
}

/// How far a walk got.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Walk {
    /// End of the valid prefix, as an offset in the file.
    pub valid: usize,
    /// Offset and header of the last valid block: a reader that cached
    /// what it saw checks these bytes are still there before reading on.
    pub last_block: Option<(usize, [u8; BLOCK_HEADER_LEN])>,
}

/// Walks the blocks in `bytes` (starting at a block boundary, which is at
/// offset `base` of the file) and calls `f` for every record of a service
/// `keep` accepts, block by block. An error means a block with a valid
/// checksum did not parse (a bug or tampering, not a torn write): `f` may
/// have seen part of it, so the caller discards what it built and uses
/// [`codec::decode_blocks`], which drops such a block whole.
pub fn visit_blocks(
    bytes: &[u8],
    base: usize,
    keep: &dyn Fn(&str) -> bool,
    f: &mut dyn FnMut(&RecordRef<'_>),
) -> Result<Walk> {
    let mut walk = Walk {
        valid: base,
        last_block: None,
    };
    let mut at = 0;
    let mut scratch = Vec::with_capacity(BUCKETS);
    while bytes.len() - at >= BLOCK_HEADER_LEN {
        let h = &bytes[at..at + BLOCK_HEADER_LEN];
        let len = le_u32(&h[4..8]) as usize;
        if &h[0..4] != BLOCK_MAGIC || len > MAX_BLOCK || bytes.len() - at - BLOCK_HEADER_LEN < len {
            break;
        }
        let payload = &bytes[at + BLOCK_HEADER_LEN..at + BLOCK_HEADER_LEN + len];
        if le_u32(&h[8..12]) != crc32fast::hash(payload) {
            break;
        }
        visit_payload(payload, keep, &mut scratch, f)?;
        let mut hdr = [0u8; BLOCK_HEADER_LEN];
        hdr.copy_from_slice(h);
        walk.last_block = Some((base + at, hdr));
        at += BLOCK_HEADER_LEN + len;
        walk.valid = base + at;
    }
    Ok(walk)
}

fn visit_payload(
    p: &[u8],
    keep: &dyn Fn(&str) -> bool,
    scratch: &mut Vec<(usize, Exemplar)>,
    f: &mut dyn FnMut(&RecordRef<'_>),
) -> Result<()> {
    let mut r = Cursor { b: p, at: 0 };
    // The source (Kafka progress, generations) is not a reader's concern.
    for _ in 0..r.count()? {
        r.varint()?;
        r.varint()?;
    }
    for _ in 0..r.count()? {
        r.varint()?;
        r.varint()?;
    }
    for _ in 0..r.count()? {
        r.varint()?;
    }
    for _ in 0..r.count()? {
        let window_s = r.varint()?;
        let service = r.str()?;
        let wanted = keep(service);
        let operation = r.str()?;
        let kind = SpanKind::from_i32(i32::from(r.u8()?));
        let status = StatusCode::from_i32(i32::from(r.u8()?));
        let calls = r.varint()?;
        let errors = r.varint()?;
        let duration_sum_ns = r.varint()?;
        let bucket_mask = r.u32()?;
        let mut buckets = [0u64; BUCKETS];
        for (i, c) in buckets.iter_mut().enumerate() {
            if bucket_mask & (1 << i) != 0 {
                *c = r.varint()?;
            }
        }
        let emask = r.u32()?;
        scratch.clear();
        for i in 0..BUCKETS {
            if emask & (1 << i) != 0 {
                let trace_id = TraceId(r.fixed::<16>()?);
                let span_id = SpanId(r.fixed::<8>()?);
                let duration_ns = r.varint()?;
                let time_ns = r.varint()?;
                scratch.push((
                    i,
                    Exemplar {
                        trace_id,
                        span_id,
                        duration_ns,
                        time_ns,
                    },
                ));
            }
        }
        if wanted {
            f(&RecordRef {
                window_s,
                service,
                operation,
                kind,
                status,
                calls,
                errors,
                duration_sum_ns,
                bucket_mask,
                buckets,
                exemplars: scratch,
            });
        }
    }
    if r.at != p.len() {
        return Err(super::codec::corrupt("trailing bytes in a block"));
    }
    Ok(())
}

/// A decoded record seen as a [`RecordRef`] (the fallback path);
/// `scratch` holds its exemplars.
pub fn with_record_ref<'a>(
    k: &'a SeriesKey,
    p: &Point,
    scratch: &'a mut Vec<(usize, Exemplar)>,
    f: &mut dyn FnMut(&RecordRef<'_>),
) {
    scratch.clear();
    scratch.extend(
        p.exemplars
            .iter()
            .enumerate()
            .filter_map(|(i, e)| e.map(|e| (i, e))),
    );
    let bucket_mask = p
        .buckets
        .iter()
        .enumerate()
        .fold(0u32, |m, (i, &c)| m | (u32::from(c > 0) << i));
    f(&RecordRef {
        window_s: p.start_ns / 1_000_000_000,
        service: &k.service,
        operation: &k.operation,
        kind: k.kind,
        status: k.status,
        calls: p.calls,
        errors: p.errors,
        duration_sum_ns: p.duration_sum_ns,
        bucket_mask,
        buckets: p.buckets,
        exemplars: scratch,
    });
}

#[cfg(test)]
mod tests {
    use super::super::codec::{decode_blocks, encode_block, file_header, Source, HEADER_LEN};
    use super::*;
    use crate::spanmetrics::point;
    use proptest::prelude::*;

    /// The records a walk sees, rebuilt as decoded points.
    fn walk_all(file: &[u8], keep: &dyn Fn(&str) -> bool) -> (Vec<(SeriesKey, Point)>, Walk) {
        let mut got = Vec::new();
        let w = visit_blocks(&file[HEADER_LEN..], HEADER_LEN, keep, &mut |r| {
            let mut p = point::empty(r.window_s * 1_000_000_000);
            p.calls = r.calls;
            p.errors = r.errors;
            p.duration_sum_ns = r.duration_sum_ns;
            p.buckets = r.buckets;
            for &(i, e) in r.exemplars {
                p.exemplars[i] = Some(e);
            }
            let k = SeriesKey {
                service: r.service.into(),
                operation: r.operation.into(),
                kind: r.kind,
                status: r.status,
            };
            got.push((k, p));
        })
        .unwrap();
        (got, w)
    }

    fn record() -> impl Strategy<Value = (SeriesKey, Point)> {
        (
            0..3usize,
            "[a-z/ ]{0,12}",
            0..6i32,
            0..3i32,
            0..100_000u64,
            any::<[u32; BUCKETS]>(),
            any::<u32>(),
            any::<u64>(),
        )
            .prop_map(|(svc, op, kind, status, w, counts, emask, seed)| {
                let mut p = point::empty(w * 1_000_000_000);
                for (i, c) in counts.iter().enumerate() {
                    // Sparse, as real histograms are.
                    p.buckets[i] = u64::from(*c % 4 == 0) * u64::from(*c >> 8);
                }
                p.calls = p.buckets.iter().sum();
                p.errors = p.calls / 3;
                p.duration_sum_ns = seed >> 4;
                for i in 0..BUCKETS {
                    if emask & (1 << i) != 0 {
                        p.exemplars[i] = Some(Exemplar {
                            trace_id: TraceId([i as u8; 16]),
                            span_id: SpanId(seed.to_le_bytes()),
                            duration_ns: seed % 1000,
                            time_ns: seed / 3,
                        });
                    }
                }
                let k = SeriesKey {
                    service: ["shop", "cart", ""][svc].into(),
                    operation: op,
                    kind: SpanKind::from_i32(kind),
                    status: StatusCode::from_i32(status),
                };
                (k, p)
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn a_walk_sees_what_decode_blocks_decodes(
            blocks in proptest::collection::vec(proptest::collection::vec(record(), 0..8), 0..5),
            cut in any::<prop::sample::Index>(),
        ) {
            let mut file = file_header(10).to_vec();
            for b in &blocks {
                file.extend(encode_block(&Source { producers: vec![(1, 2)], offsets: vec![(0, 9)], gens: vec![3] }, b));
            }
            // Whole, and torn anywhere.
            let cut = HEADER_LEN + cut.index(file.len() - HEADER_LEN + 1);
            for f in [&file[..], &file[..cut]] {
                for keep in [&|_: &str| true, &|s: &str| s == "shop"] as [&dyn Fn(&str) -> bool; 2] {
                    let (decoded, valid) = decode_blocks(f, keep);
                    let want: Vec<_> = decoded.into_iter().flat_map(|b| b.records).collect();
                    let (got, walk) = walk_all(f, keep);
                    prop_assert_eq!(&got, &want);
                    prop_assert_eq!(walk.valid, valid);
                    if let Some((off, hdr)) = walk.last_block {
                        prop_assert_eq!(&f[off..off + BLOCK_HEADER_LEN], &hdr[..]);
                    }
                }
            }
        }
    }

    #[test]
    fn a_parse_error_behind_a_good_checksum_is_an_error_not_a_panic() {
        let mut block = encode_block(&Source::default(), &[]);
        let n = block.len();
        block.extend([0xff; 9]);
        let len = (block.len() - BLOCK_HEADER_LEN) as u32;
        block[4..8].copy_from_slice(&len.to_le_bytes());
        let crc = crc32fast::hash(&block[BLOCK_HEADER_LEN..]);
        block[8..12].copy_from_slice(&crc.to_le_bytes());
        assert!(n < block.len());
        assert!(visit_blocks(&block, 0, &|_| true, &mut |_| {}).is_err());
    }
}
