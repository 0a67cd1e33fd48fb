//! TLS on every listener and authenticated ingest, against the real
//! binary with a CA made in the test: the OTel SDK's exporters over TLS
//! (gRPC and HTTP) with API keys and with a client certificate, refusals
//! (UNAUTHENTICATED / 401 with the reason, nothing stored), per-client
//! counts and rate limits, certificate rotation without a restart, and
//! start-up refusing TLS settings that cannot work.

mod common;

use std::path::Path;
use std::time::Duration;

use opentelemetry::KeyValue;
use prost::Message as _;
use serde_json::Value;

use common::otel::{emit_trace, provider};
use common::process::{serve_until_exit, Strand};
use common::tls::{Pem, TestCa};
use common::wait::{until, value};
use strand::security::auth::key_hash_string;

const CHECKOUT_KEY: &str = "strand_checkout_0123456789abcdef0123456789abcdef";
const LIMITED_KEY: &str = "strand_limited_0123456789abcdef0123456789abcdef";

/// Request headers as raw bytes (some tests send invalid UTF-8).
type Headers<'a> = Vec<(&'a str, &'a [u8])>;

fn port(url: &str) -> u16 {
    url.rsplit(':').next().unwrap().parse().unwrap()
}

/// A strand with TLS on every port, a client CA and three clients:
/// `checkout` (API key), `agent` (client certificate CN `agent-1`) and
/// `limited` (API key, 5 spans/s).
struct Secured {
    strand: Strand,
    ca: TestCa,
    query: String,
    client: reqwest::Client,
}

fn tls_config(dir: &Path, ca: &TestCa, server: &Pem) -> String {
    let (cert, key) = server.write(dir, "server");
    let ca_file = ca.write(dir);
    format!(
        "[tls]\ncert_file = {cert:?}\nkey_file = {key:?}\nclient_ca_file = {ca_file:?}\n\n\
         [[ingest.clients]]\nname = \"checkout\"\napi_key_hash = \"{}\"\n\n\
         [[ingest.clients]]\nname = \"agent\"\nmtls_subject = \"agent-1\"\n\n\
         [[ingest.clients]]\nname = \"limited\"\napi_key_hash = \"{}\"\nspans_per_sec = 5\n",
        key_hash_string(CHECKOUT_KEY),
        key_hash_string(LIMITED_KEY),
    )
}

impl Secured {
    async fn start(dir: &Path) -> Secured {
        let ca = TestCa::new("strand test CA");
        let extra = tls_config(dir, &ca, &ca.server("strand-1"));
        let strand = Strand::spawn_unchecked(dir, &extra);
        let query = format!("https://localhost:{}", port(&strand.query));
        let client = ca.reqwest();
        let ready = format!("{query}/readyz");
        until(
            "readyz over TLS",
            Duration::from_secs(60),
            async || matches!(client.get(&ready).send().await, Ok(r) if r.status() == 200),
        )
        .await;
        Secured {
            strand,
            ca,
            query,
            client,
        }
    }

    async fn json(&self, path: &str) -> (u16, Value) {
        let r = self
            .client
            .get(format!("{}{path}", self.query))
            .send()
            .await;
        let r = r.expect("GET over TLS");
        let code = r.status().as_u16();
        (code, r.json().await.unwrap_or(Value::Null))
    }

