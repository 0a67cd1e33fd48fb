//! strand's span-metrics file format (see docs/METRICS.md):
//!
//! ```text
//! file   := header block*
//! header := "STRANDSM" version:u32le resolution_s:u32le crc32(previous 16 bytes):u32le
//! block  := "SMBK" payload_len:u32le crc32(payload):u32le payload
//! payload:= n_producers:v (producer_id:v seq:v)*  n_offsets:v (partition:v offset:v)*
//!           n_gens:v gen:v*  n_records:v record*
//! record := window_start_s:v service:str operation:str kind:u8 status:u8
//!           calls:v errors:v duration_sum_ns:v
//!           bucket_mask:u32le count:v (per set bit)
//!           exemplar_mask:u32le (trace_id:16 span_id:8 duration_ns:v time_ns:v) (per set bit)
//! str    := len:v utf8
//! ```
//! `v` is an unsigned LEB128 varint. A block is the unit of durability:
//! appended whole and fsynced; a torn or corrupt block ends the file.

use crate::error::{Error, Result};
use crate::model::{SpanId, SpanKind, StatusCode, TraceId};
use crate::spanmetrics::{Exemplar, Point, SeriesKey, BUCKETS};

pub const FILE_MAGIC: &[u8; 8] = b"STRANDSM";
pub const BLOCK_MAGIC: &[u8; 4] = b"SMBK";
pub const VERSION: u32 = 1;
pub const HEADER_LEN: usize = 20;
pub const BLOCK_HEADER_LEN: usize = 12;
/// A block larger than this is corrupt (a bad length, not data).
pub(super) const MAX_BLOCK: usize = 1 << 30;

/// Where a block's deltas came from: Kafka producers' sequence numbers and
/// the consumed partitions' next offsets (empty in embedded mode), and the
/// file generations a retirement folded in.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Source {
    pub producers: Vec<(u64, u64)>,
    pub offsets: Vec<(u32, u64)>,
    pub gens: Vec<u64>,
}

/// One decoded block.
#[derive(Debug, Default)]
pub struct Block {
    pub source: Source,
    pub records: Vec<(SeriesKey, Point)>,
}

pub fn file_header(resolution_s: u32) -> [u8; HEADER_LEN] {
    let mut h = [0u8; HEADER_LEN];
    h[0..8].copy_from_slice(FILE_MAGIC);
    h[8..12].copy_from_slice(&VERSION.to_le_bytes());
    h[12..16].copy_from_slice(&resolution_s.to_le_bytes());
    let crc = crc32fast::hash(&h[0..16]);
    h[16..20].copy_from_slice(&crc.to_le_bytes());
    h
}

pub(super) fn corrupt(what: &str) -> Error {
    Error::Corrupt(format!("span-metrics file: {what}"))
}

pub(super) fn le_u32(b: &[u8]) -> u32 {
    u32::from_le_bytes([b[0], b[1], b[2], b[3]])
}

/// Checks the header; returns the resolution in seconds.
pub fn check_header(file: &[u8]) -> Result<u32> {
    if file.len() < HEADER_LEN || &file[0..8] != FILE_MAGIC {
        return Err(corrupt("bad header"));
    }
    if le_u32(&file[16..20]) != crc32fast::hash(&file[0..16]) {
        return Err(corrupt("header checksum mismatch"));
    }
    let v = le_u32(&file[8..12]);
    if v == 0 || v > VERSION {
        return Err(corrupt(&format!("unsupported version {v}")));
    }
    Ok(le_u32(&file[12..16]))
}

/// The whole block (header + payload) for appending.
pub fn encode_block(source: &Source, records: &[(SeriesKey, Point)]) -> Vec<u8> {
    let mut p = Vec::with_capacity(64 + records.len() * 48);
    varint(&mut p, source.producers.len() as u64);
    for &(id, seq) in &source.producers {
        varint(&mut p, id);
        varint(&mut p, seq);
    }
    varint(&mut p, source.offsets.len() as u64);
    for &(part, off) in &source.offsets {
        varint(&mut p, part as u64);
        varint(&mut p, off);
    }
    varint(&mut p, source.gens.len() as u64);
    for &g in &source.gens {
        varint(&mut p, g);
    }
    varint(&mut p, records.len() as u64);
    for (k, pt) in records {
        record(&mut p, k, pt);
    }
    let mut out = Vec::with_capacity(BLOCK_HEADER_LEN + p.len());
    out.extend_from_slice(BLOCK_MAGIC);
    out.extend_from_slice(&(p.len() as u32).to_le_bytes());
    out.extend_from_slice(&crc32fast::hash(&p).to_le_bytes());
    out.extend_from_slice(&p);
    out
}

