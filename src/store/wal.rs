//! The write-ahead log of one in-memory segment. A record is
//! `[len: u32 LE][crc32(len ++ payload): u32 LE][payload]`, the payload an
//! OTLP `TracesData` protobuf of one acknowledged batch. Replay stops at the
//! first record that is short, zero-length, oversized, fails its checksum or
//! does not decode, and truncates the file there: such a tail was being
//! written when the process died, so it was never acknowledged.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
#[cfg(test)]
use std::sync::Arc;

use prost::Message;

use crate::error::{Error, Result};
use crate::model::Span;
use crate::otlp::convert;
#[cfg(test)]
use crate::otlp::proto::common::v1 as pc;
#[cfg(test)]
use crate::otlp::proto::resource::v1 as pr;
use crate::otlp::proto::trace::v1 as pt;

const HEADER: usize = 8;
/// No single batch is this large (ingest caps requests well below it); a
/// larger length field can only be garbage.
pub const MAX_RECORD: usize = 256 << 20;

/// Encodes a batch as one framed WAL record. Pure CPU: callers run it on
/// their own thread so the single writer thread only copies bytes.
pub fn encode_record(spans: &[Span]) -> Vec<u8> {
    let mut out = vec![0u8; HEADER];
    super::walcodec::encode_traces_data(spans, &mut out);
    let len = ((out.len() - HEADER) as u32).to_le_bytes();
    let mut h = crc32fast::Hasher::new();
    h.update(&len);
    h.update(&out[HEADER..]);
    out[0..4].copy_from_slice(&len);
    out[4..8].copy_from_slice(&h.finalize().to_le_bytes());
    out
}

/// Groups runs of spans sharing resource and scope, keeping span order (so
/// replay rebuilds rows in exactly the acknowledged order). The reference
/// the direct encoder (`walcodec`) is tested against.
#[cfg(test)]
pub(crate) fn group(spans: &[Span]) -> Vec<pt::ResourceSpans> {
    let mut out: Vec<pt::ResourceSpans> = Vec::new();
    let mut prev: Option<&Span> = None;
    for s in spans {
        let same_res =
            prev.is_some_and(|p| Arc::ptr_eq(&p.resource, &s.resource) || p.resource == s.resource);
        let same_scope =
            same_res && prev.is_some_and(|p| Arc::ptr_eq(&p.scope, &s.scope) || p.scope == s.scope);
        if !same_res {
            out.push(pt::ResourceSpans {
                resource: Some(pr::Resource {
                    attributes: convert::attrs_to_proto(&s.resource.attributes),
                    dropped_attributes_count: s.resource.dropped_attributes_count,
                    entity_refs: Vec::new(),
                }),
                scope_spans: Vec::new(),
                schema_url: s.resource.schema_url.clone(),
            });
        }
        if let Some(rs) = out.last_mut() {
            if !same_scope {
                rs.scope_spans.push(pt::ScopeSpans {
                    scope: Some(pc::InstrumentationScope {
                        name: s.scope.name.clone(),
                        version: s.scope.version.clone(),
                        attributes: convert::attrs_to_proto(&s.scope.attributes),
                        dropped_attributes_count: s.scope.dropped_attributes_count,
                    }),
                    spans: Vec::new(),
                    schema_url: s.scope.schema_url.clone(),
                });
            }
            if let Some(ss) = rs.scope_spans.last_mut() {
                ss.spans.push(convert::span_to_proto(s));
            }
        }
        prev = Some(s);
    }
    out
}

/// Appends records to one WAL file; owned by the single writer thread.
pub struct WalWriter {
    file: File,
    path: PathBuf,
    fsync: bool,
    /// Test hook: the next N appends fail as if the disk did.
    faults: u32,
}

impl WalWriter {
    /// Creates an empty WAL (and makes its directory entry durable).
    pub fn create(path: &Path, fsync: bool) -> Result<WalWriter> {
        let file = OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .open(path)?;
        if let Some(dir) = path.parent() {
            super::format::sync_dir(dir)?;
        }
        Ok(WalWriter {
            file,
            path: path.to_path_buf(),
            fsync,
            faults: 0,
        })
    }

