//! `GET /metrics/spans`: the span metrics as OpenMetrics text, so a
//! Prometheus server scraping strand gets RED series per service and
//! operation. Names and labels follow the OpenTelemetry Collector's
//! span-metrics connector as Prometheus exports it
//! (`traces_span_metrics_calls_total`, `traces_span_metrics_duration_seconds_*`;
//! `service_name`, `span_name`, `span_kind`, `status_code`), from each
//! series' cumulative totals, with the kept trace of each bucket as an
//! exemplar on its `_bucket` line.

use std::fmt::Write;
use std::sync::Arc;

use actix_web::HttpResponse;

use super::metrics_api::blocking;
use crate::error::Result;
use crate::model::{SpanKind, StatusCode};
use crate::spanmetrics::{MetricsReader, Point, SeriesKey, BUCKETS_SECONDS};

pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
const CALLS: &str = "traces_span_metrics_calls";
const DURATION: &str = "traces_span_metrics_duration_seconds";

/// The connector's `span.kind` values (OTLP enum names).
pub fn kind_label(k: SpanKind) -> &'static str {
    match k {
        SpanKind::Unspecified => "SPAN_KIND_UNSPECIFIED",
        SpanKind::Internal => "SPAN_KIND_INTERNAL",
        SpanKind::Server => "SPAN_KIND_SERVER",
        SpanKind::Client => "SPAN_KIND_CLIENT",
        SpanKind::Producer => "SPAN_KIND_PRODUCER",
        SpanKind::Consumer => "SPAN_KIND_CONSUMER",
    }
}

pub fn status_label(s: StatusCode) -> &'static str {
    match s {
        StatusCode::Unset => "STATUS_CODE_UNSET",
        StatusCode::Ok => "STATUS_CODE_OK",
        StatusCode::Error => "STATUS_CODE_ERROR",
    }
}

/// A label value with `\`, `"` and newlines escaped, as OpenMetrics text
/// requires.
pub fn escape(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

/// A number as Prometheus writes it: integers with `.0`, `+Inf`.
fn number(v: f64) -> String {
    if v.is_infinite() {
        return if v > 0.0 { "+Inf" } else { "-Inf" }.into();
    }
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{v:.1}")
    } else {
        format!("{v}")
    }
}

/// Seconds from nanoseconds, exactly to the nanosecond.
fn seconds(ns: u64) -> String {
    let frac = format!("{:09}", ns % 1_000_000_000);
    let frac = frac.trim_end_matches('0');
    if frac.is_empty() {
        format!("{}", ns / 1_000_000_000)
    } else {
        format!("{}.{frac}", ns / 1_000_000_000)
    }
}

fn labels(k: &SeriesKey) -> String {
    format!(
        "service_name=\"{}\",span_name=\"{}\",span_kind=\"{}\",status_code=\"{}\"",
        escape(&k.service),
        escape(&k.operation),
        kind_label(k.kind),
        status_label(k.status)
    )
}

/// The whole exposition, ending with `# EOF`; series in key order.
pub fn render(totals: &[(SeriesKey, Point)]) -> String {
    let mut sorted: Vec<&(SeriesKey, Point)> = totals.iter().collect();
    sorted.sort_by(|a, b| a.0.cmp(&b.0));
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# TYPE {CALLS} counter\n# HELP {CALLS} Spans per service, operation, kind and status, counted before sampling."
    );
    for (k, p) in &sorted {
        let _ = writeln!(out, "{CALLS}_total{{{}}} {}", labels(k), p.calls);
    }
    let _ = writeln!(
        out,
        "# TYPE {DURATION} histogram\n# UNIT {DURATION} seconds\n# HELP {DURATION} Span durations per service, operation, kind and status, counted before sampling."
    );
    for (k, p) in &sorted {
        let l = labels(k);
        let mut cumulative = 0u64;
        for (i, count) in p.buckets.iter().enumerate() {
            cumulative += count;
            let le = BUCKETS_SECONDS.get(i).map_or("+Inf".into(), |b| number(*b));
            let _ = write!(out, "{DURATION}_bucket{{{l},le=\"{le}\"}} {cumulative}");
            if let Some(e) = &p.exemplars[i] {
                let _ = write!(
                    out,
                    " # {{trace_id=\"{}\",span_id=\"{}\"}} {} {}",
                    e.trace_id.to_hex(),
                    e.span_id.to_hex(),
                    seconds(e.duration_ns),
                    seconds(e.time_ns)
                );
            }
            out.push('\n');
        }
        let _ = writeln!(out, "{DURATION}_count{{{l}}} {cumulative}");
        let _ = writeln!(out, "{DURATION}_sum{{{l}}} {}", seconds(p.duration_sum_ns));
    }
    out.push_str("# EOF\n");
    out
}

