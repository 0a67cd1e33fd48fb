//! `strand loadgen`: OTLP load from a simulated microservice topology, over
//! gRPC or HTTP (or as Zipkin v2 JSON, `--protocol zipkin`), from a pool of pre-encoded requests (so the generator stays
//! cheap), with latency, retry and ingest-to-visible lag measurements; and
//! `--mode query` for query-side load.

pub mod client;
pub mod demo;
pub mod lag;
pub mod payload;
pub mod query;
pub mod shop;
pub mod stats;
pub mod topology;
pub mod zipkin;

use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde::Serialize;
use tokio::sync::mpsc;

use self::client::{retry_backoff, Outcome, Sender};
pub use self::payload::{
    build_request_pool, generate_request, synthetic_spans, PooledRequest, RequestPool,
};
use self::stats::Counters;
pub use self::stats::{Histogram, Percentiles};
pub use self::topology::{Topology, TopologyConfig};
use crate::error::{Error, Result};
use crate::export::timeparse::parse_duration;
use crate::model::{now_ns, TraceId};

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    Grpc,
    Http,
    /// Zipkin v2 JSON to `<zipkin-url>/api/v2/spans`.
    Zipkin,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    Ingest,
    Query,
}

/// `strand loadgen` arguments.
#[derive(clap::Args, Debug, Clone)]
pub struct LoadgenArgs {
    #[arg(long, value_enum, default_value = "ingest")]
    pub mode: Mode,
    #[arg(long, value_enum, default_value = "grpc")]
    pub protocol: Protocol,
    #[arg(long, default_value = "http://127.0.0.1:4317")]
    pub grpc_url: String,
    #[arg(long, default_value = "http://127.0.0.1:4318")]
    pub http_url: String,
    #[arg(long, default_value = "http://127.0.0.1:9411")]
    pub zipkin_url: String,
    /// Query API, for lag measurement and --mode query.
    #[arg(long, default_value = "http://127.0.0.1:16686")]
    pub query_url: String,
    #[arg(long, default_value_t = 10)]
    pub services: usize,
    /// Service levels below the entry service.
    #[arg(long, default_value_t = 3)]
    pub depth: usize,
    #[arg(long, default_value_t = 2)]
    pub fanout: usize,
    /// Attributes per span.
    #[arg(long, default_value_t = 8)]
    pub attributes: usize,
    /// Fraction of traces with an error.
    #[arg(long, default_value_t = 0.01)]
    pub error_rate: f64,
    /// Target encoded span size.
    #[arg(long, default_value_t = 400)]
    pub span_bytes: usize,
    /// Spans per second (all connections together); as fast as possible if absent.
    #[arg(long)]
    pub rate: Option<f64>,
    #[arg(long, default_value_t = 4)]
    pub connections: usize,
    /// How long to run, e.g. 30s (default 10s unless --spans is given).
    #[arg(long)]
    pub duration: Option<String>,
    /// Stop after about this many spans.
    #[arg(long)]
    pub spans: Option<u64>,
    /// Spans per request.
    #[arg(long, default_value_t = 512)]
    pub batch: usize,
    /// Pre-encoded requests to rotate through.
    #[arg(long, default_value_t = 64)]
    pub pool: usize,
    /// Traces sampled for the lag measurement (0: none).
    #[arg(long, default_value_t = 20)]
    pub lag_samples: u64,
    /// Sample one request in this many for lag.
    #[arg(long, default_value_t = 10)]
    pub lag_every: u64,
    #[arg(long, default_value = "30s")]
    pub lag_timeout: String,
    #[arg(long, default_value_t = 10)]
    pub max_retries: u32,
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// PEM CA bundle to trust for `https://` ingest URLs (a strand with
    /// `[tls]`, docs/SECURITY.md).
    #[arg(long)]
    pub tls_ca: Option<std::path::PathBuf>,
    /// Ingest API key, sent as `authorization: Bearer <key>`.
    #[arg(long, env = "STRAND_LOADGEN_API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,
    /// Print the summary as JSON on stdout.
    #[arg(long)]
    pub json: bool,
    /// No live progress line.
    #[arg(long)]
    pub quiet: bool,
}

