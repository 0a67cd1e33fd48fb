//! `GET /api/export/parquet`: the same export as the CLI, streamed as one
//! Parquet file. Memory stays bounded: chunks of at most
//! [`HTTP_MAX_CHUNK_SPANS`] spans, each sorted and written as its own row
//! group(s), and encoded bytes flow through a bounded channel.

use std::collections::HashMap;
use std::io::Write;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use actix_web::{web, HttpResponse};
use bytes::Bytes;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use super::parquet::{SpanParquetWriter, WriteOptions};
use super::scan::{scan_chunks, Chunk, ExportPlan};
use super::timeparse::{parse_duration, parse_tags_param};
use super::{build_query, check_zstd_level};
use crate::error::{Error, Result};
use crate::model::now_ns;
use crate::model::SpanReader;

/// Spans sorted together per row group in the HTTP stream.
pub const HTTP_MAX_CHUNK_SPANS: usize = 128 * 1024;
/// Encoded bytes handed to the response at a time.
const SEND_BYTES: usize = 256 * 1024;

pub const CONTENT_TYPE: &str = "application/vnd.apache.parquet";

/// Registers `GET /api/export/parquet`. The app must provide
/// `web::Data<Arc<dyn SpanReader>>`.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/api/export/parquet", web::get().to(parquet_handler));
}

fn param<'a>(p: &'a HashMap<String, String>, key: &str) -> Option<&'a str> {
    p.get(key)
        .map(String::as_str)
        .filter(|s| !s.trim().is_empty())
}

/// Parses the query string into a plan (a bad value is a 400 naming it).
pub fn plan_from_params(
    p: &HashMap<String, String>,
    now: u64,
) -> Result<(ExportPlan, WriteOptions)> {
    let start =
        param(p, "start").ok_or_else(|| Error::InvalidArgument("start is required".into()))?;
    let end = param(p, "end").ok_or_else(|| Error::InvalidArgument("end is required".into()))?;
    let tags = param(p, "tags")
        .map(parse_tags_param)
        .transpose()?
        .unwrap_or_default();
    let query = build_query(
        start,
        end,
        param(p, "service"),
        param(p, "operation"),
        tags,
        param(p, "minDuration"),
        param(p, "maxDuration"),
        now,
    )?;
    let mut opts = WriteOptions::default();
    if let Some(l) = param(p, "zstdLevel") {
        opts.zstd_level = l
            .parse()
            .map_err(|_| Error::InvalidArgument(format!("bad zstdLevel {l:?}")))?;
        check_zstd_level(opts.zstd_level)?;
    }
    let window_ns = param(p, "window")
        .map(parse_duration)
        .transpose()?
        .unwrap_or(3_600_000_000_000);
    super::check_window(&query, window_ns)?;
    Ok((
        ExportPlan {
            query,
            window_ns,
            max_chunk_spans: HTTP_MAX_CHUNK_SPANS,
            page_size: 8192,
        },
        opts,
    ))
}

/// Streams the selected spans as a Parquet file. An empty selection is a
/// valid Parquet file with zero rows (so scripted downloads need no special
/// case). An error after the first byte aborts the response (truncated
/// body), since the status line has already been sent.
pub async fn parquet_handler(
    reader: web::Data<Arc<dyn SpanReader>>,
    params: web::Query<HashMap<String, String>>,
) -> Result<HttpResponse> {
    let (plan, opts) = plan_from_params(&params, now_ns())?;
    let reader: Arc<dyn SpanReader> = reader.get_ref().clone();
    let (chunk_tx, chunk_rx) = mpsc::channel::<Result<Chunk>>(1);
    let (body_tx, body_rx) = mpsc::channel::<Result<Bytes>>(4);
    let windows = Arc::new(AtomicU64::new(0));
    tokio::spawn(scan_chunks(reader, plan, chunk_tx, windows));
    tokio::task::spawn_blocking(move || {
        if let Err(e) = encode_stream(chunk_rx, body_tx.clone(), &opts) {
            let _ = body_tx.blocking_send(Err(e));
        }
    });
    let name = format!(
        "strand-spans-{}.parquet",
        super::timeparse::format_time(now_ns()).replace(':', "")
    );
    Ok(HttpResponse::Ok()
        .content_type(CONTENT_TYPE)
        .insert_header((
            "Content-Disposition",
            format!("attachment; filename=\"{name}\""),
        ))
        .streaming(ReceiverStream::new(body_rx)))
}

fn encode_stream(
    mut chunks: mpsc::Receiver<Result<Chunk>>,
    body: mpsc::Sender<Result<Bytes>>,
    opts: &WriteOptions,
) -> Result<()> {
    let sink = ChannelWriter {
        tx: body,
        buf: Vec::with_capacity(SEND_BYTES),
    };
    let mut w = SpanParquetWriter::new(sink, opts)?;
    while let Some(chunk) = chunks.blocking_recv() {
        w.write_chunk(&mut chunk?.spans)?;
    }
    w.finish()?.flush()?;
    Ok(())
}

/// A `Write` that hands bytes to the response body through a bounded
/// channel, blocking (on the blocking pool) while the client is slow.
struct ChannelWriter {
    tx: mpsc::Sender<Result<Bytes>>,
    buf: Vec<u8>,
}

impl ChannelWriter {
    fn send(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let bytes = Bytes::from(std::mem::replace(
            &mut self.buf,
            Vec::with_capacity(SEND_BYTES),
        ));
        self.tx
            .blocking_send(Ok(bytes))
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::BrokenPipe, "client went away"))
    }
}

impl Write for ChannelWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= SEND_BYTES {
            self.send()?;
        }
        Ok(data.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.send()
    }
}
