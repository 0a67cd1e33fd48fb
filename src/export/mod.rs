//! Parquet export of stored spans (schema and layout: docs/PARQUET.md).
//!
//! `strand export parquet` and `GET /api/export/parquet` share one pipeline:
//! an async task scans a [`SpanReader`] window by window (bounded chunks),
//! a blocking thread sorts each chunk and encodes it (zstd Parquet).

pub mod http;
pub mod parquet;
pub mod read;
pub mod scan;
pub mod schema;
pub mod timeparse;

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

pub use self::http::{configure, parquet_handler};
pub use self::parquet::{
    encode_to_vec, SpanParquetWriter, WriteOptions, DEFAULT_ROW_GROUP_ROWS, DEFAULT_ZSTD_LEVEL,
};
pub use self::read::{read_spans, read_spans_file};
pub use self::scan::{Chunk, ExportPlan};
use self::timeparse::{format_time, parse_duration, parse_tag, parse_time};
use crate::error::{Error, Result};
use crate::model::SpanReader;
use crate::model::{now_ns, SearchQuery};

/// Default spans per output file: the in-memory sort buffer, at roughly
/// 1 KB of memory per span.
pub const DEFAULT_MAX_FILE_SPANS: usize = 512 * 1024;
const PAGE_SIZE: usize = 8192;

/// `strand export parquet` arguments.
#[derive(clap::Args, Debug, Clone)]
pub struct ExportArgs {
    /// Start of the range (inclusive): RFC3339, unix seconds or nanoseconds, `now`, or relative (`-1h`).
    #[arg(long, allow_hyphen_values = true)]
    pub start: String,
    /// End of the range (inclusive), same forms as --start.
    #[arg(long, default_value = "now", allow_hyphen_values = true)]
    pub end: String,
    #[arg(long)]
    pub service: Option<String>,
    /// Span name.
    #[arg(long)]
    pub operation: Option<String>,
    /// Attribute filter, repeatable: every tag must match the same span.
    #[arg(long = "tag", value_name = "KEY=VALUE")]
    pub tags: Vec<String>,
    /// e.g. 100ms, 1.5s.
    #[arg(long)]
    pub min_duration: Option<String>,
    #[arg(long)]
    pub max_duration: Option<String>,
    /// Output directory (created if missing).
    #[arg(long, default_value = "export")]
    pub out: PathBuf,
    #[arg(long, default_value_t = DEFAULT_ZSTD_LEVEL)]
    pub zstd_level: i32,
    /// Hot-store directory to read (opened read-only); defaults to the configured one.
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Width of a time window; each window is sorted and written separately.
    #[arg(long, default_value = "1h")]
    pub window: String,
    /// Most spans per file (the sort buffer); a larger window is split.
    #[arg(long, default_value_t = DEFAULT_MAX_FILE_SPANS)]
    pub max_file_spans: usize,
    #[arg(long, default_value_t = DEFAULT_ROW_GROUP_ROWS)]
    pub row_group_rows: usize,
    /// Attribute keys given their own typed column (repeatable); defaults to the index allow-list.
    #[arg(long = "typed-column", value_name = "KEY")]
    pub typed_columns: Vec<String>,
}

impl ExportArgs {
    /// Arguments for a range with every other option at its default.
    pub fn new(start: impl Into<String>, end: impl Into<String>, out: impl Into<PathBuf>) -> Self {
        ExportArgs {
            start: start.into(),
            end: end.into(),
            service: None,
            operation: None,
            tags: Vec::new(),
            min_duration: None,
            max_duration: None,
            out: out.into(),
            zstd_level: DEFAULT_ZSTD_LEVEL,
            data_dir: None,
            window: "1h".into(),
            max_file_spans: DEFAULT_MAX_FILE_SPANS,
            row_group_rows: DEFAULT_ROW_GROUP_ROWS,
            typed_columns: Vec::new(),
        }
    }

    pub fn write_options(&self) -> WriteOptions {
        let mut o = WriteOptions {
            zstd_level: self.zstd_level,
            row_group_rows: self.row_group_rows,
            ..Default::default()
        };
        if !self.typed_columns.is_empty() {
            o.typed_keys = self.typed_columns.clone();
        }
        o
    }

