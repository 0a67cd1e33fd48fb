//! Jaeger's metrics API as the Jaeger UI's Monitor tab calls it:
//! `/api/metrics/{latencies,calls,errors}` answer one OpenMetrics
//! `MetricFamily` in the proto3 JSON mapping (jaeger's
//! api_v2/metrics/openmetrics.proto), `/api/metrics/minstep` the storage's
//! resolution in the v1 envelope. Parameters and defaults follow Jaeger's
//! `parseMetricsQueryParams`; the arithmetic is in `metrics_api_compute`.
//! See docs/API.md ("Span metrics").

use std::sync::Arc;

use actix_web::middleware::from_fn;
use actix_web::{web, HttpRequest, HttpResponse, Route};
use serde::Serialize;
use serde_json::{json, Value};

use super::jaeger::envelope;
use super::metrics_api_compute::{
    call_rate, error_ratio, group, quantile_ms, read_step_ns, windows, Acc, Grid, GroupKey,
};
use super::params::{bad, Params};
use super::QueryState;
use crate::error::{Error, Result};
use crate::model::SpanKind;
use crate::spanmetrics::{MetricsReader, Point, RangeQuery, SeriesKey};

/// Jaeger's defaults (cmd/query/app default_params.go).
pub const DEFAULT_LOOKBACK_MS: u64 = 3_600_000;
pub const DEFAULT_STEP_MS: u64 = 5_000;
pub const DEFAULT_RATE_PER_MS: u64 = 600_000;
/// Output times per series at most, as Prometheus limits a range query
/// (its "exceeded maximum resolution of 11,000 points").
pub const MAX_POINTS: u64 = 11_000;
const MS: u64 = 1_000_000;

/// Which family a request asks for.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Metric {
    Latencies { quantile: f64 },
    Calls,
    Errors,
}

/// The parsed common parameters.
#[derive(Clone, Debug, PartialEq)]
pub struct MetricsParams {
    pub services: Vec<String>,
    pub group_by_operation: bool,
    pub kinds: Vec<SpanKind>,
    pub grid: Grid,
}

/// A duration parameter in milliseconds, positive, `default` when absent.
pub fn positive_ms(p: &Params, key: &str, default: u64) -> Result<u64> {
    let Some(raw) = p.get(key) else {
        return Ok(default);
    };
    let v: i64 = raw
        .trim()
        .parse()
        .map_err(|_| bad(key, raw, "an integer number of milliseconds"))?;
    if v <= 0 {
        return Err(Error::InvalidArgument(format!(
            "parameter {key}: {v} must be a positive number of milliseconds"
        )));
    }
    let v = v as u64;
    v.checked_mul(MS)
        .ok_or_else(|| bad(key, raw, "a duration that fits in 584 years"))?;
    Ok(v)
}

/// Go's `strconv.ParseBool`, which Jaeger uses for `groupByOperation`.
pub fn go_bool(p: &Params, key: &str) -> Result<bool> {
    match p.get(key) {
        None => Ok(false),
        Some("1" | "t" | "T" | "true" | "TRUE" | "True") => Ok(true),
        Some("0" | "f" | "F" | "false" | "FALSE" | "False") => Ok(false),
        Some(v) => Err(bad(key, v, "a boolean (true, false, 1, 0, t, f)")),
    }
}

/// `spanKind`, repeatable; `server` or `SPAN_KIND_SERVER` alike (the UI
/// sends the first, Jaeger's proto names the second). `default` when absent.
pub fn span_kinds(p: &Params, default: &[SpanKind]) -> Result<Vec<SpanKind>> {
    let raw = p.all("spanKind");
    if raw.is_empty() {
        return Ok(default.to_vec());
    }
    let mut kinds = Vec::new();
    for v in raw {
        let k = SpanKind::parse(v).ok_or_else(|| {
            bad(
                "spanKind",
                v,
                "a span kind (unspecified, internal, server, client, producer, consumer)",
            )
        })?;
        if !kinds.contains(&k) {
            kinds.push(k);
        }
    }
    Ok(kinds)
}

