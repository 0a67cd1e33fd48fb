//! OTLP ingest in-process (`common::ingest`) under pressure: the in-flight
//! budget (bodies charged before they are read), overload and an
//! unavailable sink as retryable answers, the API key, a receiver restarted
//! after a sink error, and the entry points `strand serve` uses.

mod common;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use prost::Message;

use common::ingest::{
    grpc_raw, post, post_proto, request, span, start, start_receiver, with_str, TestSink,
};
use common::otlp::ExportTraceServiceRequest;
use common::store::MemoryStore;
use common::wait;
use strand::config::Config;
use strand::error::Error;
use strand::model::SpanReader;
use strand::model::TraceId;

/// One span of trace `trace` padded to `kib` KiB.
fn padded(trace: u8, kib: usize) -> ExportTraceServiceRequest {
    request(vec![with_str(
        span(trace, 1, "padded"),
        "pad",
        &"p".repeat(kib * 1024),
    )])
}

/// 64 KiB for a request, for all requests in flight, and for a value.
fn small_budget() -> Config {
    let mut cfg = Config::default();
    cfg.ingest.max_request_bytes = 64 << 10;
    cfg.ingest.max_inflight_bytes = 64 << 10;
    cfg.ingest.max_attribute_value_bytes = 64 << 10;
    cfg
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_bodies_are_charged_to_the_budget_before_they_are_read() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let cfg = small_budget();
    let ing = start(cfg, Arc::new(TestSink::default()));

    // A slow client declares a 40 KiB body and sends only half of it.
    let body = padded(30, 40).encode_to_vec();
    let mut slow = tokio::net::TcpStream::connect(ing.http).await.unwrap();
    let head = format!(
        "POST /v1/traces HTTP/1.1\r\nhost: strand\r\ncontent-type: application/x-protobuf\r\ncontent-length: {}\r\n\r\n",
        body.len()
    );
    slow.write_all(head.as_bytes()).await.unwrap();
    slow.write_all(&body[..body.len() / 2]).await.unwrap();

    // Its declared bytes are already held: 30 KiB more do not fit.
    wait::until(
        "a 429 while the slow body is in flight",
        Duration::from_secs(10),
        async || post_proto(ing.http, &padded(31, 30)).await.status == 429,
    )
    .await;

    // Once the slow body completes, it is stored and the budget is free.
    slow.write_all(&body[body.len() / 2..]).await.unwrap();
    let mut reply = Vec::new();
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(&reply).contains("\r\n\r\n") {
        let n = slow.read(&mut buf).await.unwrap();
        assert!(n > 0, "connection closed before a reply");
        reply.extend_from_slice(&buf[..n]);
    }
    let reply = String::from_utf8_lossy(&reply);
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    assert_eq!(post_proto(ing.http, &padded(31, 30)).await.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overload_is_retryable_and_recovers() {
    let cfg = small_budget();
    let sink = Arc::new(TestSink::default());
    sink.hold.store(true, Ordering::SeqCst);
    let ing = start(cfg, sink.clone());

    // Request A is admitted and parks in the sink, holding 40 KiB.
    let http = ing.http;
    let first = tokio::spawn(async move { post_proto(http, &padded(20, 40)).await });
    wait::until("a held write", Duration::from_secs(10), async || {
        sink.waiting.load(Ordering::SeqCst) == 1
    })
    .await;

    // B does not fit: 429 + Retry-After, RESOURCE_EXHAUSTED + RetryInfo.
    let r = post_proto(ing.http, &padded(21, 40)).await;
    assert_eq!(r.status, 429);
    assert_eq!(r.retry_after.as_deref(), Some("1"));
    let st = tonic_types::pb::Status::decode(r.body.as_slice()).expect("protobuf Status body");
    assert_eq!(st.code, tonic::Code::ResourceExhausted as i32);
    let e = grpc_raw(ing.grpc, padded(21, 40).encode_to_vec(), &[])
        .await
        .expect_err("overloaded");
    assert_eq!(e.code(), tonic::Code::ResourceExhausted);
    use tonic_types::StatusExt;
    let retry = e.get_details_retry_info().expect("RetryInfo detail");
    assert_eq!(retry.retry_delay, Some(Duration::from_secs(1)));

    // Releasing the sink completes A and frees the budget: B now succeeds.
    sink.hold.store(false, Ordering::SeqCst);
    sink.gate.notify_waiters();
    assert_eq!(first.await.expect("task").status, 200);
    let r = post_proto(ing.http, &padded(21, 40)).await;
    assert_eq!(r.status, 200);
    assert!(grpc_raw(ing.grpc, padded(22, 40).encode_to_vec(), &[])
        .await
        .is_ok());

    // A sink that is unavailable: 503 + Retry-After / UNAVAILABLE.
    *sink.fail.lock() = Some(|| Error::Unavailable("disk full".into()));
    let r = post_proto(ing.http, &padded(23, 1)).await;
    assert_eq!((r.status, r.retry_after.as_deref()), (503, Some("1")));
    let e = grpc_raw(ing.grpc, padded(23, 1).encode_to_vec(), &[])
        .await
        .expect_err("unavailable");
    assert_eq!(e.code(), tonic::Code::Unavailable);

    // A terminal sink error stops the receiver worker that saw it; it is
    // restarted and the pool serves again.
    let workers = small_budget().ingest.worker_count();
    let restarts = move || -> u64 {
        (0..workers)
            .map(|i| {
                strand::metrics::ActorStats::get(&format!("receiver-{i}"))
                    .restarts
                    .load(Ordering::SeqCst)
            })
            .sum()
    };
    let before = restarts();
    *sink.fail.lock() = Some(|| Error::Internal("bug".into()));
    assert_eq!(post_proto(ing.http, &padded(24, 1)).await.status, 500);
    *sink.fail.lock() = None;
    wait::until("a receiver restart", Duration::from_secs(10), async || {
        restarts() > before
    })
    .await;
    assert_eq!(post_proto(ing.http, &padded(25, 1)).await.status, 200);
    assert_eq!(
        sink.store
            .trace(TraceId([25; 16]))
            .await
            .expect("trace")
            .len(),
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_key_is_required_when_configured() {
    let mut cfg = Config::default();
    cfg.ingest.api_key = "s3cret".into();
    let sink = Arc::new(TestSink::default());
    let ing = start(cfg, sink.clone());
    let body = request(vec![span(30, 1, "authed")]).encode_to_vec();
    let (wrong, ok) = (
        [("authorization", "Bearer nope")],
        [("authorization", "Bearer s3cret")],
    );
    for (headers, want) in [(&[][..], 401), (&wrong[..], 401), (&ok[..], 200)] {
        let r = post(ing.http, "application/x-protobuf", headers, body.clone()).await;
        assert_eq!(r.status, want, "{headers:?}");
    }
    let e = grpc_raw(ing.grpc, body.clone(), &[])
        .await
        .expect_err("unauthenticated");
    assert_eq!(e.code(), tonic::Code::Unauthenticated);
    assert!(grpc_raw(ing.grpc, body, &[("x-strand-api-key", "s3cret")])
        .await
        .is_ok());
}

/// The entry points `strand serve` calls: bind by address (naming it when
/// that fails), serve, stop cleanly.
#[actix_rt::test]
async fn public_entry_points_bind_and_stop() {
    let cfg = Config::default();
    let intake = start_receiver(&cfg, Arc::new(MemoryStore::new()), None);
    let grpc = strand::actors::listener::bind("ingest.grpc_addr", "127.0.0.1:0").expect("binds");
    let taken = grpc.local_addr().expect("addr").to_string();
    let e = strand::actors::listener::bind("ingest.grpc_addr", &taken).expect_err("port taken");
    assert!(
        e.to_string().contains(&taken) && e.to_string().contains("ingest.grpc_addr"),
        "{e}"
    );
    grpc.set_nonblocking(true).expect("nonblocking");
    let grpc = tokio::net::TcpListener::from_std(grpc).expect("tokio listener");
    strand::ingest::serve_grpc_on(grpc, intake.clone(), async {})
        .await
        .expect("gRPC server starts and stops on shutdown");
    let http = strand::actors::listener::bind("ingest.http_addr", "127.0.0.1:0").expect("binds");
    let server = strand::ingest::http_server_on(http, intake, 1).expect("http server binds");
    let handle = server.handle();
    let running = actix_rt::spawn(server);
    handle.stop(true).await;
    running
        .await
        .expect("join")
        .expect("http server stopped cleanly");
}
