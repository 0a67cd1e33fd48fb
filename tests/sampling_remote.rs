//! The remote-sampling endpoint for real: `strand serve` with a Jaeger
//! strategies file, polled by the OpenTelemetry Rust SDK's Jaeger remote
//! sampler, which then samples at the served rate and follows a change of
//! the file; HTTP (own port and query port) and gRPC answer alike; a
//! malformed file is reported with its line while the previous strategies
//! stay in force.

mod common;

use std::time::Duration;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider};

use common::http::{get_text, metric};
use common::process::Strand;
use common::sampling::{
    near, probabilistic, probability_of, sampled_of, served, write_strategies, Client,
};
use common::wait;
use strand::strategies::grpc::proto;

const WITHIN: Duration = Duration::from_secs(30);

fn config(file: &std::path::Path) -> String {
    format!(
        "[sampling.remote]\nstrategies_file = {:?}\nreload_interval_ms = 200\n",
        file.display().to_string()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sdk_remote_sampler_samples_at_the_served_rate_and_follows_file_changes() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("strategies.json");
    write_strategies(&file, &probabilistic("checkout", 0.25, 0.0));
    let s = Strand::start(dir.path(), &config(&file));

    let sampler = Sampler::jaeger_remote(
        opentelemetry_sdk::runtime::Tokio,
        Client::default(),
        Sampler::AlwaysOff,
        "checkout",
    )
    .with_endpoint(format!("{}/sampling", s.sampling))
    .with_update_interval(Duration::from_millis(200))
    .build()
    .expect("remote sampler");
    let provider = SdkTracerProvider::builder().with_sampler(sampler).build();
    let tracer = provider.tracer("remote-sampling-test");

    // Until the first poll the default (AlwaysOff) samples nothing; then
    // the served 25%, within 5 standard deviations over 4000 roots.
    let n = 4000;
    let k = wait::value("the SDK to sample at 0.25", WITHIN, async || {
        let k = sampled_of(&tracer, "GET /cart", n);
        near(k, n, 0.25, 5.0).then_some(k)
    })
    .await;
    assert!(k > 0);

    // A per-operation strategy in a new file reaches the SDK.
    write_strategies(
        &file,
        r#"{"service_strategies":[{"service":"checkout","type":"probabilistic","param":0.75,
            "operation_strategies":[{"operation":"GET /health","type":"probabilistic","param":0.0}]}],
           "default_strategy":{"type":"probabilistic","param":0.0}}"#,
    );
    wait::until("the SDK to sample at 0.75", WITHIN, async || {
        near(sampled_of(&tracer, "GET /cart", n), n, 0.75, 5.0)
    })
    .await;
    assert_eq!(sampled_of(&tracer, "GET /health", 1000), 0, "per operation");
    let _ = provider.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_grpc_and_query_port_answer_alike_and_a_bad_file_keeps_the_previous_strategies() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("strategies.json");
    write_strategies(&file, &probabilistic("shop", 0.5, 0.125));
    let s = Strand::start(dir.path(), &config(&file));

    let (code, own) = served(&s.sampling, "/sampling", "shop").await;
    assert_eq!(code, 200, "{own}");
    // The shape Jaeger's endpoint has and the SDKs parse.
    assert_eq!(own["strategyType"], "PROBABILISTIC");
    assert_eq!(own["probabilisticSampling"]["samplingRate"], 0.5);
    let (_, via_query) = served(&s.query, "/api/sampling", "shop").await;
    assert_eq!(own, via_query);
    let (_, other) = served(&s.sampling, "/sampling", "somebody-else").await;
    assert_eq!(probability_of(&other, "x"), 0.125, "default strategy");
    let (code, body) = get_text(&format!("{}/sampling", s.sampling)).await;
    assert_eq!(code, 400);
    assert!(body.contains("'service' parameter"), "{body}");

    let mut grpc =
        proto::sampling_manager_client::SamplingManagerClient::connect(s.sampling_grpc.clone())
            .await
            .expect("gRPC connects");
    let answer = grpc
        .get_sampling_strategy(proto::SamplingStrategyParameters {
            service_name: "shop".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(answer.probabilistic_sampling.unwrap().sampling_rate, 0.5);
    assert_eq!(
        answer.strategy_type,
        proto::SamplingStrategyType::Probabilistic as i32
    );

    // Malformed: a missing comma on line 3.
    let errors_before = metric(&s.query, "strand_sampling_strategies_reload_errors_total").await;
    write_strategies(
        &file,
        "{\n  \"default_strategy\": {\"type\": \"probabilistic\", \"param\": 1.0},\n  \"service_strategies\": [{\"service\": \"shop\" \"type\": \"probabilistic\", \"param\": 1.0}]\n}\n",
    );
    wait::until("the reload error to be counted", WITHIN, async || {
        metric(&s.query, "strand_sampling_strategies_reload_errors_total").await > errors_before
    })
    .await;
    let log = std::fs::read_to_string(s.dir.join("strand.log")).unwrap();
    let line = log
        .lines()
        .find(|l| l.contains("sampling strategies not reloaded"))
        .expect("the error is logged");
    assert!(line.contains("line 3"), "{line}");
    assert!(line.contains("strategies.json"), "{line}");
    let (_, still) = served(&s.sampling, "/sampling", "shop").await;
    assert_eq!(still, own, "the previous strategies stay in force");
    assert_eq!(
        metric(&s.query, "strand_sampling_strategies_reload_failing").await,
        1
    );

    // Fixed: the new strategies are served and the failure clears.
    write_strategies(&file, &probabilistic("shop", 0.0625, 0.125));
    wait::until("the fixed file to be served", WITHIN, async || {
        let (_, v) = served(&s.sampling, "/sampling", "shop").await;
        probability_of(&v, "x") == 0.0625
    })
    .await;
    assert_eq!(
        metric(&s.query, "strand_sampling_strategies_reload_failing").await,
        0
    );
}

#[test]
fn a_malformed_strategies_file_fails_start_up_naming_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.json");
    std::fs::write(
        &file,
        "{\n  \"default_strategy\": {\n    \"type\": 7\n  }\n}\n",
    )
    .unwrap();
    let port = common::process::free_port;
    let cfg = format!(
        "[ingest]\ngrpc_addr = \"127.0.0.1:{}\"\nhttp_addr = \"127.0.0.1:{}\"\nzipkin_addr = \"\"\n\n[query]\naddr = \"127.0.0.1:{}\"\n\n[storage]\ndir = {:?}\n\n[sampling.remote]\nhttp_addr = \"127.0.0.1:{}\"\ngrpc_addr = \"127.0.0.1:{}\"\nstrategies_file = {:?}\n",
        port(),
        port(),
        port(),
        dir.path().join("data").display().to_string(),
        port(),
        port(),
        file.display().to_string(),
    );
    let out = common::process::serve_until_exit(dir.path(), &cfg, Duration::from_secs(30));
    assert_eq!(out.status.code(), Some(1), "{}", out.stderr);
    let line = out
        .stderr
        .lines()
        .find(|l| l.starts_with("strand: "))
        .unwrap_or_else(|| panic!("no error line:\n{}", out.stderr));
    assert!(
        line.contains("sampling.remote.strategies_file")
            && line.contains("bad.json")
            && line.contains("line 3"),
        "{line}"
    );
}