/// `endTs` (Unix ms, default now) and `lookback` (ms, default 1 h, at most
/// the retention): the window `[start, end]` in ns.
pub fn time_range(p: &Params, now_ns: u64, retention_ns: u64) -> Result<(u64, u64)> {
    let end_ns = match p.u64("endTs")? {
        Some(ms) => ms
            .checked_mul(MS)
            .ok_or_else(|| bad("endTs", &ms.to_string(), "a time in Unix milliseconds"))?,
        None => now_ns,
    };
    let lookback_ns = positive_ms(p, "lookback", DEFAULT_LOOKBACK_MS)? * MS;
    if lookback_ns > retention_ns {
        return Err(Error::InvalidArgument(format!(
            "parameter lookback: {} ms is longer than the span-metrics retention ({} ms)",
            lookback_ns / MS,
            retention_ns / MS
        )));
    }
    Ok((end_ns.saturating_sub(lookback_ns), end_ns))
}

/// Every parameter but `quantile`.
pub fn parse_params(p: &Params, now_ns: u64, retention_ns: u64) -> Result<MetricsParams> {
    let services: Vec<String> = p.all("service").into_iter().map(String::from).collect();
    if services.is_empty() {
        return Err(Error::InvalidArgument(
            "parameter service: at least one service is required".into(),
        ));
    }
    let group_by_operation = go_bool(p, "groupByOperation")?;
    let kinds = span_kinds(p, &[SpanKind::Server])?;
    let (start_ns, end_ns) = time_range(p, now_ns, retention_ns)?;
    let step_ns = positive_ms(p, "step", DEFAULT_STEP_MS)? * MS;
    let rate_per_ns = positive_ms(p, "ratePer", DEFAULT_RATE_PER_MS)? * MS;
    if rate_per_ns > retention_ns {
        return Err(Error::InvalidArgument(format!(
            "parameter ratePer: {} ms is longer than the span-metrics retention",
            rate_per_ns / MS
        )));
    }
    let grid = Grid {
        start_ns,
        step_ns,
        end_ns,
        rate_per_ns,
    };
    if grid.points() > MAX_POINTS {
        return Err(Error::InvalidArgument(format!(
            "parameters lookback and step: {} points per series, more than {MAX_POINTS}; \
             use a larger step",
            grid.points()
        )));
    }
    Ok(MetricsParams {
        services,
        group_by_operation,
        kinds,
        grid,
    })
}

/// `quantile`, required by `latencies`: a number in (0, 1].
pub fn parse_quantile(p: &Params) -> Result<f64> {
    let Some(raw) = p.get("quantile") else {
        return Err(Error::InvalidArgument(
            "parameter quantile: required, a number in (0, 1] such as 0.95".into(),
        ));
    };
    match raw.trim().parse::<f64>() {
        Ok(q) if q.is_finite() && q > 0.0 && q <= 1.0 => Ok(q),
        Ok(_) => Err(bad("quantile", raw, "in (0, 1]")),
        Err(_) => Err(bad("quantile", raw, "a number in (0, 1] such as 0.95")),
    }
}

/// Each requested service's series over the grid's read range.
pub fn read(reader: &dyn MetricsReader, q: &MetricsParams) -> Result<Vec<(SeriesKey, Vec<Point>)>> {
    let (start_ns, end_ns) = q.grid.read_range();
    let step_ns = read_step_ns(q.grid.step_ns, q.grid.rate_per_ns, reader.min_step_ns());
    let mut out = Vec::new();
    for service in &q.services {
        out.extend(reader.range(&RangeQuery {
            service: Some(service.clone()),
            kinds: q.kinds.clone(),
            start_ns,
            end_ns,
            step_ns,
        })?);
    }
    Ok(out)
}

