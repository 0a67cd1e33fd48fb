//! Sealed segments: an immutable Arrow IPC file (`<id>.arrow`) and its
//! index (`<id>.idx`), each ending in the checksummed footer of
//! [`super::format`]. Opening verifies both checksums, then maps the data
//! file and hands Arrow buffers that point straight into the mapping (no
//! copy), as arrow-rs's `zero_copy_ipc` example does.

use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::ptr::NonNull;
use std::sync::{Arc, OnceLock};

use arrow::array::RecordBatch;
use arrow::buffer::Buffer;
use arrow::ipc::convert::try_fb_to_schema;
use arrow::ipc::reader::{read_footer_length, FileDecoder};
use arrow::ipc::root_as_footer;
use arrow::ipc::writer::FileWriter;
use memmap2::Mmap;

use super::format::{self, ChecksumWriter, FileKind};
use super::rows::Columns;
use super::schema;
use crate::error::{Error, Result};
use crate::index::SegmentIndex;
use crate::model::Span;

pub fn data_path(dir: &Path, id: u64) -> PathBuf {
    dir.join(format!("{id:020}.arrow"))
}

pub fn index_path(dir: &Path, id: u64) -> PathBuf {
    dir.join(format!("{id:020}.idx"))
}

/// Writes both files of segment `id` (temp name, fsync, rename, fsync dir)
/// and returns their total size in bytes.
pub fn write(dir: &Path, id: u64, spans: &[Span], index: &SegmentIndex) -> Result<u64> {
    let batch = schema::to_batch(spans)?;
    let path = data_path(dir, id);
    let tmp = path.with_extension("arrow.tmp");
    let ae = |e: arrow::error::ArrowError| Error::Internal(format!("writing segment {id}: {e}"));
    let data_len = {
        let file = File::create(&tmp)?;
        let mut w =
            FileWriter::try_new(ChecksumWriter::new(BufWriter::new(file)), &schema::schema())
                .map_err(ae)?;
        w.write(&batch).map_err(ae)?;
        w.finish().map_err(ae)?;
        let (buf, len) = w.into_inner().map_err(ae)?.finish(FileKind::SegmentData)?;
        let file = buf.into_inner().map_err(|e| Error::Io(e.into_error()))?;
        file.sync_all()?;
        len
    };
    fs::rename(&tmp, &path)?;
    let idx = index.encode();
    let ipath = index_path(dir, id);
    let itmp = ipath.with_extension("idx.tmp");
    {
        let mut f = File::create(&itmp)?;
        f.write_all(&idx)?;
        f.write_all(&format::footer(FileKind::SegmentIndex, &idx))?;
        f.sync_all()?;
    }
    fs::rename(&itmp, &ipath)?;
    format::sync_dir(dir)?;
    Ok(data_len + idx.len() as u64 + format::FOOTER_LEN as u64)
}

/// A sealed, memory-mapped segment with its index.
pub struct SealedSegment {
    pub id: u64,
    pub index: SegmentIndex,
    pub columns: Columns,
    /// Bytes on disk (data + index).
    pub bytes: u64,
    /// The trace table by latest end, built on the first search (4 bytes
    /// per trace).
    by_latest_end: OnceLock<Vec<u32>>,
}

impl std::fmt::Debug for SealedSegment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SealedSegment")
            .field("id", &self.id)
            .field("rows", &self.index.rows)
            .finish()
    }
}