fn record(p: &mut Vec<u8>, k: &SeriesKey, pt: &Point) {
    varint(p, pt.start_ns / 1_000_000_000);
    string(p, &k.service);
    string(p, &k.operation);
    p.push(k.kind as u8);
    p.push(k.status as u8);
    varint(p, pt.calls);
    varint(p, pt.errors);
    varint(p, pt.duration_sum_ns);
    let mask = pt
        .buckets
        .iter()
        .enumerate()
        .fold(0u32, |m, (i, &c)| m | (u32::from(c > 0) << i));
    p.extend_from_slice(&mask.to_le_bytes());
    for &c in pt.buckets.iter().filter(|&&c| c > 0) {
        varint(p, c);
    }
    let emask = pt
        .exemplars
        .iter()
        .enumerate()
        .fold(0u32, |m, (i, e)| m | (u32::from(e.is_some()) << i));
    p.extend_from_slice(&emask.to_le_bytes());
    for e in pt.exemplars.iter().flatten() {
        p.extend_from_slice(&e.trace_id.0);
        p.extend_from_slice(&e.span_id.0);
        varint(p, e.duration_ns);
        varint(p, e.time_ns);
    }
}

/// Decodes the blocks after the header. Returns them with the length of
/// the valid prefix of `file` (header included): a torn or corrupt block
/// and everything after it are not part of it.
pub fn decode_blocks(file: &[u8], keep: &dyn Fn(&str) -> bool) -> (Vec<Block>, usize) {
    let mut blocks = Vec::new();
    let mut at = HEADER_LEN.min(file.len());
    while file.len() - at >= BLOCK_HEADER_LEN {
        let h = &file[at..at + BLOCK_HEADER_LEN];
        let len = le_u32(&h[4..8]) as usize;
        if &h[0..4] != BLOCK_MAGIC || len > MAX_BLOCK || file.len() - at - BLOCK_HEADER_LEN < len {
            break;
        }
        let payload = &file[at + BLOCK_HEADER_LEN..at + BLOCK_HEADER_LEN + len];
        if le_u32(&h[8..12]) != crc32fast::hash(payload) {
            break;
        }
        match decode_payload(payload, keep) {
            Ok(b) => blocks.push(b),
            Err(_) => break,
        }
        at += BLOCK_HEADER_LEN + len;
    }
    (blocks, at)
}

/// One block on its own (a Kafka message, an internal API answer).
pub fn decode_block(bytes: &[u8]) -> Result<Block> {
    let mut file = file_header(0).to_vec();
    file.extend_from_slice(bytes);
    let (mut blocks, valid) = decode_blocks(&file, &|_| true);
    if blocks.len() != 1 || valid != file.len() {
        return Err(corrupt("not exactly one valid block"));
    }
    Ok(blocks.remove(0))
}

fn decode_payload(p: &[u8], keep: &dyn Fn(&str) -> bool) -> Result<Block> {
    let mut r = Cursor { b: p, at: 0 };
    let mut b = Block::default();
    for _ in 0..r.count()? {
        b.source.producers.push((r.varint()?, r.varint()?));
    }
    for _ in 0..r.count()? {
        let part = u32::try_from(r.varint()?).map_err(|_| corrupt("partition"))?;
        b.source.offsets.push((part, r.varint()?));
    }
    for _ in 0..r.count()? {
        b.source.gens.push(r.varint()?);
    }
    for _ in 0..r.count()? {
        let start_ns = r.varint()?.saturating_mul(1_000_000_000);
        let service = r.str()?;
        // Skip the decoding of other services' points (a filtered read).
        let wanted = keep(service);
        let service = service.to_string();
        let operation = r.str()?.to_string();
        let kind = SpanKind::from_i32(i32::from(r.u8()?));
        let status = StatusCode::from_i32(i32::from(r.u8()?));
        let mut pt = crate::spanmetrics::point::empty(start_ns);
        pt.calls = r.varint()?;
        pt.errors = r.varint()?;
        pt.duration_sum_ns = r.varint()?;
        let mask = r.u32()?;
        for (i, c) in pt.buckets.iter_mut().enumerate() {
            if mask & (1 << i) != 0 {
                *c = r.varint()?;
            }
        }
        let emask = r.u32()?;
        for (i, slot) in pt.exemplars.iter_mut().enumerate().take(BUCKETS) {
            if emask & (1 << i) != 0 {
                let trace_id = TraceId(r.fixed::<16>()?);
                let span_id = SpanId(r.fixed::<8>()?);
                *slot = Some(Exemplar {
                    trace_id,
                    span_id,
                    duration_ns: r.varint()?,
                    time_ns: r.varint()?,
                });
            }
        }
        if wanted {
            let key = SeriesKey {
                service,
                operation,
                kind,
                status,
            };
            b.records.push((key, pt));
        }
    }
    if r.at != p.len() {
        return Err(corrupt("trailing bytes in a block"));
    }
    Ok(b)
}