    /// Validates the arguments into a plan; every error names the bad value.
    pub fn plan(&self, now: u64) -> Result<ExportPlan> {
        let tags = self
            .tags
            .iter()
            .map(|t| parse_tag(t))
            .collect::<Result<Vec<_>>>()?;
        let query = build_query(
            &self.start,
            &self.end,
            self.service.as_deref(),
            self.operation.as_deref(),
            tags,
            self.min_duration.as_deref(),
            self.max_duration.as_deref(),
            now,
        )?;
        let window_ns = parse_duration(&self.window)?;
        check_window(&query, window_ns)?;
        if self.max_file_spans == 0 {
            return Err(Error::InvalidArgument(
                "--max-file-spans must be positive".into(),
            ));
        }
        check_zstd_level(self.zstd_level)?;
        Ok(ExportPlan {
            query,
            window_ns,
            max_chunk_spans: self.max_file_spans,
            page_size: PAGE_SIZE,
        })
    }
}

pub fn check_zstd_level(level: i32) -> Result<()> {
    if (1..=22).contains(&level) {
        Ok(())
    } else {
        Err(Error::InvalidArgument(format!(
            "bad zstd level {level}: expected 1..=22"
        )))
    }
}

/// Builds the search query shared by the CLI and the HTTP endpoint.
#[allow(clippy::too_many_arguments)]
pub fn build_query(
    start: &str,
    end: &str,
    service: Option<&str>,
    operation: Option<&str>,
    tags: Vec<(String, String)>,
    min_duration: Option<&str>,
    max_duration: Option<&str>,
    now: u64,
) -> Result<SearchQuery> {
    let start_ns = parse_time(start, now)?;
    let end_ns = parse_time(end, now)?;
    if end_ns < start_ns {
        return Err(Error::InvalidArgument(format!(
            "end {} is before start {}",
            format_time(end_ns),
            format_time(start_ns)
        )));
    }
    let min = min_duration.map(parse_duration).transpose()?;
    let max = max_duration.map(parse_duration).transpose()?;
    if let (Some(a), Some(b)) = (min, max) {
        if a > b {
            return Err(Error::InvalidArgument(format!(
                "min duration {a}ns exceeds max duration {b}ns"
            )));
        }
    }
    let nonempty = |s: Option<&str>| s.map(str::trim).filter(|s| !s.is_empty()).map(String::from);
    Ok(SearchQuery {
        service: nonempty(service),
        operation: nonempty(operation),
        tags,
        min_duration_ns: min,
        max_duration_ns: max,
        start_ns: Some(start_ns),
        end_ns: Some(end_ns),
        ..Default::default()
    })
}

/// What an export produced.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct ExportSummary {
    pub spans: u64,
    pub files: Vec<PathBuf>,
    pub bytes: u64,
    pub elapsed: Duration,
    pub start_ns: u64,
    pub end_ns: u64,
}

impl ExportSummary {
    pub fn bytes_per_span(&self) -> f64 {
        if self.spans == 0 {
            0.0
        } else {
            self.bytes as f64 / self.spans as f64
        }
    }
    pub fn spans_per_sec(&self) -> f64 {
        self.spans as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

impl std::fmt::Display for ExportSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.spans == 0 {
            return write!(
                f,
                "no spans matched between {} and {}; no files written",
                format_time(self.start_ns),
                format_time(self.end_ns)
            );
        }
        write!(
            f,
            "exported {} spans into {} file(s): {} bytes, {:.1} bytes/span, in {:.2}s ({:.0} spans/s)",
            self.spans,
            self.files.len(),
            self.bytes,
            self.bytes_per_span(),
            self.elapsed.as_secs_f64(),
            self.spans_per_sec()
        )
    }
}

/// File name of one chunk: window start, then part number.
pub fn file_name(window_start_ns: u64, part: u32) -> String {
    let dt = chrono::DateTime::from_timestamp_nanos(window_start_ns.min(i64::MAX as u64) as i64);
    format!("spans-{}-{part:04}.parquet", dt.format("%Y%m%dT%H%M%SZ"))
}

