//! A simulated microservice topology and the traces it produces: an entry
//! service calls `fanout` downstream services, each of which calls further
//! ones, `depth` levels deep; the last level talks to a database. Spans carry
//! the attributes real OpenTelemetry SDK instrumentations emit.

use rand::rngs::StdRng;
use rand::Rng;

use crate::otlp::proto::common::v1 as pc;
use crate::otlp::proto::trace::v1 as pt;

const SERVICE_NAMES: [&str; 20] = [
    "frontend",
    "checkout",
    "cart",
    "payment",
    "shipping",
    "currency",
    "email",
    "recommendation",
    "ad",
    "product-catalog",
    "quote",
    "fraud-detection",
    "accounting",
    "inventory",
    "user",
    "auth",
    "search",
    "notification",
    "pricing",
    "gateway",
];
const LANGUAGES: [&str; 5] = ["go", "java", "python", "nodejs", "rust"];
const ROUTES: [&str; 6] = [
    "/api/items/{id}",
    "/api/cart",
    "/api/checkout",
    "/api/users/{id}",
    "/api/search",
    "/health",
];
const METHODS: [&str; 4] = ["GET", "GET", "POST", "PUT"];
const DB_SYSTEMS: [(&str, &str); 3] = [
    ("postgresql", "SELECT * FROM items WHERE id = $1"),
    ("redis", "GET session:*"),
    ("mongodb", "find users"),
];

/// Shape of the simulated system.
#[derive(Clone, Debug)]
pub struct TopologyConfig {
    pub services: usize,
    /// Levels of services below the entry service's root span (>= 1).
    pub depth: usize,
    pub fanout: usize,
    /// Attributes per span (semantic-convention ones first, then `app.*`).
    pub attributes: usize,
    /// Fraction of traces that fail (one span and its ancestors get ERROR).
    pub error_rate: f64,
    /// Target encoded size of a span; spans are padded up to it.
    pub span_bytes: usize,
}

impl Default for TopologyConfig {
    fn default() -> Self {
        TopologyConfig {
            services: 10,
            depth: 3,
            fanout: 2,
            attributes: 8,
            error_rate: 0.01,
            span_bytes: 400,
        }
    }
}

/// One simulated service: its resource attributes and its scope.
#[derive(Clone, Debug)]
pub struct Service {
    pub name: String,
    pub resource: Vec<pc::KeyValue>,
    pub scope: pc::InstrumentationScope,
    pub grpc: bool,
}

pub struct Topology {
    pub cfg: TopologyConfig,
    pub services: Vec<Service>,
}

/// A generated span with the index of the service that emitted it.
pub struct GenSpan {
    pub service: usize,
    pub span: pt::Span,
}

pub fn kv_str(k: &str, v: impl Into<String>) -> pc::KeyValue {
    let value = Some(pc::AnyValue {
        value: Some(pc::any_value::Value::StringValue(v.into())),
    });
    pc::KeyValue {
        key: k.into(),
        value,
        ..Default::default()
    }
}

pub fn kv_int(k: &str, v: i64) -> pc::KeyValue {
    let value = Some(pc::AnyValue {
        value: Some(pc::any_value::Value::IntValue(v)),
    });
    pc::KeyValue {
        key: k.into(),
        value,
        ..Default::default()
    }
}

fn service_name(i: usize) -> String {
    let base = SERVICE_NAMES[i % SERVICE_NAMES.len()];
    match i / SERVICE_NAMES.len() {
        0 => base.to_string(),
        n => format!("{base}-{n}"),
    }
}