    async fn services(&self) -> Vec<String> {
        let (_, body) = self.json("/api/services").await;
        body["data"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Spans stored for `trace_id`, once there are `n`.
    async fn wait_trace(&self, trace_id: &str, n: usize) {
        let path = format!("/api/traces/{trace_id}");
        value(
            &format!("trace {trace_id}"),
            Duration::from_secs(30),
            async || {
                let (code, body) = self.json(&path).await;
                let spans = body["data"][0]["spans"].as_array().map_or(0, |a| a.len());
                (code == 200 && spans == n).then_some(())
            },
        )
        .await
    }

    async fn metrics(&self) -> String {
        let r = self
            .client
            .get(format!("{}/metrics", self.query))
            .send()
            .await;
        r.expect("GET /metrics").text().await.unwrap()
    }

    fn grpc_port(&self) -> u16 {
        port(&self.strand.grpc)
    }
    fn http_port(&self) -> u16 {
        port(&self.strand.http)
    }

    /// POSTs an OTLP/HTTP protobuf request of `spans` spans of `service`.
    async fn post_http(
        &self,
        service: &str,
        spans: u64,
        headers: &[(&str, &[u8])],
    ) -> reqwest::Response {
        let id = common::otlp::trace_id(0x5ec, spans);
        let req = common::otlp::request(service, common::otlp::spans_now(id, spans, 1, vec![]));
        let mut rb = self
            .client
            .post(format!("https://localhost:{}/v1/traces", self.http_port()))
            .header("content-type", "application/x-protobuf");
        for (k, v) in headers {
            rb = rb.header(*k, reqwest::header::HeaderValue::from_bytes(v).unwrap());
        }
        rb.body(req.encode_to_vec())
            .send()
            .await
            .expect("POST over TLS")
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn otel_exporters_over_tls_with_keys_and_client_certificates() {
    let dir = tempfile::tempdir().unwrap();
    let s = Secured::start(dir.path()).await;
    let bearer = format!("Bearer {CHECKOUT_KEY}");
    let agent = s.ca.client("agent-1");

    let cases = [
        (
            "grpc-key",
            s.ca.grpc_exporter(s.grpc_port(), None, &[("authorization", &bearer)]),
            s.ca.grpc_exporter(s.grpc_port(), None, &[("authorization", &bearer)]),
        ),
        (
            "http-key",
            s.ca.http_exporter(s.http_port(), &[("x-strand-api-key", CHECKOUT_KEY)]),
            s.ca.http_exporter(s.http_port(), &[("authorization", &bearer)]),
        ),
        (
            "grpc-mtls",
            s.ca.grpc_exporter(s.grpc_port(), Some(&agent), &[]),
            s.ca.grpc_exporter(s.grpc_port(), Some(&agent), &[]),
        ),
    ];
    for (name, front, back) in cases {
        let (f, b) = (
            provider(&format!("{name}-front"), front),
            provider(&format!("{name}-back"), back),
        );
        let id = tokio::task::block_in_place(|| {
            emit_trace(
                &f,
                &b,
                "GET /",
                vec![KeyValue::new("case", name)],
                "call",
                |_| {},
            )
        });
        s.wait_trace(&id, 2).await;
    }

    let text = s.metrics().await;
    let count = |client: &str| {
        common::http::metric_in(
            &text,
            &format!("strand_ingest_client_spans_total{{client=\"{client}\"}}"),
        )
        .unwrap_or(0.0)
    };
    assert_eq!(count("checkout"), 4.0, "{text}");
    assert_eq!(count("agent"), 2.0, "{text}");

    // Plaintext to a TLS port is not served.
    let plain = format!("http://127.0.0.1:{}/readyz", port(&s.strand.query));
    let r = reqwest::Client::new().get(plain).send().await;
    assert!(r.is_err() || r.is_ok_and(|r| r.status() != 200));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn unknown_missing_and_malformed_credentials_are_refused_and_nothing_is_stored() {
    let dir = tempfile::tempdir().unwrap();
    let s = Secured::start(dir.path()).await;

    // OTLP/HTTP: 401 with the reason, as a google.rpc.Status (code 16).
    let long = vec![b'k'; 5000];
    let cases: Vec<(&str, Headers, &str)> = vec![
        ("no-key", vec![], "missing credentials"),
        (
            "wrong-key",
            vec![("authorization", b"Bearer nope")],
            "unknown API key",
        ),
        (
            "basic",
            vec![("authorization", b"Basic dXNlcjpwYXNz")],
            "scheme \"Basic\"",
        ),
        (
            "empty-bearer",
            vec![("authorization", b"Bearer ")],
            "Bearer <key>",
        ),
        (
            "two-tokens",
            vec![("authorization", b"Bearer a b")],
            "one key",
        ),
        (
            "not-utf8",
            vec![("authorization", b"Bearer \xff\xfe")],
            "UTF-8",
        ),
        ("huge", vec![("authorization", &long[..])], "longer than"),
        ("empty-header", vec![("x-strand-api-key", b" ")], "empty"),
    ];
    for (service, headers, reason) in &cases {
        let r = s.post_http(service, 3, headers).await;
        assert_eq!(r.status(), 401, "{service}");
        let body = r.bytes().await.unwrap();
        let status = tonic_types::pb::Status::decode(body).expect("google.rpc.Status");
        assert_eq!(
            status.code,
            tonic::Code::Unauthenticated as i32,
            "{service}"
        );
        assert!(
            status.message.contains(reason),
            "{service}: {}",
            status.message
        );
    }

    // OTLP/gRPC: UNAUTHENTICATED, also with a certificate naming no client.
    let stranger = s.ca.client("stranger");
    let body = |svc: &str| {
        let id = common::otlp::trace_id(0xbad, 1);
        common::otlp::request(svc, common::otlp::spans_now(id, 2, 1, vec![])).encode_to_vec()
    };
    for (service, identity, meta, reason) in [
        ("grpc-no-key", None, vec![], "missing credentials"),
        (
            "grpc-wrong-key",
            None,
            vec![("authorization", "Bearer nope")],
            "unknown API key",
        ),
        (
            "grpc-stranger",
            Some(&stranger),
            vec![],
            "\"stranger\" names no ingest client",
        ),
    ] {
        let ch = s.ca.grpc_channel(s.grpc_port(), identity).await;
        let e = common::ingest::grpc_raw_on(ch, body(service), &meta)
            .await
            .expect_err(service);
        assert_eq!(e.code(), tonic::Code::Unauthenticated, "{service}: {e:?}");
        assert!(e.message().contains(reason), "{service}: {}", e.message());
    }

    // The real SDK with a wrong key: its export fails, nothing is stored.
    let wrong = [("authorization", "Bearer wrong")];
    let (f, b) = (
        provider(
            "sdk-wrong-key",
            s.ca.grpc_exporter(s.grpc_port(), None, &wrong),
        ),
        provider(
            "sdk-wrong-key-back",
            s.ca.http_exporter(s.http_port(), &wrong),
        ),
    );
    tokio::task::block_in_place(|| emit_trace(&f, &b, "GET /", vec![], "call", |_| {}));

    // A client certificate from another CA does not even get a TLS session.
    let rogue_ca = TestCa::new("rogue CA");
    let rogue = rogue_ca.client("agent-1");
    let ep =
        tonic::transport::Endpoint::from_shared(format!("https://localhost:{}", s.grpc_port()))
            .unwrap()
            .tls_config(s.ca.tonic_tls(Some(&rogue)))
            .unwrap();
    let refused = match ep.connect().await {
        Err(_) => true,
        Ok(ch) => common::ingest::grpc_raw_on(ch, body("rogue"), &[])
            .await
            .is_err(),
    };
    assert!(refused, "a certificate of another CA was accepted");

    // A good request afterwards is stored; none of the refused ones is.
    let ok = s
        .post_http(
            "accepted",
            2,
            &[("x-strand-api-key", CHECKOUT_KEY.as_bytes())],
        )
        .await;
    assert_eq!(ok.status(), 200);
    until(
        "the accepted service",
        Duration::from_secs(30),
        async || s.services().await.contains(&"accepted".to_string()),
    )
    .await;
    let services = s.services().await;
    assert_eq!(
        services,
        vec!["accepted".to_string()],
        "only the authenticated request is stored"
    );
    let text = s.metrics().await;
    let refused = common::http::metric_in(
        &text,
        "strand_ingest_requests_total{transport=\"grpc\",outcome=\"unauthenticated\"}",
    );
    assert!(refused.unwrap_or(0.0) >= 3.0, "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_client_over_its_rate_is_told_to_retry() {
    let dir = tempfile::tempdir().unwrap();
    let s = Secured::start(dir.path()).await;
    let key = [(
        "authorization",
        format!("Bearer {LIMITED_KEY}").into_bytes(),
    )];
    let key: Vec<(&str, &[u8])> = key.iter().map(|(k, v)| (*k, &v[..])).collect();
    // 5 spans/s: the first request goes into debt, the next is refused.
    let first = s.post_http("limited", 50, &key).await;
    assert_eq!(first.status(), 200);
    let second = s.post_http("limited", 1, &key).await;
    assert_eq!(second.status(), 429);
    assert!(second.headers().contains_key("retry-after"));
    let body = second.bytes().await.unwrap();
    let status = tonic_types::pb::Status::decode(body).unwrap();
    assert_eq!(status.code, tonic::Code::ResourceExhausted as i32);
    assert!(
        status
            .message
            .contains("\"limited\" is over its limit of 5 spans/s"),
        "{}",
        status.message
    );
    // Other clients are not held back by it.
    let other = s
        .post_http(
            "unlimited",
            1,
            &[("x-strand-api-key", CHECKOUT_KEY.as_bytes())],
        )
        .await;
    assert_eq!(other.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn zipkin_ingest_speaks_tls_and_wants_a_key() {
    let dir = tempfile::tempdir().unwrap();
    let s = Secured::start(dir.path()).await;
    let url = format!("https://localhost:{}/api/v2/spans", port(&s.strand.zipkin));
    let now_us = strand::model::now_ns() / 1000;
    let span = serde_json::json!([{
        "traceId": "00000000000000000000000000000abc", "id": "0000000000000001",
        "name": "get", "timestamp": now_us, "duration": 1000,
        "localEndpoint": {"serviceName": "zipkin-tls"}
    }]);
    let r = s.client.post(&url).json(&span).send().await.unwrap();
    assert_eq!(r.status(), 401);
    assert!(r.text().await.unwrap().contains("missing credentials"));
    let r = s
        .client
        .post(&url)
        .header("x-strand-api-key", CHECKOUT_KEY)
        .json(&span)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    until("the Zipkin service", Duration::from_secs(30), async || {
        s.services().await.contains(&"zipkin-tls".to_string())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replaced_certificate_files_are_served_to_new_connections_without_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let s = Secured::start(dir.path()).await;
    let pid = s.strand.child.id();
    let addrs = [
        format!("127.0.0.1:{}", s.grpc_port()),
        format!("127.0.0.1:{}", s.http_port()),
        format!("127.0.0.1:{}", port(&s.strand.zipkin)),
        format!("127.0.0.1:{}", port(&s.strand.query)),
        format!("127.0.0.1:{}", port(&s.strand.sampling)),
        format!("127.0.0.1:{}", port(&s.strand.sampling_grpc)),
    ];
    let before: Vec<_> = addrs
        .iter()
        .map(|a| s.ca.served_leaf(a).expect(a))
        .collect();
    assert!(
        before.windows(2).all(|w| w[0] == w[1]),
        "one certificate on every port"
    );

    let next = s.ca.server("strand-2");
    next.write(dir.path(), "server");
    for a in &addrs {
        until(
            &format!("the new certificate on {a}"),
            Duration::from_secs(20),
            async || s.ca.served_leaf(a) == Some(next.der()),
        )
        .await;
    }
    assert_eq!(s.strand.child.id(), pid);
    assert_eq!(s.json("/readyz").await.0, 200, "still serving over TLS");

    // A broken replacement keeps the last good certificate in service.
    std::fs::write(dir.path().join("server.key"), "not a key").unwrap();
    let (code, _) = s.json("/api/services").await;
    assert_eq!(code, 200);
    assert_eq!(s.ca.served_leaf(&addrs[3]), Some(next.der()));
}

#[test]
fn start_up_refuses_tls_settings_that_cannot_work() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new("ca");
    let (cert, key) = ca.server("a").write(dir.path(), "a");
    let (_, other_key) = ca.server("b").write(dir.path(), "b");
    let missing = dir.path().join("missing.crt");
    let base = |tls: String| {
        format!(
            "[storage]\ndir = {:?}\n[self_tracing]\nenabled = false\n{tls}",
            dir.path().join("data")
        )
    };
    let cases = [
        (
            format!("[tls]\ncert_file = {missing:?}\nkey_file = {key:?}\n"),
            "tls.cert_file",
        ),
        (
            format!("[tls]\ncert_file = {cert:?}\nkey_file = {other_key:?}\n"),
            "tls.key_file",
        ),
        (format!("[tls]\ncert_file = {cert:?}\n"), "tls.key_file"),
        (
            format!(
                "[tls]\ncert_file = {cert:?}\nkey_file = {key:?}\nclient_ca_file = {missing:?}\n"
            ),
            "tls.client_ca_file",
        ),
        (
            format!("[tls]\ncert_file = {cert:?}\nkey_file = {key:?}\nciphers = \"all\"\n"),
            "ciphers",
        ),
        (
            "[[ingest.clients]]\nname = \"x\"\napi_key_hash = \"md5:00\"\n".to_string(),
            "ingest.clients.api_key_hash",
        ),
    ];
    for (i, (tls, key_named)) in cases.iter().enumerate() {
        let run = dir.path().join(format!("run-{i}"));
        let exited = serve_until_exit(&run, &base(tls.clone()), Duration::from_secs(30));
        assert_eq!(exited.status.code(), Some(1), "{tls}\n{}", exited.stderr);
        assert!(
            exited.stderr.contains(key_named),
            "{key_named}: {}",
            exited.stderr
        );
    }
}
