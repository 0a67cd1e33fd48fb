//! `GET /api/metrics/exemplars`: strand's own, for the UI's Monitor page —
//! the traces the histogram buckets kept (stored, sampled traces), so a
//! chart point or a slow bucket opens a real trace.
//!
//! `?service=S[&operation=O][&spanKind=K…]&endTs=ms&lookback=ms` →
//! `{"exemplars":[{traceId, spanId, operation, durationMs, timestampMs,
//! bucketLeMs}]}` (`bucketLeMs` null for +Inf), newest first, at most
//! [`MAX_EXEMPLARS`]. Without `spanKind`, every kind.

use std::collections::HashSet;
use std::sync::Arc;

use actix_web::HttpResponse;
use serde_json::{json, Value};

use super::metrics_api::{blocking, span_kinds, time_range};
use super::params::Params;
use crate::error::{Error, Result};
use crate::model::SpanKind;
use crate::spanmetrics::{MetricsReader, Point, RangeQuery, SeriesKey, BUCKETS_SECONDS};

pub const MAX_EXEMPLARS: usize = 200;
/// A lookback of at most this many points at the storage's resolution is
/// read at that resolution (every stored exemplar).
const FINE_READ_POINTS: u64 = 1000;
/// A longer one is read at a coarser step, at most this many points per
/// series (each merged point keeps its bucket's most recent exemplar).
const MAX_READ_POINTS: u64 = 60;
/// The Monitor page's chart steps (ui/monitor-model.js `STEPS`), seconds:
/// the exemplars of a view are read at its charts' step, so they come
/// from the same cached per-file slots (spanmetrics::store) as its charts
/// and each chart point keeps its windows' newest exemplar per bucket.
const STEPS_S: [u64; 12] = [
    10,
    30,
    60,
    120,
    300,
    600,
    1800,
    3600,
    3 * 3600,
    6 * 3600,
    12 * 3600,
    86_400,
];

/// The parsed request.
#[derive(Clone, Debug, PartialEq)]
pub struct ExemplarQuery {
    pub service: String,
    pub operation: Option<String>,
    pub kinds: Vec<SpanKind>,
    pub start_ns: u64,
    pub end_ns: u64,
}

pub fn parse(p: &Params, now_ns: u64, retention_ns: u64) -> Result<ExemplarQuery> {
    let service = p
        .get("service")
        .ok_or_else(|| Error::InvalidArgument("parameter service: required".into()))?
        .to_string();
    let (start_ns, end_ns) = time_range(p, now_ns, retention_ns)?;
    Ok(ExemplarQuery {
        service,
        operation: p.get("operation").map(String::from),
        kinds: span_kinds(p, &[])?,
        start_ns,
        end_ns,
    })
}

/// The read step: the storage's resolution, coarser for long lookbacks.
fn read_step_ns(q: &ExemplarQuery, min_step_ns: u64) -> u64 {
    let min = min_step_ns.max(1);
    let range = q.end_ns - q.start_ns;
    if range.div_ceil(FINE_READ_POINTS) <= min {
        return min;
    }
    let wanted = range.div_ceil(MAX_READ_POINTS).max(min);
    STEPS_S
        .iter()
        .map(|s| s * 1_000_000_000)
        .find(|&s| s >= wanted && s % min == 0)
        .unwrap_or_else(|| wanted.div_ceil(min) * min)
}

/// Exemplars of the matching series whose span started in the window,
/// each once (a trace kept by two merged points), newest first.
pub fn collect(series: &[(SeriesKey, Vec<Point>)], q: &ExemplarQuery) -> Vec<Value> {
    let mut found = Vec::new();
    for (key, points) in series {
        if q.operation.as_ref().is_some_and(|o| *o != key.operation) {
            continue;
        }
        for p in points {
            for (i, e) in p.exemplars.iter().enumerate() {
                match e {
                    Some(e) if (q.start_ns..=q.end_ns).contains(&e.time_ns) => {
                        found.push((i, key.operation.as_str(), *e));
                    }
                    _ => {}
                }
            }
        }
    }
    found.sort_by(|a, b| {
        b.2.time_ns
            .cmp(&a.2.time_ns)
            .then(a.2.trace_id.cmp(&b.2.trace_id))
    });
    let mut seen = HashSet::new();
    found
        .into_iter()
        .filter(|(_, _, e)| seen.insert((e.trace_id, e.span_id)))
        .take(MAX_EXEMPLARS)
        .map(|(bucket, op, e)| {
            json!({
                "traceId": e.trace_id.to_hex(),
                "spanId": e.span_id.to_hex(),
                "operation": op,
                "durationMs": e.duration_ns as f64 / 1e6,
                "timestampMs": e.time_ns / 1_000_000,
                "bucketLeMs": BUCKETS_SECONDS.get(bucket).map(|s| s * 1000.0),
            })
        })
        .collect()
}

pub fn exemplars_json(
    reader: &dyn MetricsReader,
    query_string: &str,
    now_ns: u64,
) -> Result<Value> {
    let p = Params::parse(query_string)?;
    let q = parse(&p, now_ns, reader.retention_ns())?;
    let step_ns = read_step_ns(&q, reader.min_step_ns());
    let series = reader.range(&RangeQuery {
        service: Some(q.service.clone()),
        kinds: q.kinds.clone(),
        start_ns: q.start_ns,
        end_ns: q.end_ns.saturating_add(1),
        step_ns,
    })?;
    Ok(json!({ "exemplars": collect(&series, &q) }))
}

