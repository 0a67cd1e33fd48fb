//! Span metrics' answers to bad requests (400 naming the parameter, in
//! Jaeger's error shape) and on a node with span metrics off (501, as
//! Jaeger answers when no metrics store is configured).

mod common;

use common::http::get_json;
use common::process::Strand;
use common::shape::{assert_fits, load};
use common::span_metrics::parse_exposition;

const SHAPES: &str = "metrics/shapes.json";

#[tokio::test(flavor = "multi_thread")]
async fn bad_input_is_400_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let s = Strand::start(dir.path(), "");
    let cases = [
        ("latencies?service=a", "quantile"),
        ("latencies?service=a&quantile=0", "quantile"),
        ("latencies?service=a&quantile=1.5", "quantile"),
        ("latencies?service=a&quantile=p99", "quantile"),
        ("calls?service=a&step=-5", "step"),
        ("calls?service=a&step=0", "step"),
        ("calls?service=a&step=five", "step"),
        ("calls?service=a&lookback=31536000000", "retention"),
        ("errors?service=a&ratePer=0", "ratePer"),
        ("errors?service=a&endTs=soon", "endTs"),
        ("errors?service=a&spanKind=sideways", "spanKind"),
        (
            "calls?service=a&groupByOperation=perhaps",
            "groupByOperation",
        ),
        ("calls?service=a&lookback=2592000000&step=1", "points"),
        ("calls", "service"),
        ("latencies?quantile=0.5", "service"),
        ("exemplars", "service"),
        ("exemplars?service=a&lookback=31536000000", "retention"),
        ("exemplars?service=a&lookback=-1", "lookback"),
    ];
    for (path, mention) in cases {
        let url = format!("{}/api/metrics/{path}", s.query);
        let (code, v) = get_json(&url).await;
        assert_eq!(code, 400, "{url}: {v}");
        assert_fits(&v, &load(SHAPES, "error"));
        let msg = v["errors"][0]["msg"].as_str().unwrap();
        assert!(
            msg.contains(mention),
            "{url}: {msg:?} should name {mention}"
        );
        assert_eq!(v["errors"][0]["code"], 400);
    }
    // Valid but empty: a family without metrics, not an error.
    let (code, v) = get_json(&format!(
        "{}/api/metrics/latencies?service=nobody&quantile=0.95&step=60000&ratePer=600000",
        s.query
    ))
    .await;
    assert_eq!(code, 200, "{v}");
    assert_fits(&v, &load(SHAPES, "family"));
    assert_eq!(v["metrics"], serde_json::json!([]));
}

#[tokio::test(flavor = "multi_thread")]
async fn disabled_span_metrics_answer_501_as_jaeger() {
    let dir = tempfile::tempdir().unwrap();
    let s = Strand::start(dir.path(), "[span_metrics]\nenabled = false\n");
    for path in [
        "calls?service=a",
        "latencies?service=a&quantile=0.95",
        "errors?service=a",
        "minstep",
        "exemplars?service=a",
    ] {
        let url = format!("{}/api/metrics/{path}", s.query);
        let (code, v) = get_json(&url).await;
        assert_eq!(code, 501, "{url}: {v}");
        assert_fits(&v, &load(SHAPES, "error"));
        assert_eq!(v["errors"][0]["code"], 501);
    }
    // A scrape still succeeds: no series, a valid exposition.
    let parsed = parse_exposition(&s.query);
    assert!(parsed["families"]
        .as_array()
        .unwrap()
        .iter()
        .all(|f| f["samples"].as_array().unwrap().is_empty()));
}
