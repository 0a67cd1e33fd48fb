//! The web shop `strand serve --demo` simulates (not the `strand loadgen`
//! benchmark topology, which stays as it is so its figures stay comparable).
//!
//! ```text
//! frontend ─┬─ product-catalog ── redis (cache), postgres
//!           ├─ recommendation ── product-catalog
//!           ├─ currency
//!           ├─ cart ── redis
//!           ├─ shipping
//!           └─ checkout ─┬─ cart, product-catalog, currency, shipping, payment
//!                        └─ orders topic (producer) ┄┄ email (consumer)
//! ```
//!
//! gRPC calls are a CLIENT span in the caller and a SERVER span in the
//! callee; databases and caches are leaf CLIENT spans with `db.system`; the
//! order confirmation goes through a queue (PRODUCER → CONSUMER, the
//! consumer running after the checkout answered). About 2% of card charges
//! are declined (ERROR up to the root) and about 1% of shipping quotes are
//! slow. Trace and span ids are fully random.

use rand::Rng;

use super::topology::{kv_int, kv_str, GenSpan};
use crate::otlp::proto::collector::trace::v1::ExportTraceServiceRequest;
use crate::otlp::proto::common::v1 as pc;
use crate::otlp::proto::resource::v1 as pr;
use crate::otlp::proto::trace::v1 as pt;
use pt::span::SpanKind;

/// Services, with the language their SDK reports.
pub const SERVICES: [(&str, &str); 9] = [
    ("frontend", "nodejs"),
    ("product-catalog", "go"),
    ("recommendation", "python"),
    ("currency", "cpp"),
    ("cart", "dotnet"),
    ("shipping", "rust"),
    ("checkout", "go"),
    ("payment", "nodejs"),
    ("email", "ruby"),
];
const FRONTEND: usize = 0;
const CATALOG: usize = 1;
const RECOMMEND: usize = 2;
const CURRENCY: usize = 3;
const CART: usize = 4;
const SHIPPING: usize = 5;
const CHECKOUT: usize = 6;
const PAYMENT: usize = 7;
const EMAIL: usize = 8;

/// Fraction of card charges declined.
pub const DECLINE_RATE: f64 = 0.02;
/// Fraction of shipping quotes that take 300–900 ms instead of a few.
pub const SLOW_QUOTE_RATE: f64 = 0.01;
const CACHE_MISS_RATE: f64 = 0.2;
const MS: u64 = 1_000_000;

pub struct Shop {
    resources: Vec<pr::Resource>,
    scopes: Vec<pc::InstrumentationScope>,
}

impl Default for Shop {
    fn default() -> Self {
        Shop::new()
    }
}

impl Shop {
    pub fn new() -> Shop {
        let resources = SERVICES
            .iter()
            .enumerate()
            .map(|(i, (name, lang))| pr::Resource {
                attributes: vec![
                    kv_str("service.name", *name),
                    kv_str("service.namespace", "shop"),
                    kv_str("service.version", format!("2.{}.{}", i % 4, i % 3)),
                    kv_str("deployment.environment", "demo"),
                    kv_str("host.name", format!("{name}-{:05x}", 0x3c5a7 + i * 7919)),
                    kv_str("telemetry.sdk.name", "opentelemetry"),
                    kv_str("telemetry.sdk.language", *lang),
                    kv_int("process.pid", 7 + i as i64),
                ],
                ..Default::default()
            })
            .collect();
        let scopes = SERVICES
            .iter()
            .map(|(_, lang)| pc::InstrumentationScope {
                name: format!("opentelemetry.instrumentation.{lang}.grpc"),
                version: "1.28.0".into(),
                ..Default::default()
            })
            .collect();
        Shop { resources, scopes }
    }

    /// One user request starting at `start_ns`; spans carry the index of
    /// their service in [`SERVICES`].
    pub fn trace(&self, rng: &mut impl Rng, start_ns: u64) -> Vec<GenSpan> {
        let mut g = Gen {
            rng,
            trace_id: [0; 16],
            out: Vec::new(),
        };
        while g.trace_id == [0; 16] {
            g.rng.fill(&mut g.trace_id);
        }
        g.request(start_ns);
        g.out
    }

    /// Traces grouped into one ResourceSpans per service.
    pub fn request(
        &self,
        traces: impl IntoIterator<Item = Vec<GenSpan>>,
    ) -> ExportTraceServiceRequest {
        let mut by_service: Vec<Vec<pt::Span>> = vec![Vec::new(); SERVICES.len()];
        for g in traces.into_iter().flatten() {
            by_service[g.service].push(g.span);
        }
        let resource_spans = by_service
            .into_iter()
            .enumerate()
            .filter(|(_, spans)| !spans.is_empty())
            .map(|(i, spans)| pt::ResourceSpans {
                resource: Some(self.resources[i].clone()),
                scope_spans: vec![pt::ScopeSpans {
                    scope: Some(self.scopes[i].clone()),
                    spans,
                    schema_url: String::new(),
                }],
                schema_url: "https://opentelemetry.io/schemas/1.24.0".into(),
            })
            .collect();
        ExportTraceServiceRequest { resource_spans }
    }
}

struct Gen<'a, R: Rng> {
    rng: &'a mut R,
    trace_id: [u8; 16],
    out: Vec<GenSpan>,
}

/// What a call did: when it returned and whether it succeeded.
struct Call {
    end: u64,
    ok: bool,
}

