//! Reading the spans to export in bounded windows of start time: each window
//! is scanned page by page and handed on in chunks of at most
//! `max_chunk_spans` spans, so memory stays bounded however large the range.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use tokio::sync::mpsc;

use crate::error::Result;
use crate::model::SpanReader;
use crate::model::{SearchQuery, Span};

/// What to export and how to cut it.
#[derive(Clone, Debug)]
pub struct ExportPlan {
    /// Filters; `start_ns` and `end_ns` (inclusive) are set.
    pub query: SearchQuery,
    /// Windows are aligned to multiples of this (one hour by default).
    pub window_ns: u64,
    /// A window with more spans is cut into several chunks (files).
    pub max_chunk_spans: usize,
    pub page_size: usize,
}

/// Spans of one window (or part of one), unsorted.
pub struct Chunk {
    pub window_start_ns: u64,
    pub part: u32,
    pub spans: Vec<Span>,
}

impl ExportPlan {
    pub fn range(&self) -> (u64, u64) {
        (
            self.query.start_ns.unwrap_or(0),
            self.query.end_ns.unwrap_or(u64::MAX),
        )
    }

    /// Window starts covering the range, aligned to `window_ns`.
    pub fn windows(&self) -> impl Iterator<Item = u64> {
        let (start, _) = self.range();
        let w = self.window_ns.max(1);
        let first = start - start % w;
        (0..self.window_count()).map(move |i| first.saturating_add(i.saturating_mul(w)))
    }

    pub fn window_count(&self) -> u64 {
        let (start, end) = self.range();
        let end = end.max(start);
        let w = self.window_ns.max(1);
        (end - (start - start % w)) / w + 1
    }
}

/// Scans the plan's windows in order and sends chunks to `tx`; stops early
/// (without error) when the receiver goes away. An error is sent on too, so
/// the writer can abort.
pub async fn scan_chunks(
    reader: Arc<dyn SpanReader>,
    plan: ExportPlan,
    tx: mpsc::Sender<Result<Chunk>>,
    windows_done: Arc<AtomicU64>,
) {
    use futures::FutureExt;
    // A panicking reader must not look like the end of the data (which
    // would produce a valid but incomplete file).
    let result = std::panic::AssertUnwindSafe(scan_inner(reader, &plan, &tx, &windows_done))
        .catch_unwind()
        .await;
    let err = match result {
        Ok(Ok(())) => return,
        Ok(Err(e)) => e,
        Err(_) => crate::error::Error::Internal("storage scan panicked; export aborted".into()),
    };
    let _ = tx.send(Err(err)).await;
}

async fn scan_inner(
    reader: Arc<dyn SpanReader>,
    plan: &ExportPlan,
    tx: &mpsc::Sender<Result<Chunk>>,
    windows_done: &AtomicU64,
) -> Result<()> {
    let (start, end) = plan.range();
    let w = plan.window_ns.max(1);
    let max_chunk = plan.max_chunk_spans.max(1);
    for ws in plan.windows() {
        let mut q = plan.query.clone();
        q.start_ns = Some(ws.max(start));
        q.end_ns = Some(ws.saturating_add(w - 1).min(end));
        let mut cursor: Option<String> = None;
        let mut buf: Vec<Span> = Vec::new();
        let mut part = 0u32;
        loop {
            let page = reader
                .scan(&q, cursor.as_deref(), plan.page_size.max(1))
                .await?;
            for s in page.spans {
                buf.push(s);
                if buf.len() >= max_chunk {
                    let spans = std::mem::take(&mut buf);
                    if tx
                        .send(Ok(Chunk {
                            window_start_ns: ws,
                            part,
                            spans,
                        }))
                        .await
                        .is_err()
                    {
                        return Ok(());
                    }
                    part += 1;
                }
            }
            match page.next {
                Some(n) => cursor = Some(n),
                None => break,
            }
        }
        if !buf.is_empty()
            && tx
                .send(Ok(Chunk {
                    window_start_ns: ws,
                    part,
                    spans: buf,
                }))
                .await
                .is_err()
        {
            return Ok(());
        }
        windows_done.fetch_add(1, Ordering::Relaxed);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_are_aligned_and_cover_the_range() {
        let h = 3_600_000_000_000u64;
        let plan = ExportPlan {
            query: SearchQuery {
                start_ns: Some(10 * h + 5),
                end_ns: Some(12 * h),
                ..Default::default()
            },
            window_ns: h,
            max_chunk_spans: 10,
            page_size: 10,
        };
        assert_eq!(
            plan.windows().collect::<Vec<_>>(),
            vec![10 * h, 11 * h, 12 * h]
        );
        assert_eq!(plan.window_count(), 3);
    }
}