/// `GET /metrics/spans` over `reader`.
pub async fn serve(reader: Arc<dyn MetricsReader>) -> Result<HttpResponse> {
    let text = blocking(move || reader.totals().map(|t| render(&t))).await?;
    Ok(HttpResponse::Ok().content_type(CONTENT_TYPE).body(text))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{SpanId, TraceId};
    use crate::query::metrics_api_compute::testutil::{key, point};
    use crate::spanmetrics::{Exemplar, BUCKETS};

    #[test]
    fn escapes_label_values() {
        assert_eq!(escape(r#"a"b\c"#), r#"a\"b\\c"#);
        assert_eq!(escape("x\ny"), "x\\ny");
        assert_eq!(escape("GET /ü"), "GET /ü");
    }

    #[test]
    fn numbers_and_seconds() {
        assert_eq!(number(1.0), "1.0");
        assert_eq!(number(0.0001), "0.0001");
        assert_eq!(number(5000.0), "5000.0");
        assert_eq!(seconds(1_500_000_000), "1.5");
        assert_eq!(seconds(2_000_000_000), "2");
        assert_eq!(seconds(1), "0.000000001");
    }

    #[test]
    fn renders_counters_histograms_and_exemplars() {
        let mut k = key("shop \"eu\"", "GET /a\\b", SpanKind::Server);
        k.status = StatusCode::Error;
        let mut p = point(0, &[0.003, 0.003, 0.04], 3);
        p.exemplars[5] = Some(Exemplar {
            trace_id: TraceId([0xab; 16]),
            span_id: SpanId([0xcd; 8]),
            duration_ns: 3_000_000,
            time_ns: 1_700_000_000_250_000_000,
        });
        let other = (key("a", "x", SpanKind::Client), point(0, &[20000.0], 0));
        let text = render(&[(k, p), other]);
        assert!(text.ends_with("# EOF\n"));
        let lines: Vec<&str> = text.lines().collect();
        let l = r#"service_name="shop \"eu\"",span_name="GET /a\\b",span_kind="SPAN_KIND_SERVER",status_code="STATUS_CODE_ERROR""#;
        assert!(
            lines.contains(&format!("traces_span_metrics_calls_total{{{l}}} 3").as_str()),
            "{text}"
        );
        // Sorted by key: service "a" first.
        let first = lines
            .iter()
            .position(|x| x.contains("service_name=\"a\""))
            .unwrap();
        let second = lines.iter().position(|x| x.contains("shop")).unwrap();
        assert!(first < second);
        let bucket = format!(
            "traces_span_metrics_duration_seconds_bucket{{{l},le=\"0.005\"}} 2 # {{trace_id=\"{}\",span_id=\"{}\"}} 0.003 1700000000.25",
            "ab".repeat(16),
            "cd".repeat(8)
        );
        assert!(lines.contains(&bucket.as_str()), "{text}");
        assert!(lines.contains(
            &format!("traces_span_metrics_duration_seconds_bucket{{{l},le=\"+Inf\"}} 3").as_str()
        ));
        assert!(lines
            .contains(&format!("traces_span_metrics_duration_seconds_count{{{l}}} 3").as_str()));
        assert!(lines
            .contains(&format!("traces_span_metrics_duration_seconds_sum{{{l}}} 0.046").as_str()));
        let buckets = lines
            .iter()
            .filter(|x| x.contains("_bucket{service_name=\"a\""))
            .count();
        assert_eq!(buckets, BUCKETS);
        assert!(lines.contains(&"# UNIT traces_span_metrics_duration_seconds seconds"));
    }

    #[test]
    fn empty_is_still_valid() {
        let text = render(&[]);
        assert!(text.starts_with("# TYPE traces_span_metrics_calls counter\n"));
        assert!(text.ends_with("# EOF\n"));
    }
}