impl SealedSegment {
    /// Opens and verifies segment `id`. Any damage is `Error::Corrupt`.
    pub fn open(dir: &Path, id: u64) -> Result<SealedSegment> {
        let ibytes = fs::read(index_path(dir, id))?;
        let (payload, version) = format::verify_versioned(FileKind::SegmentIndex, &ibytes)?;
        let index = SegmentIndex::decode_version(payload, version)?;
        let file = File::open(data_path(dir, id))?;
        // SAFETY: segment files are immutable: written under a temp name,
        // fsynced, renamed into place, and never opened for writing again.
        // Retention unlinks them (never truncates), which leaves existing
        // mappings valid. So the mapped bytes cannot change underneath us.
        let mmap = unsafe { Mmap::map(&file)? };
        let payload_len = format::verify(FileKind::SegmentData, &mmap)?.len();
        let mmap = Arc::new(mmap);
        let ptr = NonNull::new(mmap.as_ptr() as *mut u8)
            .ok_or_else(|| Error::Corrupt("empty mapping".into()))?;
        // SAFETY: `ptr` is the start of a live mapping at least
        // `payload_len` bytes long (verify checked the length), and the
        // Buffer keeps the mapping alive through the `Arc<Mmap>` owner it
        // holds. Arrow only reads through it; the mapping is read-only.
        let buffer = unsafe { Buffer::from_custom_allocation(ptr, payload_len, mmap.clone()) };
        let batch =
            decode_ipc(&buffer).map_err(|e| Error::Corrupt(format!("segment {id}: {e}")))?;
        if batch.num_rows() != index.rows as usize {
            return Err(Error::Corrupt(format!(
                "segment {id}: index has {} rows, data {}",
                index.rows,
                batch.num_rows()
            )));
        }
        let columns = Columns::new(&batch)?;
        let bytes = (mmap.len() + ibytes.len()) as u64;
        Ok(SealedSegment {
            id,
            index,
            columns,
            bytes,
            by_latest_end: OnceLock::new(),
        })
    }

    /// Trace positions by latest end, latest first (see
    /// `TraceTable::by_latest_end`).
    pub fn traces_by_latest_end(&self) -> &[u32] {
        self.by_latest_end
            .get_or_init(|| self.index.traces.by_latest_end())
    }
}