fn varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn string(out: &mut Vec<u8>, s: &str) {
    varint(out, s.len() as u64);
    out.extend_from_slice(s.as_bytes());
}

/// A bounds-checked reader: malformed input is an error, never a panic.
pub(super) struct Cursor<'a> {
    pub(super) b: &'a [u8],
    pub(super) at: usize,
}

impl<'a> Cursor<'a> {
    pub(super) fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        if self.b.len() - self.at < n {
            return Err(corrupt("short block"));
        }
        let s = &self.b[self.at..self.at + n];
        self.at += n;
        Ok(s)
    }
    pub(super) fn u8(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }
    pub(super) fn u32(&mut self) -> Result<u32> {
        Ok(le_u32(self.take(4)?))
    }
    pub(super) fn fixed<const N: usize>(&mut self) -> Result<[u8; N]> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }
    pub(super) fn varint(&mut self) -> Result<u64> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.u8()?;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(corrupt("varint too long"))
    }
    /// A count of items, each at least one byte: bounded by what is left.
    pub(super) fn count(&mut self) -> Result<usize> {
        let n = self.varint()?;
        if n > (self.b.len() - self.at) as u64 {
            return Err(corrupt("count larger than the block"));
        }
        Ok(n as usize)
    }
    pub(super) fn str(&mut self) -> Result<&'a str> {
        let n = self.count()?;
        std::str::from_utf8(self.take(n)?).map_err(|_| corrupt("string is not UTF-8"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spanmetrics::point::empty;

    fn sample() -> Vec<(SeriesKey, Point)> {
        let key = |op: &str| SeriesKey {
            service: "shop".into(),
            operation: op.into(),
            kind: SpanKind::Server,
            status: StatusCode::Error,
        };
        let mut p = empty(1_700_000_010_000_000_000);
        p.calls = 300;
        p.errors = 7;
        p.duration_sum_ns = 123_456_789;
        p.buckets[0] = 1;
        p.buckets[24] = 299;
        p.exemplars[24] = Some(Exemplar {
            trace_id: TraceId([3; 16]),
            span_id: SpanId([4; 8]),
            duration_ns: 9_000_000_000_000,
            time_ns: 1_700_000_011_000_000_000,
        });
        vec![(key("GET /"), p.clone()), (key("POST /cart"), empty(0))]
    }

    #[test]
    fn blocks_round_trip_and_a_torn_or_flipped_tail_ends_the_file() {
        let src = Source {
            producers: vec![(9, 41)],
            offsets: vec![(2, 1000)],
            gens: vec![],
        };
        let mut file = file_header(10).to_vec();
        file.extend(encode_block(&src, &sample()));
        let first = file.len();
        file.extend(encode_block(&Source::default(), &sample()[..1]));
        assert_eq!(check_header(&file).unwrap(), 10);
        let (blocks, valid) = decode_blocks(&file, &|_| true);
        assert_eq!((blocks.len(), valid), (2, file.len()));
        assert_eq!(blocks[0].source, src);
        assert_eq!(blocks[0].records, sample());
        for cut in first..file.len() {
            let (b, v) = decode_blocks(&file[..cut], &|_| true);
            assert_eq!((b.len(), v), (1, first), "cut at {cut}");
        }
        for i in first..file.len() {
            let mut bad = file.clone();
            bad[i] ^= 0x10;
            let (b, v) = decode_blocks(&bad, &|_| true);
            assert_eq!((b.len(), v), (1, first), "flip at {i}");
        }
        let (b, _) = decode_blocks(&file, &|s| s == "other");
        assert!(b[0].records.is_empty(), "filtered by service");
    }

    #[test]
    fn garbage_never_panics() {
        let mut file = file_header(10).to_vec();
        let mut block = encode_block(&Source::default(), &sample());
        // A valid CRC over garbage: decoding must fail cleanly.
        let n = block.len();
        for b in &mut block[BLOCK_HEADER_LEN..n] {
            *b = 0xff;
        }
        let crc = crc32fast::hash(&block[BLOCK_HEADER_LEN..]);
        block[8..12].copy_from_slice(&crc.to_le_bytes());
        file.extend(block);
        let (b, v) = decode_blocks(&file, &|_| true);
        assert_eq!((b.len(), v), (0, HEADER_LEN));
        assert!(check_header(&file[..10]).is_err());
    }
}