/// A gauge value as the proto3 JSON mapping writes a double: a number, or
/// the string "NaN" (what Jaeger answers for an empty window; the UI
/// shows a gap).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Double(pub f64);

impl Serialize for Double {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        match self.0 {
            v if v.is_nan() => s.serialize_str("NaN"),
            v if v.is_infinite() => s.serialize_str(if v > 0.0 { "Infinity" } else { "-Infinity" }),
            v => s.serialize_f64(v),
        }
    }
}

/// jaeger's `MetricFamily` (api_v2/metrics/openmetrics.proto) as the proto3
/// JSON mapping names it; serialized directly, so a 24 h view of 200
/// operations builds no intermediate JSON tree.
#[derive(Debug, Serialize)]
pub struct Family {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub help: String,
    pub metrics: Vec<MetricOut>,
}

#[derive(Debug, Serialize)]
pub struct MetricOut {
    pub labels: Vec<LabelOut>,
    #[serde(rename = "metricPoints")]
    pub metric_points: Vec<PointOut>,
}

#[derive(Debug, Serialize)]
pub struct LabelOut {
    pub name: &'static str,
    pub value: String,
}

#[derive(Debug, Serialize)]
pub struct PointOut {
    #[serde(rename = "gaugeValue")]
    pub gauge_value: GaugeOut,
    #[serde(serialize_with = "shared_str")]
    pub timestamp: Arc<str>,
}

fn shared_str<S: serde::Serializer>(v: &Arc<str>, s: S) -> std::result::Result<S::Ok, S::Error> {
    s.serialize_str(v)
}

#[derive(Debug, Serialize)]
pub struct GaugeOut {
    #[serde(rename = "doubleValue")]
    pub double_value: Double,
}

/// A `google.protobuf.Timestamp` in the proto3 JSON mapping: RFC 3339 in
/// UTC with 0, 3, 6 or 9 fractional digits.
pub fn timestamp(ns: u64) -> String {
    let dt = chrono::DateTime::<chrono::Utc>::from_timestamp(
        i64::try_from(ns / 1_000_000_000).unwrap_or(i64::MAX),
        (ns % 1_000_000_000) as u32,
    )
    .unwrap_or_default();
    dt.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
}

/// One window's value.
fn value(metric: Metric, w: &Acc, rate_per_ns: u64) -> f64 {
    match metric {
        Metric::Latencies { quantile } => quantile_ms(&w.buckets, quantile),
        Metric::Calls => call_rate(w, rate_per_ns),
        Metric::Errors => error_ratio(w),
    }
}

/// Jaeger's family name and help: `service_…` or `service_operation_…`.
fn name_and_help(metric: Metric, by_op: bool) -> (String, String) {
    let (scope, grouping) = if by_op {
        ("service_operation", "grouped by service & operation")
    } else {
        ("service", "grouped by service")
    };
    match metric {
        Metric::Latencies { quantile } => (
            format!("{scope}_latencies"),
            format!("{quantile:.2}th quantile latency, {grouping}"),
        ),
        Metric::Calls => (
            format!("{scope}_call_rate"),
            format!("calls/sec, {grouping}"),
        ),
        Metric::Errors => (
            format!("{scope}_error_rate"),
            format!("error rate, computed as a fraction of errors/sec over calls/sec, {grouping}"),
        ),
    }
}