impl Default for LoadgenArgs {
    fn default() -> Self {
        use clap::Parser;
        #[derive(clap::Parser)]
        struct Wrap {
            #[command(flatten)]
            a: LoadgenArgs,
        }
        Wrap::parse_from(["loadgen"]).a
    }
}

impl LoadgenArgs {
    pub fn topology(&self) -> TopologyConfig {
        TopologyConfig {
            services: self.services,
            depth: self.depth,
            fanout: self.fanout,
            attributes: self.attributes,
            error_rate: self.error_rate,
            span_bytes: self.span_bytes,
        }
    }

    fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::InvalidArgument(m));
        if !(0.0..=1.0).contains(&self.error_rate) {
            return bad(format!(
                "--error-rate {} must be within 0..=1",
                self.error_rate
            ));
        }
        if self.rate.is_some_and(|r| r.is_nan() || r <= 0.0) {
            return bad("--rate must be positive".into());
        }
        if self.services == 0
            || self.depth == 0
            || self.fanout == 0
            || self.batch == 0
            || self.connections == 0
        {
            return bad(
                "--services, --depth, --fanout, --batch and --connections must be positive".into(),
            );
        }
        if self.topology_spans_per_trace() > 100_000 {
            return bad(format!(
                "--depth {} --fanout {} makes traces of over 100k spans",
                self.depth, self.fanout
            ));
        }
        Ok(())
    }

    fn topology_spans_per_trace(&self) -> usize {
        Topology::new(TopologyConfig {
            services: 1,
            ..self.topology()
        })
        .spans_per_trace()
    }

    fn run_for(&self) -> Result<Option<Duration>> {
        match (&self.duration, self.spans) {
            (Some(d), _) => Ok(Some(Duration::from_nanos(parse_duration(d)?))),
            (None, Some(_)) => Ok(None),
            (None, None) => Ok(Some(Duration::from_secs(10))),
        }
    }
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct LoadgenSummary {
    pub mode: String,
    pub protocol: String,
    pub elapsed_secs: f64,
    pub requests: u64,
    pub spans_sent: u64,
    /// Spans the server acknowledged (minus those reported rejected).
    pub spans_accepted: u64,
    /// Spans reported rejected through OTLP partial_success.
    pub spans_rejected: u64,
    /// Spans of requests that failed for good (non-retryable, or out of retries).
    pub spans_failed: u64,
    /// Attempts retried after 429/503/RESOURCE_EXHAUSTED/UNAVAILABLE.
    pub retries: u64,
    pub accepted_spans_per_sec: f64,
    pub avg_span_bytes: f64,
    pub spans_per_trace: usize,
    /// Per attempt, milliseconds.
    pub latency_ms: Percentiles,
    pub lag: Option<lag::LagReport>,
    pub query: Option<query::QueryReport>,
    pub last_error: Option<String>,
}

impl std::fmt::Display for LoadgenSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if let Some(q) = &self.query {
            writeln!(
                f,
                "query load: {} requests in {:.1}s ({:.0}/s), {} errors",
                q.requests, self.elapsed_secs, q.requests_per_sec, q.errors
            )?;
            let p = |p: &Percentiles| {
                format!(
                    "p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
                    p.p50, p.p90, p.p99, p.max
                )
            };
            writeln!(f, "  trace by id: {}", p(&q.trace_by_id_ms))?;
            return writeln!(f, "  search:      {}", p(&q.search_ms));
        }
        writeln!(
            f,
            "{} spans accepted in {:.1}s: {:.0} spans/s ({} over {}; {} spans/trace, ~{:.0} B/span)",
            self.spans_accepted, self.elapsed_secs, self.accepted_spans_per_sec, self.requests, self.protocol, self.spans_per_trace, self.avg_span_bytes
        )?;
        writeln!(
            f,
            "  sent {}, rejected {}, failed {}, retries {}",
            self.spans_sent, self.spans_rejected, self.spans_failed, self.retries
        )?;
        let l = &self.latency_ms;
        writeln!(
            f,
            "  request latency: p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
            l.p50, l.p90, l.p99, l.max
        )?;
        if let Some(lag) = &self.lag {
            writeln!(
                f,
                "  ingest-to-visible lag ({} of {} sampled traces found): p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
                lag.found, lag.sampled, lag.lag_ms.p50, lag.lag_ms.p99, lag.lag_ms.max
            )?;
        }
        if let Some(e) = &self.last_error {
            writeln!(f, "  last error: {e}")?;
        }
        Ok(())
    }
}

