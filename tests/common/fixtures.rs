//! Loads the OTLP/JSON fixtures in tests/fixtures/, rebased in time so the
//! earliest span starts one hour ago (inside every retention window).

use std::path::Path;

use strand::model::Span;

pub const FILES: [&str; 4] = ["checkout.json", "search.json", "batch.json", "unicode.json"];

pub fn load(name: &str) -> Vec<Span> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    let body = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let req = strand::otlp::json::decode_request(&body).unwrap_or_else(|e| panic!("{name}: {e}"));
    strand::otlp::convert::spans_from_proto(&req.resource_spans)
}

/// Every fixture span, shifted so the earliest starts an hour before now.
pub fn load_all() -> Vec<Span> {
    let mut spans: Vec<Span> = FILES.iter().flat_map(|f| load(f)).collect();
    let min = spans
        .iter()
        .map(|s| s.start_ns)
        .min()
        .expect("fixtures are not empty");
    let shift = strand::model::now_ns() - 3_600_000_000_000 - min;
    for s in &mut spans {
        s.start_ns += shift;
        s.end_ns += shift;
        for e in &mut s.events {
            e.time_ns += shift;
        }
    }
    spans
}