/// `GET /api/metrics/exemplars` over `reader`.
pub async fn serve(reader: Arc<dyn MetricsReader>, query_string: String) -> Result<HttpResponse> {
    let v =
        blocking(move || exemplars_json(reader.as_ref(), &query_string, crate::model::now_ns()))
            .await?;
    Ok(HttpResponse::Ok().json(v))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{SpanId, TraceId};
    use crate::query::metrics_api_compute::testutil::{key, point, S};
    use crate::spanmetrics::{Exemplar, BUCKETS};

    fn with_exemplar(mut p: Point, bucket: usize, id: u8, time_s: u64, dur_ns: u64) -> Point {
        p.exemplars[bucket] = Some(Exemplar {
            trace_id: TraceId([id; 16]),
            span_id: SpanId([id; 8]),
            duration_ns: dur_ns,
            time_ns: time_s * S,
        });
        p
    }

    fn query(qs: &str) -> Result<ExemplarQuery> {
        parse(&Params::parse(qs).unwrap(), 5000 * S, 86_400 * S)
    }

    #[test]
    fn parses_and_refuses() {
        let q = query("service=a&operation=GET&endTs=2000000&lookback=60000").unwrap();
        assert_eq!(q.service, "a");
        assert_eq!(q.operation.as_deref(), Some("GET"));
        assert!(q.kinds.is_empty(), "every kind by default");
        assert_eq!((q.start_ns, q.end_ns), (1940 * S, 2000 * S));
        for bad in [
            "",
            "service=a&lookback=0",
            "service=a&lookback=999999999999",
            "service=a&spanKind=x",
        ] {
            assert!(
                matches!(query(bad), Err(Error::InvalidArgument(_))),
                "{bad}"
            );
        }
        let long = query("service=a&endTs=100000000&lookback=86400000").unwrap();
        assert_eq!(
            read_step_ns(&long, 10 * S),
            1800 * S,
            "the 24 h charts' step"
        );
        let two_hours = query("service=a&endTs=100000000&lookback=7200000").unwrap();
        assert_eq!(
            read_step_ns(&two_hours, 10 * S),
            10 * S,
            "every stored point"
        );
        let three_hours = query("service=a&endTs=100000000&lookback=10800000").unwrap();
        assert_eq!(
            read_step_ns(&three_hours, 10 * S),
            300 * S,
            "the 3 h charts' step"
        );
        assert_eq!(read_step_ns(&long, 7 * S), 206 * 7 * S, "off the ladder");
        assert_eq!(
            read_step_ns(&query("service=a&lookback=1000").unwrap(), 10 * S),
            10 * S
        );
    }

    #[test]
    fn newest_first_filtered_and_unique() {
        let a = point(1000, &[0.003], 0);
        let a = with_exemplar(a, 5, 1, 1001, 3_000_000);
        let a = with_exemplar(a, BUCKETS - 1, 2, 1005, 6_000_000_000_000);
        let b = with_exemplar(point(1010, &[0.5], 0), 11, 3, 1012, 500_000_000);
        // The same exemplar again (kept by two merged points): listed once.
        let dup = with_exemplar(point(1020, &[0.003], 0), 5, 1, 1001, 3_000_000);
        let old = with_exemplar(point(0, &[0.003], 0), 5, 4, 1, 3_000_000);
        let series = vec![
            (key("s", "GET", SpanKind::Server), vec![old, a, dup]),
            (key("s", "POST", SpanKind::Server), vec![b]),
        ];
        let q = query("service=s&endTs=2000000&lookback=1500000").unwrap();
        let got = collect(&series, &q);
        let ids: Vec<&str> = got.iter().map(|e| e["traceId"].as_str().unwrap()).collect();
        assert_eq!(ids, [&"03".repeat(16), &"02".repeat(16), &"01".repeat(16)]);
        assert_eq!(
            got[2],
            json!({"traceId": "01".repeat(16), "spanId": "01".repeat(8), "operation": "GET",
                   "durationMs": 3.0, "timestampMs": 1_001_000, "bucketLeMs": 5.0})
        );
        assert_eq!(got[1]["bucketLeMs"], Value::Null, "+Inf");
        assert_eq!(got[0]["operation"], "POST");
        let only_get = query("service=s&operation=GET&endTs=2000000&lookback=1500000").unwrap();
        assert_eq!(collect(&series, &only_get).len(), 2);
    }

    #[test]
    fn at_most_the_limit() {
        let pts: Vec<Point> = (0..300)
            .map(|i| {
                with_exemplar(
                    point(1000 + i, &[0.003], 0),
                    5,
                    (i % 250) as u8,
                    1000 + i,
                    1,
                )
            })
            .collect();
        // Trace ids repeat after 250 but span ids do too: 250 unique.
        let series = vec![(key("s", "GET", SpanKind::Server), pts)];
        let q = query("service=s&endTs=2000000&lookback=1500000").unwrap();
        let got = collect(&series, &q);
        assert_eq!(got.len(), MAX_EXEMPLARS);
        assert_eq!(got[0]["timestampMs"], 1_299_000);
    }
}