/// `strand loadgen`: runs and prints the summary (JSON with `--json`).
pub async fn main_loadgen(args: &LoadgenArgs) -> Result<()> {
    let summary = run_loadgen(args).await?;
    if args.json {
        let json = serde_json::to_string(&summary)
            .map_err(|e| Error::Internal(format!("summary: {e}")))?;
        println!("{json}");
    } else {
        print!("{summary}");
    }
    Ok(())
}

struct Shared {
    pool: RequestPool,
    counters: Counters,
    spans_claimed: AtomicU64,
    stop: AtomicBool,
    salt: u64,
    start: Instant,
    deadline: Option<Instant>,
    args: LoadgenArgs,
    lag_taken: AtomicU64,
}

/// Runs the load described by `args` and returns its summary.
pub async fn run_loadgen(args: &LoadgenArgs) -> Result<LoadgenSummary> {
    args.validate()?;
    let run_for = args.run_for()?;
    if args.mode == Mode::Query {
        let d = run_for.unwrap_or(Duration::from_secs(10));
        let started = Instant::now();
        let q = query::run(&args.query_url, args.connections, d, args.seed).await?;
        return Ok(LoadgenSummary {
            mode: "query".into(),
            elapsed_secs: started.elapsed().as_secs_f64(),
            query: Some(q),
            ..Default::default()
        });
    }
    let lag_timeout = Duration::from_nanos(parse_duration(&args.lag_timeout)?);
    let (cfg, n, batch, seed) = (args.topology(), args.pool, args.batch, args.seed);
    let pool = tokio::task::spawn_blocking(move || build_request_pool(&cfg, n, batch, seed))
        .await
        .map_err(|e| Error::Internal(format!("building requests: {e}")))?;
    let mut senders = Vec::new();
    let sec = client::ClientSecurity::from_args(args)?;
    for _ in 0..args.connections {
        senders.push(match args.protocol {
            Protocol::Grpc => Sender::grpc_with(&args.grpc_url, &sec).await?,
            Protocol::Http => Sender::http_with(&args.http_url, &sec)?,
            Protocol::Zipkin => Sender::zipkin_with(&args.zipkin_url, &sec)?,
        });
    }
    let start = Instant::now();
    let shared = Arc::new(Shared {
        pool,
        counters: Counters::default(),
        spans_claimed: AtomicU64::new(0),
        stop: AtomicBool::new(false),
        salt: rand::random(),
        start,
        deadline: run_for.map(|d| start + d),
        args: args.clone(),
        lag_taken: AtomicU64::new(0),
    });
    let (lag_tx, lag_rx) = mpsc::unbounded_channel();
    let lag_task = (args.lag_samples > 0)
        .then(|| tokio::spawn(lag::track(args.query_url.clone(), lag_rx, lag_timeout)));
    let progress = (!args.quiet && std::io::stderr().is_terminal())
        .then(|| tokio::spawn(progress_line(shared.clone())));
    let workers: Vec<_> = senders
        .into_iter()
        .map(|s| tokio::spawn(worker(shared.clone(), s, lag_tx.clone())))
        .collect();
    drop(lag_tx);
    for w in workers {
        let _ = w.await;
    }
    let elapsed = start.elapsed();
    shared.stop.store(true, Ordering::Relaxed);
    if let Some(p) = progress {
        let _ = p.await;
    }
    let lag = match lag_task {
        Some(t) => t.await.ok(),
        None => None,
    };
    let c = &shared.counters;
    let accepted = Counters::get(&c.spans_accepted);
    let latency_ms = c.latency_us.lock().percentiles_ms();
    let last_error = c.last_error.lock().clone();
    Ok(LoadgenSummary {
        mode: "ingest".into(),
        protocol: format!("{:?}", args.protocol).to_lowercase(),
        elapsed_secs: elapsed.as_secs_f64(),
        requests: Counters::get(&c.requests),
        spans_sent: Counters::get(&c.spans_sent),
        spans_accepted: accepted,
        spans_rejected: Counters::get(&c.spans_rejected),
        spans_failed: Counters::get(&c.spans_failed),
        retries: Counters::get(&c.retries),
        accepted_spans_per_sec: accepted as f64 / elapsed.as_secs_f64().max(1e-9),
        avg_span_bytes: shared.pool.avg_span_bytes(),
        spans_per_trace: Topology::new(args.topology()).spans_per_trace(),
        latency_ms,
        lag,
        query: None,
        last_error,
    })
}