/// Decodes the single record batch of an IPC file image without copying.
fn decode_ipc(buffer: &Buffer) -> std::result::Result<RecordBatch, String> {
    let len = buffer.len();
    let trailer_start = len.checked_sub(10).ok_or("file too short")?;
    let trailer: [u8; 10] = buffer[trailer_start..].try_into().map_err(|_| "trailer")?;
    let footer_len = read_footer_length(trailer).map_err(|e| e.to_string())?;
    let footer_start = trailer_start
        .checked_sub(footer_len)
        .ok_or("footer length out of range")?;
    let footer = root_as_footer(&buffer[footer_start..trailer_start]).map_err(|e| e.to_string())?;
    let fb_schema = footer.schema().ok_or("no schema")?;
    let file_schema = try_fb_to_schema(fb_schema).map_err(|e| e.to_string())?;
    if file_schema.fields() != schema::schema().fields() {
        return Err("schema differs from this version's".into());
    }
    // The file's own schema carries the dictionary ids its blocks use.
    let mut decoder = FileDecoder::new(Arc::new(file_schema), footer.version());
    let block_slice = |offset: i64, meta: i32, body: i64| -> std::result::Result<Buffer, String> {
        let start = usize::try_from(offset).map_err(|_| "negative block offset")?;
        let blen = usize::try_from(body)
            .ok()
            .zip(usize::try_from(meta).ok())
            .map(|(b, m)| b + m)
            .ok_or("block length")?;
        if start.checked_add(blen).is_none_or(|end| end > footer_start) {
            return Err("block out of range".into());
        }
        Ok(buffer.slice_with_length(start, blen))
    };
    for block in footer.dictionaries().iter().flatten() {
        let data = block_slice(block.offset(), block.metaDataLength(), block.bodyLength())?;
        decoder
            .read_dictionary(block, &data)
            .map_err(|e| e.to_string())?;
    }
    let batches = footer.recordBatches().ok_or("no record batches")?;
    if batches.len() != 1 {
        return Err(format!(
            "expected one record batch, found {}",
            batches.len()
        ));
    }
    let block = batches.get(0);
    let data = block_slice(block.offset(), block.metaDataLength(), block.bodyLength())?;
    decoder
        .read_record_batch(block, &data)
        .map_err(|e| e.to_string())?
        .ok_or_else(|| "empty record batch".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::index::IndexBuilder;
    use crate::store::rows::RowCache;
    use crate::store::testutil::span;
    use proptest::prelude::*;

    fn write_segment(dir: &Path, spans: &[Span]) -> u64 {
        let mut b = IndexBuilder::new(&["user_id".to_string()]);
        spans.iter().for_each(|s| b.add(s));
        write(dir, 7, spans, &b.finish()).unwrap()
    }

    #[test]
    fn written_segment_reads_back_zero_copy() {
        let dir = tempfile::tempdir().unwrap();
        let spans: Vec<Span> = (0..50).map(|i| span(i % 5, i, "svc", "op")).collect();
        let bytes = write_segment(dir.path(), &spans);
        let seg = SealedSegment::open(dir.path(), 7).unwrap();
        assert_eq!(seg.bytes, bytes);
        let mut cache = RowCache::default();
        for (i, s) in spans.iter().enumerate() {
            assert_eq!(&seg.columns.span(i, &mut cache).unwrap(), s);
        }
        assert_eq!(
            seg.index.trace_rows(&spans[0].trace_id),
            &[0, 5, 10, 15, 20, 25, 30, 35, 40, 45]
        );
    }

    #[test]
    fn older_index_files_still_open() {
        let dir = tempfile::tempdir().unwrap();
        let spans: Vec<Span> = (0..20).map(|i| span(i % 4, i, "svc", "op")).collect();
        write_segment(dir.path(), &spans);
        let fresh = SealedSegment::open(dir.path(), 7).unwrap();
        assert!(
            !fresh.index.catalog.span.is_empty() && fresh.index.catalog.per_service_complete(),
            "the current format holds a catalog with its per-service part"
        );
        // Rewrite the index as older versions wrote it.
        for version in [1, 2] {
            let old = fresh.index.encode_version(version);
            let mut file = old.clone();
            file.extend_from_slice(&format::footer_versioned(
                FileKind::SegmentIndex,
                version,
                &old,
            ));
            std::fs::write(index_path(dir.path(), 7), file).unwrap();
            let seg = SealedSegment::open(dir.path(), 7).unwrap();
            if version == 1 {
                assert_eq!(seg.index.catalog, crate::index::catalog::format_1_catalog());
                assert!(seg.index.edges.is_empty());
            } else {
                assert_eq!(seg.index.catalog.span, fresh.index.catalog.span);
                assert_eq!(seg.index.edges, fresh.index.edges);
            }
            assert!(
                !seg.index.catalog.per_service_complete(),
                "version {version}"
            );
            assert_eq!(seg.index.postings, fresh.index.postings);
            assert_eq!(
                seg.index.trace_rows(&spans[0].trace_id),
                fresh.index.trace_rows(&spans[0].trace_id)
            );
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]
        #[test]
        fn segment_codec_round_trips_and_detects_flips(n in 1u64..40, flip in any::<prop::sample::Index>(), data_file in any::<bool>()) {
            let dir = tempfile::tempdir().unwrap();
            let spans: Vec<Span> = (0..n).map(|i| span(i % 3, i, if i % 2 == 0 { "a" } else { "b" }, "op")).collect();
            write_segment(dir.path(), &spans);
            let seg = SealedSegment::open(dir.path(), 7).unwrap();
            let mut cache = RowCache::default();
            let back: Vec<Span> = (0..spans.len()).map(|i| seg.columns.span(i, &mut cache).unwrap()).collect();
            prop_assert_eq!(back, spans);
            drop(seg);
            let p = if data_file { data_path(dir.path(), 7) } else { index_path(dir.path(), 7) };
            let mut bytes = std::fs::read(&p).unwrap();
            let i = flip.index(bytes.len());
            bytes[i] ^= 0x10;
            std::fs::write(&p, &bytes).unwrap();
            prop_assert!(matches!(SealedSegment::open(dir.path(), 7), Err(Error::Corrupt(_))));
        }
    }
}