impl Topology {
    pub fn new(cfg: TopologyConfig) -> Topology {
        let n = cfg.services.max(1);
        let services = (0..n)
            .map(|i| {
                let lang = LANGUAGES[i % LANGUAGES.len()];
                Service {
                    name: service_name(i),
                    resource: vec![
                        kv_str("service.name", service_name(i)),
                        kv_str("service.version", format!("1.{}.{}", i % 7, i % 3)),
                        kv_str("service.namespace", "shop"),
                        kv_str("deployment.environment", "production"),
                        kv_str(
                            "host.name",
                            format!("{}-{:x}", service_name(i), 0x5f3a + i * 7919),
                        ),
                        kv_str("telemetry.sdk.name", "opentelemetry"),
                        kv_str("telemetry.sdk.language", lang),
                        kv_str("telemetry.sdk.version", "1.27.0"),
                        kv_int("process.pid", 1000 + i as i64),
                    ],
                    scope: pc::InstrumentationScope {
                        name: format!("io.opentelemetry.{lang}.http"),
                        version: "1.27.0".into(),
                        ..Default::default()
                    },
                    grpc: i % 3 == 1,
                }
            })
            .collect();
        Topology { cfg, services }
    }

    /// Spans per trace (for sizing requests): the root, a client and a
    /// server span per call, and one database span per leaf.
    pub fn spans_per_trace(&self) -> usize {
        let (d, f) = (self.cfg.depth.max(1), self.cfg.fanout.max(1));
        let mut level = 1usize;
        let mut total = 1usize;
        for _ in 1..d {
            level = level.saturating_mul(f);
            total = total.saturating_add(level.saturating_mul(2));
        }
        total.saturating_add(level)
    }

    /// One trace starting at `start_ns`.
    pub fn trace(&self, rng: &mut StdRng, start_ns: u64) -> Vec<GenSpan> {
        let mut trace_id = [0u8; 16];
        rng.fill(&mut trace_id);
        let mut b = Builder {
            topo: self,
            trace_id,
            out: Vec::new(),
            parents: Vec::new(),
        };
        let route = ROUTES[rng.gen_range(0..ROUTES.len())];
        let user = rng.gen_range(0..100_000u32);
        b.server(rng, 0, None, 0, start_ns, route, Some(user));
        if rng.gen_bool(self.cfg.error_rate.clamp(0.0, 1.0)) && !b.out.is_empty() {
            b.fail(rng.gen_range(0..b.out.len()));
        }
        b.out
    }
}

struct Builder<'a> {
    topo: &'a Topology,
    trace_id: [u8; 16],
    out: Vec<GenSpan>,
    /// Index (in `out`) of each span's parent.
    parents: Vec<Option<usize>>,
}