/// Exports the spans `args` select from `reader` into `args.out`, one file
/// per window (or part of a window), each sorted by trace id then start
/// time. An empty selection writes no file (the summary says so).
pub async fn run_export(reader: Arc<dyn SpanReader>, args: &ExportArgs) -> Result<ExportSummary> {
    let started = Instant::now();
    let plan = args.plan(now_ns())?;
    let (start_ns, end_ns) = plan.range();
    let opts = args.write_options();
    std::fs::create_dir_all(&args.out).map_err(|e| {
        Error::InvalidArgument(format!("cannot create --out {}: {e}", args.out.display()))
    })?;

    let bar = progress_bar(plan.window_count());
    let windows_done = Arc::new(AtomicU64::new(0));
    let spans_done = Arc::new(AtomicU64::new(0));
    let (tx, mut rx) = mpsc::channel::<Result<Chunk>>(1);
    let scanner = tokio::spawn(scan::scan_chunks(reader, plan, tx, windows_done.clone()));

    let out = args.out.clone();
    let counter = spans_done.clone();
    let writer = tokio::task::spawn_blocking(move || -> Result<(Vec<PathBuf>, u64)> {
        let mut files = Vec::new();
        let mut bytes = 0u64;
        while let Some(chunk) = rx.blocking_recv() {
            let mut chunk = chunk?;
            let path = out.join(file_name(chunk.window_start_ns, chunk.part));
            bytes += self::parquet::write_file(&path, &mut chunk.spans, &opts)?;
            counter.fetch_add(chunk.spans.len() as u64, Ordering::Relaxed);
            files.push(path);
        }
        Ok((files, bytes))
    });

    let mut tick = tokio::time::interval(Duration::from_millis(200));
    tokio::pin!(writer);
    let joined = loop {
        tokio::select! {
            r = &mut writer => break r,
            _ = tick.tick() => {
                bar.set_position(windows_done.load(Ordering::Relaxed));
                bar.set_message(format!("{} spans", spans_done.load(Ordering::Relaxed)));
            }
        }
    };
    bar.finish_and_clear();
    // The writer is done, so the scanner has returned (or will, on its next
    // send to the dropped channel).
    let _ = scanner.await;
    let (files, bytes) = joined.map_err(|e| Error::Internal(format!("export writer: {e}")))??;
    Ok(ExportSummary {
        spans: spans_done.load(Ordering::Relaxed),
        files,
        bytes,
        elapsed: started.elapsed(),
        start_ns,
        end_ns,
    })
}

/// `strand export parquet`: runs the export and prints its summary (on
/// stdout, so scripts can capture it; the progress bar is on stderr).
pub async fn main_export(reader: Arc<dyn SpanReader>, args: &ExportArgs) -> Result<()> {
    let summary = run_export(reader, args).await?;
    println!("{summary}");
    for f in &summary.files {
        println!("  {}", f.display());
    }
    Ok(())
}

/// A progress bar on stderr; indicatif hides it when stderr is not a TTY.
fn progress_bar(windows: u64) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::with_draw_target(
        Some(windows),
        indicatif::ProgressDrawTarget::stderr(),
    );
    if let Ok(style) = indicatif::ProgressStyle::with_template(
        "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} windows, {msg}",
    ) {
        bar.set_style(style);
    }
    bar
}

/// Most time windows one export may walk: each is a scan pass, so a tiny
/// window over a long range would keep a worker busy for ever.
pub const MAX_WINDOWS: u64 = 100_000;

/// Rejects windows under a second and ranges that split into more than
/// [`MAX_WINDOWS`] windows.
pub fn check_window(query: &SearchQuery, window_ns: u64) -> Result<()> {
    if window_ns < 1_000_000_000 {
        return Err(Error::InvalidArgument("window must be at least 1s".into()));
    }
    let span = query
        .end_ns
        .unwrap_or(0)
        .saturating_sub(query.start_ns.unwrap_or(0));
    if span / window_ns >= MAX_WINDOWS {
        return Err(Error::InvalidArgument(format!(
            "the range splits into more than {MAX_WINDOWS} windows: use a larger window or a shorter range"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plan_rejects_bad_inputs_with_named_values() {
        let now = 1_764_180_000_000_000_000;
        let mut a = ExportArgs::new("-1h", "now", "/tmp/x");
        assert!(a.plan(now).is_ok());
        a.end = "-2h".into();
        assert!(a
            .plan(now)
            .unwrap_err()
            .to_string()
            .contains("before start"));
        a.end = "now".into();
        a.tags = vec!["oops".into()];
        assert!(a.plan(now).unwrap_err().to_string().contains("oops"));
        a.tags.clear();
        a.min_duration = Some("2s".into());
        a.max_duration = Some("1s".into());
        assert!(a.plan(now).unwrap_err().to_string().contains("exceeds"));
        a.max_duration = None;
        a.zstd_level = 40;
        assert!(a.plan(now).unwrap_err().to_string().contains("zstd"));
    }

    #[test]
    fn file_names_sort_by_window() {
        assert_eq!(
            file_name(1_764_180_000_000_000_000, 2),
            "spans-20251126T180000Z-0002.parquet"
        );
    }
}
