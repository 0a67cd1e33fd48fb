//! A small process-wide metrics registry rendered in the Prometheus text
//! format at /metrics. Handles are `Arc<AtomicU64>`, so a hot path looks a
//! metric up once and then only does an atomic add.

use parking_lot::Mutex;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    Counter,
    Gauge,
}

type Key = (String, Vec<(String, String)>);

#[derive(Default)]
struct Registry {
    series: BTreeMap<Key, (Kind, Arc<AtomicU64>)>,
    help: BTreeMap<String, String>,
    actors: BTreeMap<String, Arc<ActorStats>>,
}

fn registry() -> &'static Mutex<Registry> {
    static R: OnceLock<Mutex<Registry>> = OnceLock::new();
    R.get_or_init(Default::default)
}

fn handle(kind: Kind, name: &str, help: &str, labels: &[(&str, &str)]) -> Arc<AtomicU64> {
    let key: Key = (
        name.to_string(),
        labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    );
    let mut r = registry().lock();
    r.help
        .entry(name.to_string())
        .or_insert_with(|| help.to_string());
    r.series
        .entry(key)
        .or_insert_with(|| (kind, Arc::new(AtomicU64::new(0))))
        .1
        .clone()
}

/// A monotonically increasing count.
#[derive(Clone)]
pub struct Counter(Arc<AtomicU64>);

impl Counter {
    pub fn new(name: &str, help: &str, labels: &[(&str, &str)]) -> Counter {
        Counter(handle(Kind::Counter, name, help, labels))
    }
    pub fn inc(&self) {
        self.add(1)
    }
    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// A value that goes up and down (stored as u64; use `set` for absolutes).
#[derive(Clone)]
pub struct Gauge(Arc<AtomicU64>);

impl Gauge {
    pub fn new(name: &str, help: &str, labels: &[(&str, &str)]) -> Gauge {
        Gauge(handle(Kind::Gauge, name, help, labels))
    }
    pub fn set(&self, v: u64) {
        self.0.store(v, Ordering::Relaxed);
    }
    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }
    pub fn sub(&self, n: u64) {
        // Saturating: a gauge never wraps below zero.
        let _ = self
            .0
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| {
                Some(v.saturating_sub(n))
            });
    }
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Observable state of one actor: mailbox depth, messages in and out,
/// restarts and the last error. Exposed at /metrics and /api/admin/actors.
#[derive(Default)]
pub struct ActorStats {
    pub queue_depth: AtomicU64,
    pub messages_in: AtomicU64,
    pub messages_out: AtomicU64,
    pub restarts: AtomicU64,
    pub last_error: Mutex<String>,
}

impl ActorStats {
    pub fn get(actor: &str) -> Arc<ActorStats> {
        registry()
            .lock()
            .actors
            .entry(actor.to_string())
            .or_default()
            .clone()
    }
    pub fn record_error(&self, e: &dyn std::fmt::Display) {
        *self.last_error.lock() = e.to_string();
    }
    pub fn snapshot_json() -> serde_json::Value {
        let r = registry().lock();
        serde_json::Value::Object(
            r.actors
                .iter()
                .map(|(name, s)| {
                    (
                        name.clone(),
                        serde_json::json!({
                            "queue_depth": s.queue_depth.load(Ordering::Relaxed),
                            "messages_in": s.messages_in.load(Ordering::Relaxed),
                            "messages_out": s.messages_out.load(Ordering::Relaxed),
                            "restarts": s.restarts.load(Ordering::Relaxed),
                            "last_error": s.last_error.lock().clone(),
                        }),
                    )
                })
                .collect(),
        )
    }
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn labels_text(labels: &[(String, String)]) -> String {
    if labels.is_empty() {
        return String::new();
    }
    let inner: Vec<String> = labels
        .iter()
        .map(|(k, v)| format!("{k}=\"{}\"", escape(v)))
        .collect();
    format!("{{{}}}", inner.join(","))
}

/// Renders every metric in the Prometheus text exposition format.
pub fn render() -> String {
    let r = registry().lock();
    let mut out = String::new();
    let mut last = "";
    for ((name, labels), (kind, v)) in &r.series {
        if name != last {
            let help = r.help.get(name).map(String::as_str).unwrap_or("");
            let t = if *kind == Kind::Counter {
                "counter"
            } else {
                "gauge"
            };
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {t}");
            last = name;
        }
        let _ = writeln!(
            out,
            "{name}{} {}",
            labels_text(labels),
            v.load(Ordering::Relaxed)
        );
    }
    type Field = (&'static str, &'static str, fn(&ActorStats) -> u64);
    let fields: [Field; 4] = [
        ("strand_actor_queue_depth", "gauge", |s| {
            s.queue_depth.load(Ordering::Relaxed)
        }),
        ("strand_actor_messages_in_total", "counter", |s| {
            s.messages_in.load(Ordering::Relaxed)
        }),
        ("strand_actor_messages_out_total", "counter", |s| {
            s.messages_out.load(Ordering::Relaxed)
        }),
        ("strand_actor_restarts_total", "counter", |s| {
            s.restarts.load(Ordering::Relaxed)
        }),
    ];
    for (name, t, f) in fields {
        let _ = writeln!(out, "# HELP {name} per-actor state\n# TYPE {name} {t}");
        for (actor, s) in &r.actors {
            let _ = writeln!(out, "{name}{{actor=\"{}\"}} {}", escape(actor), f(s));
        }
    }
    let _ = writeln!(out, "# HELP strand_actor_last_error_info last error an actor saw (empty if none)\n# TYPE strand_actor_last_error_info gauge");
    for (actor, s) in &r.actors {
        let e = s.last_error.lock();
        let _ = writeln!(
            out,
            "strand_actor_last_error_info{{actor=\"{}\",error=\"{}\"}} {}",
            escape(actor),
            escape(&e),
            u8::from(!e.is_empty())
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_gauges_and_actor_stats() {
        let c = Counter::new(
            "strand_test_total",
            "a test counter",
            &[("transport", "grpc")],
        );
        c.add(3);
        let g = Gauge::new("strand_test_depth", "a test gauge", &[]);
        g.set(5);
        g.sub(7);
        ActorStats::get("test_actor").record_error(&"boom \"x\"");
        let text = render();
        assert!(
            text.contains("strand_test_total{transport=\"grpc\"} 3"),
            "{text}"
        );
        assert!(text.contains("strand_test_depth 0"), "{text}");
        assert!(text.contains("error=\"boom \\\"x\\\"\"} 1"), "{text}");
    }
}