impl<R: Rng> Gen<'_, R> {
    fn ms(&mut self, lo: f64, hi: f64) -> u64 {
        (self.rng.gen_range(lo..hi) * MS as f64) as u64
    }

    fn open(
        &mut self,
        service: usize,
        parent: Option<usize>,
        name: String,
        kind: SpanKind,
        start: u64,
        attributes: Vec<pc::KeyValue>,
    ) -> usize {
        let mut id = [0u8; 8];
        while id == [0; 8] {
            self.rng.fill(&mut id);
        }
        let span = pt::Span {
            trace_id: self.trace_id.to_vec(),
            span_id: id.to_vec(),
            parent_span_id: parent
                .map(|p| self.out[p].span.span_id.clone())
                .unwrap_or_default(),
            name,
            kind: kind as i32,
            start_time_unix_nano: start,
            end_time_unix_nano: start,
            attributes,
            status: Some(pt::Status::default()),
            ..Default::default()
        };
        self.out.push(GenSpan { service, span });
        self.out.len() - 1
    }

    fn close(&mut self, i: usize, end: u64) -> u64 {
        let s = &mut self.out[i].span;
        s.end_time_unix_nano = end.max(s.start_time_unix_nano);
        s.end_time_unix_nano
    }

    fn fail(&mut self, i: usize, message: &str) {
        let s = &mut self.out[i].span;
        s.status = Some(pt::Status {
            code: pt::status::StatusCode::Error as i32,
            message: message.into(),
        });
        for kv in &mut s.attributes {
            match kv.key.as_str() {
                "rpc.grpc.status_code" => *kv = kv_int("rpc.grpc.status_code", 9),
                "http.response.status_code" => *kv = kv_int("http.response.status_code", 500),
                _ => {}
            }
        }
    }

    /// A gRPC call: CLIENT span in `caller`, SERVER span in `callee`, and
    /// whatever `body` does inside the server (it returns its end, and
    /// whether it succeeded).
    fn rpc(
        &mut self,
        caller: usize,
        parent: usize,
        callee: usize,
        method: &str,
        start: u64,
        body: impl FnOnce(&mut Self, usize, u64) -> (u64, bool),
    ) -> Call {
        let (svc, _) = SERVICES[callee];
        let rpc_service = format!("shop.{}", pascal(svc));
        let name = format!("{rpc_service}/{method}");
        let attrs = |side: &str| {
            let mut a = vec![
                kv_str("rpc.system", "grpc"),
                kv_str("rpc.service", rpc_service.clone()),
                kv_str("rpc.method", method),
                kv_int("rpc.grpc.status_code", 0),
            ];
            if side == "client" {
                a.push(kv_str("server.address", svc));
                a.push(kv_int("server.port", 8080));
            }
            a
        };
        let client = self.open(
            caller,
            Some(parent),
            name.clone(),
            SpanKind::Client,
            start,
            attrs("client"),
        );
        let net = self.ms(0.1, 0.6);
        let server = self.open(
            callee,
            Some(client),
            name,
            SpanKind::Server,
            start + net,
            attrs("server"),
        );
        let work = start + net + self.ms(0.05, 0.4);
        let (end, ok) = body(self, server, work);
        // Payment is the only call that fails in this shop.
        let tail = self.ms(0.05, 0.3);
        let end = self.close(server, end + tail);
        if !ok {
            self.fail(server, "card declined");
            self.fail(client, "card declined");
        }
        let net_back = self.ms(0.1, 0.6);
        let end = self.close(client, end + net_back);
        Call { end, ok }
    }

    /// A database or cache call: a leaf CLIENT span.
    fn db(
        &mut self,
        service: usize,
        parent: usize,
        system: &str,
        statement: String,
        start: u64,
    ) -> u64 {
        let op = statement.split(' ').next().unwrap_or("query").to_string();
        // Span names as the instrumentations make them: `redis GET`,
        // `SELECT products`.
        let (addr, name, dur) = if system == "redis" {
            ("redis", format!("redis {op}"), self.ms(0.1, 1.2))
        } else {
            let table = statement
                .split(" FROM ")
                .nth(1)
                .and_then(|t| t.split(' ').next())
                .unwrap_or("products");
            let slow = self.rng.gen_bool(0.01);
            let d = if slow {
                self.ms(20.0, 60.0)
            } else {
                self.ms(0.8, 6.0)
            };
            ("postgres", format!("{op} {table}"), d)
        };
        let mut attrs = vec![
            kv_str("db.system", system),
            kv_str("db.operation", op.clone()),
            kv_str("db.statement", statement),
            kv_str("server.address", addr),
        ];
        if system == "postgresql" {
            attrs.push(kv_str("db.name", "shop"));
        }
        let i = self.open(service, Some(parent), name, SpanKind::Client, start, attrs);
        self.close(i, start + dur)
    }

    fn internal(
        &mut self,
        service: usize,
        parent: usize,
        name: &str,
        start: u64,
        lo: f64,
        hi: f64,
    ) -> u64 {
        let i = self.open(
            service,
            Some(parent),
            name.into(),
            SpanKind::Internal,
            start,
            Vec::new(),
        );
        let d = self.ms(lo, hi);
        self.close(i, start + d)
    }
}

fn pascal(name: &str) -> String {
    name.split('-')
        .map(|w| {
            let mut c = w.chars();
            c.next()
                .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
                .unwrap_or_default()
        })
        .collect::<String>()
        + "Service"
}

mod pages;

#[cfg(test)]
mod tests;