/// The `MetricFamily`: one metric per group with a point at every output
/// time (labels `service_name` first, then `operation` when grouped).
pub fn family(
    metric: Metric,
    by_op: bool,
    series: &[(SeriesKey, Vec<Point>)],
    grid: &Grid,
) -> Family {
    let (name, help) = name_and_help(metric, by_op);
    // One timestamp string per output time, shared by every metric.
    let times: Vec<Arc<str>> = grid.times().map(|t| Arc::from(timestamp(t))).collect();
    let metrics = group(series, by_op)
        .into_iter()
        .map(|((service, op), points): (GroupKey, _)| {
            let mut labels = vec![LabelOut {
                name: "service_name",
                value: service,
            }];
            if let Some(op) = op {
                labels.push(LabelOut {
                    name: "operation",
                    value: op,
                });
            }
            let metric_points = windows(&points, grid)
                .iter()
                .zip(&times)
                .map(|(w, t)| PointOut {
                    gauge_value: GaugeOut {
                        double_value: Double(value(metric, w, grid.rate_per_ns)),
                    },
                    timestamp: t.clone(),
                })
                .collect();
            MetricOut {
                labels,
                metric_points,
            }
        })
        .collect();
    Family {
        name,
        kind: "GAUGE",
        help,
        metrics,
    }
}

/// The whole answer to `/api/metrics/{latencies,calls,errors}`.
pub fn metric_json(
    reader: &dyn MetricsReader,
    query_string: &str,
    which: &str,
    now_ns: u64,
) -> Result<Family> {
    let p = Params::parse(query_string)?;
    let metric = match which {
        "latencies" => Metric::Latencies {
            quantile: parse_quantile(&p)?,
        },
        "calls" => Metric::Calls,
        "errors" => Metric::Errors,
        other => return Err(Error::NotFound(format!("metric type {other:?}"))),
    };
    let q = parse_params(&p, now_ns, reader.retention_ns())?;
    let series = read(reader, &q)?;
    Ok(family(metric, q.group_by_operation, &series, &q.grid))
}

/// Runs a reader call on the blocking pool (the store reads files).
pub async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    web::block(f)
        .await
        .map_err(|e| Error::Internal(format!("span-metrics read: {e}")))?
}

/// `GET /api/metrics/{latencies,calls,errors}` over `reader`.
pub async fn serve_metric(
    reader: Arc<dyn MetricsReader>,
    query_string: String,
    which: &'static str,
) -> Result<HttpResponse> {
    let v = blocking(move || {
        metric_json(
            reader.as_ref(),
            &query_string,
            which,
            crate::model::now_ns(),
        )
    })
    .await?;
    Ok(HttpResponse::Ok().json(v))
}

/// `GET /api/metrics/minstep`: the finest step in milliseconds, in the v1
/// envelope, as Jaeger answers it.
pub fn minstep(reader: &dyn MetricsReader) -> HttpResponse {
    envelope(json!(reader.min_step_ns() / MS), 0, Value::Null)
}

/// The routes, over `QueryState::span_metrics`.
pub fn configure(cfg: &mut web::ServiceConfig) {
    let family = |which: &'static str| {
        web::get().to(move |req: HttpRequest, state: web::Data<QueryState>| {
            serve_metric(state.span_metrics.clone(), req.query_string().into(), which)
        })
    };
    let routes: Vec<(&str, Route)> = vec![
        ("/api/metrics/latencies", family("latencies")),
        ("/api/metrics/calls", family("calls")),
        ("/api/metrics/errors", family("errors")),
        (
            "/api/metrics/minstep",
            web::get().to(|state: web::Data<QueryState>| async move {
                minstep(state.span_metrics.as_ref())
            }),
        ),
        (
            "/api/metrics/exemplars",
            web::get().to(|req: HttpRequest, state: web::Data<QueryState>| {
                super::metrics_api_exemplars::serve(
                    state.span_metrics.clone(),
                    req.query_string().into(),
                )
            }),
        ),
        (
            "/metrics/spans",
            web::get().to(|state: web::Data<QueryState>| {
                super::openmetrics::serve(state.span_metrics.clone())
            }),
        ),
    ];
    for (path, route) in routes {
        cfg.service(
            web::resource(path)
                .wrap(from_fn(super::record))
                .route(route),
        );
    }
}

#[cfg(test)]
#[path = "metrics_api_tests.rs"]
mod tests;