    /// Reopens a replayed WAL for appending after its last good record.
    pub fn reopen(path: &Path, fsync: bool) -> Result<WalWriter> {
        let file = OpenOptions::new().append(true).open(path)?;
        Ok(WalWriter {
            file,
            path: path.to_path_buf(),
            fsync,
            faults: 0,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn inject_faults(&mut self, n: u32) {
        self.faults = n;
    }

    /// Appends every record with one write and one fsync (group commit).
    pub fn append(&mut self, records: &[&[u8]]) -> Result<()> {
        if self.faults > 0 {
            self.faults -= 1;
            return Err(Error::Io(std::io::Error::other(
                "injected WAL write failure",
            )));
        }
        let total = records.iter().map(|r| r.len()).sum();
        let mut buf = Vec::with_capacity(total);
        for r in records {
            buf.extend_from_slice(r);
        }
        self.file.write_all(&buf)?;
        if self.fsync {
            self.file.sync_data()?;
        }
        Ok(())
    }
}

/// What replay found in one WAL file.
pub struct Replay {
    pub spans: Vec<Span>,
    /// Bytes of torn or corrupt tail that were cut off.
    pub truncated_bytes: u64,
}

/// Reads every good record, truncates the file after the last one (fsynced,
/// so a second crash replays the same prefix), and returns the spans.
pub fn replay(path: &Path) -> Result<Replay> {
    let data = std::fs::read(path)?;
    let mut spans = Vec::new();
    let mut pos = 0usize;
    while let Some((payload, next)) = next_record(&data, pos) {
        match pt::TracesData::decode(payload) {
            Ok(td) => spans.extend(convert::spans_from_proto(&td.resource_spans)),
            Err(_) => break,
        }
        pos = next;
    }
    let truncated = (data.len() - pos) as u64;
    if truncated > 0 {
        let f = OpenOptions::new().write(true).open(path)?;
        f.set_len(pos as u64)?;
        f.sync_all()?;
    }
    Ok(Replay {
        spans,
        truncated_bytes: truncated,
    })
}

/// The payload of the record at `pos` and where the next begins, if the
/// record is whole and its checksum holds.
fn next_record(data: &[u8], pos: usize) -> Option<(&[u8], usize)> {
    let header = data.get(pos..pos.checked_add(HEADER)?)?;
    let len_bytes: [u8; 4] = header[0..4].try_into().ok()?;
    let crc: [u8; 4] = header[4..8].try_into().ok()?;
    let len = u32::from_le_bytes(len_bytes) as usize;
    if len == 0 || len > MAX_RECORD {
        return None;
    }
    let end = pos.checked_add(HEADER)?.checked_add(len)?;
    let payload = data.get(pos + HEADER..end)?;
    let mut h = crc32fast::Hasher::new();
    h.update(&len_bytes);
    h.update(payload);
    (h.finalize() == u32::from_le_bytes(crc)).then_some((payload, end))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::*;
    use crate::store::testutil::span;
    use proptest::prelude::*;

    #[test]
    fn replay_returns_records_in_order_and_cuts_torn_tail() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("1.wal");
        let mut w = WalWriter::create(&p, true).unwrap();
        let a: Vec<Span> = (0..3).map(|i| span(1, i, "svc-a", "op")).collect();
        let b: Vec<Span> = (3..5).map(|i| span(2, i, "svc-b", "op2")).collect();
        let (ra, rb) = (encode_record(&a), encode_record(&b));
        w.append(&[&ra, &rb]).unwrap();
        let good_len = std::fs::metadata(&p).unwrap().len();
        // A torn third record: header and half a payload.
        let rc = encode_record(&a);
        w.append(&[&rc[..rc.len() / 2]]).unwrap();
        drop(w);
        let r = replay(&p).unwrap();
        let mut want = a.clone();
        want.extend(b.clone());
        assert_eq!(r.spans, want);
        assert!(r.truncated_bytes > 0);
        assert_eq!(
            std::fs::metadata(&p).unwrap().len(),
            good_len,
            "tail truncated"
        );
        // Appending after truncation yields a clean log.
        let mut w = WalWriter::reopen(&p, true).unwrap();
        w.append(&[&rb]).unwrap();
        let r = replay(&p).unwrap();
        assert_eq!(r.spans.len(), 7);
        assert_eq!(r.truncated_bytes, 0);
    }

    fn any_value() -> impl Strategy<Value = AttrValue> {
        let leaf = prop_oneof![
            Just(AttrValue::Empty),
            ".{0,8}".prop_map(AttrValue::Str),
            any::<bool>().prop_map(AttrValue::Bool),
            any::<i64>().prop_map(AttrValue::Int),
            (-1e9f64..1e9).prop_map(AttrValue::Double),
            proptest::collection::vec(any::<u8>(), 0..6).prop_map(AttrValue::Bytes),
        ];
        leaf.prop_recursive(3, 16, 4, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..4).prop_map(AttrValue::Array),
                proptest::collection::vec(("[a-z]{0,4}", inner), 0..4).prop_map(|kvs| {
                    AttrValue::Map(kvs.into_iter().map(|(k, v)| KeyValue::new(k, v)).collect())
                }),
            ]
        })
    }

    proptest! {
        /// The direct encoder produces exactly the bytes' meaning of the
        /// generated prost types.
        #[test]
        fn direct_encoding_matches_prost(
            vals in proptest::collection::vec(("[a-z.]{0,6}", any_value()), 0..6),
            n in 1u64..6,
            flags in any::<u32>(),
            dropped in any::<u32>(),
            split in any::<bool>(),
        ) {
            let mut spans: Vec<Span> = (0..n).map(|i| span(i % 2, i, "svc", "op")).collect();
            let other = Arc::new(Resource { schema_url: "u".into(), dropped_attributes_count: dropped, ..Default::default() });
            for (i, s) in spans.iter_mut().enumerate() {
                s.attributes = vals.iter().map(|(k, v)| KeyValue::new(k.clone(), v.clone())).collect();
                s.flags = flags;
                s.dropped_links_count = dropped;
                s.events.push(Event { time_ns: flags.into(), name: "e".into(), attributes: s.attributes.clone(), dropped_attributes_count: dropped });
                s.links.push(Link { trace_id: TraceId([3; 16]), span_id: SpanId([4; 8]), flags, attributes: s.attributes.clone(), ..Default::default() });
                if split && i % 2 == 1 {
                    s.resource = other.clone();
                }
            }
            let mut mine = Vec::new();
            crate::store::walcodec::encode_traces_data(&spans, &mut mine);
            let reference = pt::TracesData { resource_spans: group(&spans) };
            prop_assert_eq!(pt::TracesData::decode(mine.as_slice()).unwrap(), reference.clone());
            prop_assert_eq!(mine.len(), reference.encode_to_vec().len());
            let back = convert::spans_from_proto(&pt::TracesData::decode(mine.as_slice()).unwrap().resource_spans);
            prop_assert_eq!(back, spans);
        }
    }

    #[test]
    fn replay_stops_at_a_flipped_byte() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("1.wal");
        let mut w = WalWriter::create(&p, false).unwrap();
        let a: Vec<Span> = (0..2).map(|i| span(1, i, "s", "op")).collect();
        let ra = encode_record(&a);
        w.append(&[&ra, &ra]).unwrap();
        drop(w);
        let mut bytes = std::fs::read(&p).unwrap();
        let i = ra.len() + 20;
        bytes[i] ^= 1;
        std::fs::write(&p, &bytes).unwrap();
        let r = replay(&p).unwrap();
        assert_eq!(r.spans, a, "only the first record survives");
        assert_eq!(std::fs::metadata(&p).unwrap().len(), ra.len() as u64);
    }
}
