//! Writing sorted span chunks as Parquet: writer properties (zstd, row
//! groups sized for analytics, encodings per column) and whole-file output
//! (written under a temporary name, fsynced, then renamed).

use std::io::Write;
use std::path::{Path, PathBuf};

use arrow::datatypes::SchemaRef;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, Encoding, ZstdLevel};
use parquet::file::metadata::SortingColumn;
use parquet::file::properties::{WriterProperties, WriterVersion};
use parquet::schema::types::ColumnPath;

use super::schema::{self, START_TIME_COLUMN};
use crate::error::{Error, Result};
use crate::model::Span;

/// Rows per row group: large enough for efficient column scans and good
/// compression, small enough that a writer holds a bounded amount in memory.
pub const DEFAULT_ROW_GROUP_ROWS: usize = 128 * 1024;
/// Spans converted to Arrow at a time (bounds the transient batch).
const BATCH_ROWS: usize = 16 * 1024;
pub const DEFAULT_ZSTD_LEVEL: i32 = 3;

/// How files are written.
#[derive(Clone, Debug)]
pub struct WriteOptions {
    pub zstd_level: i32,
    pub row_group_rows: usize,
    /// Allow-listed attribute keys that get their own typed column.
    pub typed_keys: Vec<String>,
}

impl Default for WriteOptions {
    fn default() -> Self {
        WriteOptions {
            zstd_level: DEFAULT_ZSTD_LEVEL,
            row_group_rows: DEFAULT_ROW_GROUP_ROWS,
            typed_keys: crate::config::default_indexed_keys(),
        }
    }
}

pub(crate) fn parquet_err(e: parquet::errors::ParquetError) -> Error {
    match e {
        parquet::errors::ParquetError::External(inner) => {
            match inner.downcast::<std::io::Error>() {
                Ok(io) => Error::Io(*io),
                Err(other) => Error::Internal(format!("parquet: {other}")),
            }
        }
        other => Error::Internal(format!("parquet: {other}")),
    }
}

fn properties(o: &WriteOptions) -> Result<WriterProperties> {
    let level = ZstdLevel::try_new(o.zstd_level).map_err(|_| {
        Error::InvalidArgument(format!("bad zstd level {}: expected 1..=22", o.zstd_level))
    })?;
    let mut b = WriterProperties::builder()
        .set_writer_version(WriterVersion::PARQUET_1_0)
        .set_compression(Compression::ZSTD(level))
        .set_max_row_group_row_count(Some(o.row_group_rows.max(1)))
        .set_created_by(format!("strand {}", env!("CARGO_PKG_VERSION")))
        // Every row group is sorted by (trace_id, start_time): readers may
        // use it to skip or merge.
        .set_sorting_columns(Some(vec![
            SortingColumn {
                column_idx: 0,
                descending: false,
                nulls_first: false,
            },
            SortingColumn {
                column_idx: START_TIME_COLUMN as i32,
                descending: false,
                nulls_first: false,
            },
        ]));
    // Random ids do not repeat within a trace: a dictionary only costs.
    for c in ["span_id", "parent_span_id"] {
        b = b.set_column_dictionary_enabled(ColumnPath::from(c), false);
    }
    // Times within a trace are close to each other and rows are sorted by
    // trace: deltas are small.
    for c in ["start_time", "end_time", "duration_ns"] {
        b = b
            .set_column_dictionary_enabled(ColumnPath::from(c), false)
            .set_column_encoding(ColumnPath::from(c), Encoding::DELTA_BINARY_PACKED);
    }
    Ok(b.build())
}

/// Sorts spans by trace id, then start time (then span id, for a stable
/// order between equal keys).
pub fn sort_spans(spans: &mut [Span]) {
    spans.sort_unstable_by(|a, b| {
        a.trace_id
            .cmp(&b.trace_id)
            .then(a.start_ns.cmp(&b.start_ns))
            .then(a.span_id.cmp(&b.span_id))
    });
}

/// A Parquet writer of sorted span chunks over any sink.
pub struct SpanParquetWriter<W: Write + Send> {
    writer: ArrowWriter<W>,
    schema: SchemaRef,
    typed_keys: Vec<String>,
    rows: u64,
}

impl<W: Write + Send> SpanParquetWriter<W> {
    pub fn new(sink: W, opts: &WriteOptions) -> Result<Self> {
        let schema = schema::schema(&opts.typed_keys);
        let writer = ArrowWriter::try_new(sink, schema.clone(), Some(properties(opts)?))
            .map_err(parquet_err)?;
        Ok(SpanParquetWriter {
            writer,
            schema,
            typed_keys: opts.typed_keys.clone(),
            rows: 0,
        })
    }

    /// Sorts the chunk and writes it; the chunk ends its row group so that
    /// every row group is sorted.
    pub fn write_chunk(&mut self, spans: &mut [Span]) -> Result<()> {
        sort_spans(spans);
        for part in spans.chunks(BATCH_ROWS) {
            let refs: Vec<&Span> = part.iter().collect();
            let batch = schema::to_batch(&self.schema, &self.typed_keys, &refs)?;
            self.writer.write(&batch).map_err(parquet_err)?;
        }
        self.writer.flush().map_err(parquet_err)?;
        self.rows += spans.len() as u64;
        Ok(())
    }

    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// Writes the footer and returns the sink.
    pub fn finish(self) -> Result<W> {
        self.writer.into_inner().map_err(parquet_err)
    }
}

/// Writes one sorted chunk as a complete file at `path` (via `path.tmp`,
/// fsync, rename, so a reader never sees a partial file). Returns its size.
pub fn write_file(path: &Path, spans: &mut [Span], opts: &WriteOptions) -> Result<u64> {
    let tmp = tmp_path(path);
    let result = (|| {
        let file = std::fs::File::create(&tmp)?;
        let mut w = SpanParquetWriter::new(std::io::BufWriter::with_capacity(1 << 20, file), opts)?;
        w.write_chunk(spans)?;
        let file = w
            .finish()?
            .into_inner()
            .map_err(|e| Error::Io(e.into_error()))?;
        file.sync_all()?;
        let size = file.metadata()?.len();
        std::fs::rename(&tmp, path)?;
        Ok(size)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

fn tmp_path(path: &Path) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(".tmp");
    PathBuf::from(s)
}

/// Encodes spans into an in-memory Parquet file (benches, tests).
pub fn encode_to_vec(spans: &mut [Span], opts: &WriteOptions) -> Result<Vec<u8>> {
    let mut w = SpanParquetWriter::new(Vec::new(), opts)?;
    w.write_chunk(spans)?;
    w.finish()
}
