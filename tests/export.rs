//! Parquet export: round trip of every field, windowing and sorting,
//! filters and time bounds, bad inputs, and the HTTP endpoint.
//!
//! With `STRAND_EXPORT_FIXTURE_DIR` set, `fixture_for_external_readers`
//! also leaves a Parquet file and the expected per-service counts there for
//! tests/parquet_readers.py (pyarrow and DuckDB).

mod common;

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use strand::export::parquet::sort_spans;
use strand::export::{read_spans, read_spans_file, run_export, ExportArgs};
use strand::loadgen::{synthetic_spans, TopologyConfig};
use strand::model::SpanReader;
use strand::model::*;

use common::fixtures::full_span;
use common::store::memory_with;

const HOUR: u64 = 3_600_000_000_000;
/// 2025-11-26T18:00:00Z.
const T0: u64 = 1_764_180_000_000_000_000;

async fn store_with(spans: &[Span]) -> Arc<dyn SpanReader> {
    Arc::new(memory_with(spans.to_vec()).await)
}

type SetArgs = Box<dyn Fn(&mut ExportArgs)>;
type Want = Box<dyn Fn(&Span) -> bool>;

fn args(start: u64, end: u64, out: &Path) -> ExportArgs {
    ExportArgs::new(start.to_string(), end.to_string(), out)
}

fn read_all(files: &[PathBuf]) -> Vec<Span> {
    files
        .iter()
        .flat_map(|f| read_spans_file(f).unwrap())
        .collect()
}

fn ids(spans: &[Span]) -> HashSet<(TraceId, SpanId)> {
    spans.iter().map(|s| (s.trace_id, s.span_id)).collect()
}

#[tokio::test]
async fn round_trip_keeps_every_field() {
    let spans: Vec<Span> = (1..=12)
        .map(|i| full_span(i, T0 + u64::from(i) * 1_000))
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let summary = run_export(
        store_with(&spans).await,
        &args(T0, T0 + HOUR - 1, dir.path()),
    )
    .await
    .unwrap();
    assert_eq!(summary.spans, 12);
    assert_eq!(summary.files.len(), 1);
    assert!(summary.bytes > 0 && summary.to_string().contains("12 spans"));
    let mut expected = spans.clone();
    sort_spans(&mut expected);
    let got = read_all(&summary.files);
    assert_eq!(got.len(), expected.len());
    for (g, e) in got.iter().zip(&expected) {
        // Bytes nested in arrays/maps would come back as base64 text; the
        // fixture nests none, so every value must come back identical.
        assert_eq!(g, e);
    }
}