impl Builder<'_> {
    fn push(
        &mut self,
        rng: &mut StdRng,
        service: usize,
        parent: Option<usize>,
        mut span: pt::Span,
    ) -> usize {
        let mut id = [0u8; 8];
        rng.fill(&mut id);
        span.trace_id = self.trace_id.to_vec();
        span.span_id = id.to_vec();
        span.parent_span_id = parent
            .map(|p| self.out[p].span.span_id.clone())
            .unwrap_or_default();
        span.flags = 0x301; // sampled, parent-is-remote known
        self.out.push(GenSpan { service, span });
        self.parents.push(parent);
        self.out.len() - 1
    }

    /// A SERVER span in `service` and everything below it; returns its end.
    #[allow(clippy::too_many_arguments)]
    fn server(
        &mut self,
        rng: &mut StdRng,
        service: usize,
        parent: Option<usize>,
        depth: usize,
        start: u64,
        route: &str,
        user: Option<u32>,
    ) -> u64 {
        let svc = &self.topo.services[service];
        let method = METHODS[rng.gen_range(0..METHODS.len())];
        let mut attrs = if svc.grpc {
            vec![
                kv_str("rpc.system", "grpc"),
                kv_str("rpc.service", format!("shop.{}.v1.Service", svc.name)),
                kv_str("rpc.method", "Handle"),
                kv_int("rpc.grpc.status_code", 0),
            ]
        } else {
            vec![
                kv_str("http.method", method),
                kv_str("http.route", route),
                kv_int("http.status_code", 200),
                kv_str("http.scheme", "http"),
                kv_str("net.host.name", svc.name.clone()),
                kv_str(
                    "user_agent.original",
                    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36",
                ),
            ]
        };
        if let Some(u) = user {
            attrs.push(kv_str("user_id", format!("u{u:06}")));
        }
        let name = if svc.grpc {
            format!("shop.{}.v1.Service/Handle", svc.name)
        } else {
            format!("{method} {route}")
        };
        let span = pt::Span {
            name,
            kind: pt::span::SpanKind::Server as i32,
            attributes: attrs,
            ..Default::default()
        };
        let me = self.push(rng, service, parent, span);
        let mut t = start + rng.gen_range(20_000..200_000);
        let n = self.topo.services.len();
        if depth + 1 < self.topo.cfg.depth.max(1) {
            for _ in 0..self.topo.cfg.fanout.max(1) {
                let callee = if n > 1 {
                    1 + rng.gen_range(0..n - 1)
                } else {
                    0
                };
                t = self.call(rng, service, me, callee, depth + 1, t)
                    + rng.gen_range(10_000..100_000);
            }
        } else {
            t = self.db(rng, service, me, t) + rng.gen_range(10_000..50_000);
        }
        self.finish(me, start, t);
        t
    }

    /// A CLIENT span in `caller` and the callee's SERVER span below it.
    fn call(
        &mut self,
        rng: &mut StdRng,
        caller: usize,
        parent: usize,
        callee: usize,
        depth: usize,
        start: u64,
    ) -> u64 {
        let target = self.topo.services[callee].name.clone();
        let route = ROUTES[rng.gen_range(0..ROUTES.len())];
        let attrs = vec![
            kv_str("http.method", "GET"),
            kv_str("http.url", format!("http://{target}:8080{route}")),
            kv_int("http.status_code", 200),
            kv_str("net.peer.name", target.clone()),
            kv_int("net.peer.port", 8080),
        ];
        let span = pt::Span {
            name: format!("GET {target}"),
            kind: pt::span::SpanKind::Client as i32,
            attributes: attrs,
            ..Default::default()
        };
        let me = self.push(rng, caller, Some(parent), span);
        let net = rng.gen_range(100_000..1_000_000);
        let end = self.server(rng, callee, Some(me), depth, start + net / 2, route, None) + net / 2;
        self.finish(me, start, end);
        end
    }

    fn db(&mut self, rng: &mut StdRng, service: usize, parent: usize, start: u64) -> u64 {
        let (system, statement) = DB_SYSTEMS[rng.gen_range(0..DB_SYSTEMS.len())];
        let attrs = vec![
            kv_str("db.system", system),
            kv_str("db.name", "shop"),
            kv_str("db.statement", statement),
            kv_str(
                "db.operation",
                statement.split(' ').next().unwrap_or("query"),
            ),
            kv_str("net.peer.name", format!("{system}.db")),
        ];
        let span = pt::Span {
            name: format!(
                "{system} {}",
                statement.split(' ').next().unwrap_or("query")
            ),
            kind: pt::span::SpanKind::Client as i32,
            attributes: attrs,
            ..Default::default()
        };
        let me = self.push(rng, service, Some(parent), span);
        let end = start + rng.gen_range(200_000..20_000_000);
        self.finish(me, start, end);
        end
    }

    fn finish(&mut self, i: usize, start: u64, end: u64) {
        let s = &mut self.out[i].span;
        s.start_time_unix_nano = start;
        s.end_time_unix_nano = end.max(start);
        s.status = Some(pt::Status::default());
    }

    /// Marks span `i` and its ancestors as failed, the way instrumentations
    /// record an exception that propagates up.
    fn fail(&mut self, i: usize) {
        let mut cur = Some(i);
        let mut first = true;
        while let Some(c) = cur {
            let s = &mut self.out[c].span;
            s.status = Some(pt::Status {
                code: pt::status::StatusCode::Error as i32,
                message: "upstream failure".into(),
            });
            for kv in &mut s.attributes {
                if kv.key == "http.status_code" {
                    *kv = kv_int("http.status_code", 500);
                }
            }
            if first {
                s.events.push(pt::span::Event {
                    time_unix_nano: s.end_time_unix_nano,
                    name: "exception".into(),
                    attributes: vec![
                        kv_str("exception.type", "ConnectionResetError"),
                        kv_str("exception.message", "connection reset by peer"),
                    ],
                    ..Default::default()
                });
                first = false;
            }
            cur = self.parents[c];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use std::collections::HashMap;

    #[test]
    fn traces_have_the_configured_shape_and_valid_parent_links() {
        for (depth, fanout) in [(1, 1), (2, 3), (3, 2), (4, 2)] {
            let topo = Topology::new(TopologyConfig {
                services: 6,
                depth,
                fanout,
                ..Default::default()
            });
            let mut rng = StdRng::seed_from_u64(depth as u64);
            let trace = topo.trace(&mut rng, 1_000_000_000);
            assert_eq!(
                trace.len(),
                topo.spans_per_trace(),
                "depth {depth} fanout {fanout}"
            );
            let by_id: HashMap<&[u8], &pt::Span> = trace
                .iter()
                .map(|g| (g.span.span_id.as_slice(), &g.span))
                .collect();
            assert_eq!(by_id.len(), trace.len(), "span ids are unique");
            let roots: Vec<_> = trace
                .iter()
                .filter(|g| g.span.parent_span_id.is_empty())
                .collect();
            assert_eq!(roots.len(), 1);
            assert_eq!(roots[0].service, 0, "the entry service holds the root");
            for g in &trace {
                assert_eq!(g.span.trace_id, trace[0].span.trace_id);
                assert!(g.span.end_time_unix_nano >= g.span.start_time_unix_nano);
                if let Some(p) = by_id.get(g.span.parent_span_id.as_slice()) {
                    // Children happen within their parent.
                    assert!(g.span.start_time_unix_nano >= p.start_time_unix_nano);
                    assert!(g.span.end_time_unix_nano <= p.end_time_unix_nano);
                } else {
                    assert!(
                        g.span.parent_span_id.is_empty(),
                        "parent exists in the trace"
                    );
                }
            }
        }
    }

    #[test]
    fn error_rate_is_respected() {
        let topo = Topology::new(TopologyConfig {
            error_rate: 0.2,
            ..Default::default()
        });
        let mut rng = StdRng::seed_from_u64(9);
        let n = 5_000;
        let failed = (0..n)
            .filter(|_| {
                let t = topo.trace(&mut rng, 0);
                let root = t
                    .iter()
                    .find(|g| g.span.parent_span_id.is_empty())
                    .map(|g| &g.span);
                root.and_then(|r| r.status.as_ref())
                    .is_some_and(|s| s.code == pt::status::StatusCode::Error as i32)
            })
            .count();
        let rate = failed as f64 / n as f64;
        assert!((0.17..0.23).contains(&rate), "{rate}");
        let none = Topology::new(TopologyConfig {
            error_rate: 0.0,
            ..Default::default()
        });
        assert!((0..200).all(|_| none.trace(&mut rng, 0).iter().all(|g| g
            .span
            .status
            .as_ref()
            .is_some_and(|s| s.code == 0))));
    }

    #[test]
    fn spans_carry_realistic_attributes() {
        let topo = Topology::new(TopologyConfig::default());
        let mut rng = StdRng::seed_from_u64(1);
        let keys: std::collections::HashSet<String> = (0..50)
            .flat_map(|_| topo.trace(&mut rng, 0))
            .flat_map(|g| g.span.attributes)
            .map(|kv| kv.key)
            .collect();
        for k in [
            "http.method",
            "http.route",
            "http.status_code",
            "db.system",
            "rpc.service",
            "user_id",
        ] {
            assert!(keys.contains(k), "{k} missing from {keys:?}");
        }
    }
}