async fn worker(
    sh: Arc<Shared>,
    mut sender: Sender,
    lag_tx: mpsc::UnboundedSender<(TraceId, Instant)>,
) {
    let c = &sh.counters;
    let n = sh.pool.requests.len() as u64;
    loop {
        if sh.deadline.is_some_and(|d| Instant::now() >= d) {
            break;
        }
        let seq = c.requests.fetch_add(1, Ordering::Relaxed);
        let req = &sh.pool.requests[(seq % n) as usize];
        let claimed = sh
            .spans_claimed
            .fetch_add(req.spans as u64, Ordering::Relaxed);
        if sh.args.spans.is_some_and(|limit| claimed >= limit) {
            c.requests.fetch_sub(1, Ordering::Relaxed);
            break;
        }
        if let Some(rate) = sh.args.rate {
            let due = sh.start + Duration::from_secs_f64(claimed as f64 / rate);
            tokio::time::sleep_until(due.into()).await;
        }
        let buf = req.patched(
            sh.salt.wrapping_add(seq),
            now_ns().saturating_sub(sh.pool.base_ns),
        );
        let trace = req.first_trace_id(&buf);
        let body = Bytes::from(buf);
        let sent_at = Instant::now();
        Counters::add(&c.spans_sent, req.spans as u64);
        let (mut attempt, mut backoff) = (0, retry_backoff());
        loop {
            let t = Instant::now();
            let outcome = sender.send(body.clone()).await;
            c.latency_us.lock().record(t.elapsed().as_micros() as u64);
            match outcome {
                Outcome::Accepted { rejected } => {
                    let rejected = rejected.min(req.spans as u64);
                    Counters::add(&c.spans_accepted, req.spans as u64 - rejected);
                    Counters::add(&c.spans_rejected, rejected);
                    let take = sh.args.lag_samples > 0 && seq % sh.args.lag_every.max(1) == 0;
                    if take && sh.lag_taken.fetch_add(1, Ordering::Relaxed) < sh.args.lag_samples {
                        if let Some(id) = trace {
                            let _ = lag_tx.send((id, sent_at));
                        }
                    }
                    break;
                }
                Outcome::Retry { after, why } if attempt < sh.args.max_retries => {
                    Counters::add(&c.retries, 1);
                    *c.last_error.lock() = Some(why);
                    let exp = backoff.next_delay();
                    tokio::time::sleep(after.map_or(exp, |a| a.max(exp))).await;
                    attempt += 1;
                }
                Outcome::Retry { why, .. } | Outcome::Failed(why) => {
                    Counters::add(&c.spans_failed, req.spans as u64);
                    Counters::add(&c.errors, 1);
                    *c.last_error.lock() = Some(why);
                    break;
                }
            }
        }
    }
}

async fn progress_line(sh: Arc<Shared>) {
    let c = &sh.counters;
    let mut last = (Instant::now(), 0u64);
    while !sh.stop.load(Ordering::Relaxed) {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let acc = Counters::get(&c.spans_accepted);
        let now = Instant::now();
        let rate = (acc - last.1) as f64 / now.duration_since(last.0).as_secs_f64().max(1e-9);
        last = (now, acc);
        eprint!(
            "\r[{:6.1}s] accepted {acc} spans ({rate:.0}/s), rejected {}, failed {}, retries {}   ",
            sh.start.elapsed().as_secs_f64(),
            Counters::get(&c.spans_rejected),
            Counters::get(&c.spans_failed),
            Counters::get(&c.retries)
        );
    }
    eprintln!();
}