#[tokio::test]
async fn windows_give_one_sorted_file_each_and_split_when_large() {
    let mut spans = synthetic_spans(&TopologyConfig::default(), 3_000, 3, T0);
    // Spread the spans over three hours.
    for (i, s) in spans.iter_mut().enumerate() {
        let shift = (i % 3) as u64 * HOUR;
        s.start_ns += shift;
        s.end_ns += shift;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut a = args(T0, T0 + 3 * HOUR - 1, dir.path());
    a.max_file_spans = 600;
    let summary = run_export(store_with(&spans).await, &a).await.unwrap();
    assert_eq!(summary.spans as usize, spans.len());
    let names: Vec<String> = summary
        .files
        .iter()
        .map(|f| f.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert!(
        names
            .iter()
            .any(|n| n.starts_with("spans-20251126T180000Z-0000")),
        "{names:?}"
    );
    assert!(
        names
            .iter()
            .any(|n| n.starts_with("spans-20251126T200000Z-0001")),
        "{names:?}"
    );
    for f in &summary.files {
        let got = read_spans_file(f).unwrap();
        assert!(!got.is_empty() && got.len() <= 600);
        let hour = (got[0].start_ns - T0) / HOUR;
        assert!(
            got.iter().all(|s| (s.start_ns - T0) / HOUR == hour),
            "one window per file"
        );
        assert!(
            got.windows(2)
                .all(|w| (w[0].trace_id, w[0].start_ns) <= (w[1].trace_id, w[1].start_ns)),
            "sorted"
        );
    }
    assert_eq!(ids(&read_all(&summary.files)), ids(&spans));
}

#[tokio::test]
async fn filters_and_time_bounds_select_exactly_the_matching_spans() {
    let spans: Vec<Span> = (1..=40)
        .map(|i| full_span(i, T0 + u64::from(i) * 1_000_000))
        .collect();
    let reader = store_with(&spans).await;
    let cases: Vec<(&str, SetArgs, Want)> = vec![
        (
            "service",
            Box::new(|a| a.service = Some("db".into())),
            Box::new(|s| s.service_name() == "db"),
        ),
        (
            "operation",
            Box::new(|a| a.operation = Some("GET /items/1".into())),
            Box::new(|s| s.name == "GET /items/1"),
        ),
        (
            "tags",
            Box::new(|a| a.tags = vec!["http.status_code=500".into(), "cached=true".into()]),
            Box::new(|s| s.status.code == StatusCode::Error && s.trace_id.0[0] % 3 == 0),
        ),
        (
            "durations",
            Box::new(|a| {
                a.min_duration = Some("15ms".into());
                a.max_duration = Some("30ms".into());
            }),
            Box::new(|s| (15_000_000..=30_000_000).contains(&s.duration_ns())),
        ),
        (
            "time bounds are inclusive",
            Box::new(|a| {
                a.start = (T0 + 5_000_000).to_string();
                a.end = (T0 + 9_000_000).to_string();
            }),
            Box::new(|s| (T0 + 5_000_000..=T0 + 9_000_000).contains(&s.start_ns)),
        ),
    ];
    for (what, set, want) in cases {
        let dir = tempfile::tempdir().unwrap();
        let mut a = args(T0, T0 + HOUR, dir.path());
        set(&mut a);
        let summary = run_export(reader.clone(), &a).await.unwrap();
        let expected: Vec<Span> = spans.iter().filter(|s| want(s)).cloned().collect();
        assert!(!expected.is_empty(), "{what}: the case selects something");
        assert!(
            expected.len() < spans.len(),
            "{what}: the case filters something out"
        );
        assert_eq!(ids(&read_all(&summary.files)), ids(&expected), "{what}");
    }
}

#[tokio::test]
async fn empty_range_writes_nothing_and_says_so() {
    let spans = vec![full_span(1, T0)];
    let dir = tempfile::tempdir().unwrap();
    let summary = run_export(
        store_with(&spans).await,
        &args(T0 + HOUR, T0 + 2 * HOUR, dir.path()),
    )
    .await
    .unwrap();
    assert_eq!(summary.spans, 0);
    assert!(summary.files.is_empty());
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    assert!(
        summary.to_string().contains("no spans matched"),
        "{summary}"
    );
}

#[tokio::test]
async fn bad_inputs_give_clear_errors() {
    let reader = store_with(&[full_span(1, T0)]).await;
    let dir = tempfile::tempdir().unwrap();
    let cases: Vec<(SetArgs, &str)> = vec![
        (
            Box::new(|a| a.start = "last tuesday".into()),
            "bad time \"last tuesday\"",
        ),
        (Box::new(|a| a.end = (T0 - 1).to_string()), "before start"),
        (
            Box::new(|a| a.tags = vec!["status".into()]),
            "bad tag \"status\"",
        ),
        (
            Box::new(|a| a.min_duration = Some("fast".into())),
            "bad duration \"fast\"",
        ),
        (Box::new(|a| a.zstd_level = 0), "zstd level"),
        (
            Box::new(|a| a.window = "0s".into()),
            "window must be at least 1s",
        ),
        (
            Box::new(|a| {
                a.start = "0".into();
                a.window = "1s".into();
            }),
            "more than 100000 windows",
        ),
    ];
    for (set, want) in cases {
        let mut a = args(T0, T0 + HOUR, dir.path());
        set(&mut a);
        let e = run_export(reader.clone(), &a).await.unwrap_err();
        assert!(matches!(e, strand::error::Error::InvalidArgument(_)), "{e}");
        assert!(e.to_string().contains(want), "{e} should mention {want}");
    }
}

#[actix_web::test]
async fn http_endpoint_streams_a_parquet_file() {
    use actix_web::{test, web, App};
    let spans = synthetic_spans(&TopologyConfig::default(), 2_000, 5, T0);
    let reader = store_with(&spans).await;
    let app = test::init_service(
        App::new()
            .app_data(web::Data::new(reader))
            .configure(strand::export::http::configure),
    )
    .await;

    let uri = format!(
        "/api/export/parquet?start={}&end={}&service=checkout",
        T0,
        T0 + HOUR
    );
    let resp = test::call_service(&app, test::TestRequest::get().uri(&uri).to_request()).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.headers().get("content-type").unwrap(),
        "application/vnd.apache.parquet"
    );
    assert!(resp
        .headers()
        .get("content-disposition")
        .unwrap()
        .to_str()
        .unwrap()
        .starts_with("attachment"));
    let body = test::read_body(resp).await;
    let got = read_spans(body).unwrap();
    let expected: Vec<&Span> = spans
        .iter()
        .filter(|s| s.service_name() == "checkout")
        .collect();
    assert!(!expected.is_empty());
    assert_eq!(got.len(), expected.len());
    assert!(got.iter().all(|s| s.service_name() == "checkout"));

    // An empty selection is a valid file with no rows.
    let uri = format!(
        "/api/export/parquet?start={}&end={}",
        T0 + 2 * HOUR,
        T0 + 3 * HOUR
    );
    let resp = test::call_service(&app, test::TestRequest::get().uri(&uri).to_request()).await;
    assert_eq!(resp.status(), 200);
    assert!(read_spans(test::read_body(resp).await).unwrap().is_empty());

    for bad in [
        "/api/export/parquet?end=now",
        "/api/export/parquet?start=-1h&end=now&minDuration=soon",
    ] {
        let resp = test::call_service(&app, test::TestRequest::get().uri(bad).to_request()).await;
        assert_eq!(resp.status(), 400, "{bad}");
    }
}

/// Loadgen-realistic spans exported, with the expected per-service counts;
/// kept in `STRAND_EXPORT_FIXTURE_DIR` for tests/parquet_readers.py.
#[tokio::test]
async fn fixture_for_external_readers() {
    let spans = synthetic_spans(
        &TopologyConfig {
            services: 8,
            ..Default::default()
        },
        20_000,
        11,
        T0,
    );
    let mut expected: BTreeMap<String, u64> = BTreeMap::new();
    for s in &spans {
        *expected.entry(s.service_name().to_string()).or_default() += 1;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = std::env::var_os("STRAND_EXPORT_FIXTURE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| tmp.path().to_path_buf());
    std::fs::create_dir_all(&dir).unwrap();
    let summary = run_export(store_with(&spans).await, &args(T0, T0 + HOUR, &dir))
        .await
        .unwrap();
    assert_eq!(summary.spans as usize, spans.len());
    let mut counted: BTreeMap<String, u64> = BTreeMap::new();
    for s in read_all(&summary.files) {
        *counted.entry(s.service_name().to_string()).or_default() += 1;
    }
    assert_eq!(counted, expected);
    let meta = serde_json::json!({
        "files": summary.files.iter().map(|f| f.file_name().unwrap().to_string_lossy().into_owned()).collect::<Vec<_>>(),
        "total": spans.len(),
        "errors": spans.iter().filter(|s| s.is_error()).count(),
        "service_counts": expected,
    });
    std::fs::write(
        dir.join("expected_counts.json"),
        serde_json::to_vec_pretty(&meta).unwrap(),
    )
    .unwrap();
}
