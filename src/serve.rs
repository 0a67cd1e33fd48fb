//! `strand serve`: builds the supervision tree for the configured role and
//! runs the OTLP receivers and the query service until SIGINT/SIGTERM.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use actix_web::{web, App, HttpServer};
use clap::{Args, ValueEnum};

use crate::config::Config;
use crate::error::{Error, Result};
use crate::store::tiered::{FanoutWriter, TieredReader};
use crate::store::{SpanReader, SpanWriter};

/// Which part of the pipeline this process runs (as Tempo's `-target`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Target {
    /// Everything in one process.
    All,
    /// OTLP receivers that publish to Kafka (needs kafka.enabled).
    Ingest,
    /// Kafka consumers that write the hot store (and Elasticsearch), plus
    /// the query API over what this node stores.
    Writer,
    /// Only the query API and UI over the configured storage.
    Query,
}

#[derive(Args, Debug)]
#[command(after_long_help = config_help())]
pub struct ServeArgs {
    /// TOML config file (unknown keys are an error).
    #[arg(long, env = "STRAND_CONFIG")]
    pub config: Option<PathBuf>,
    /// Role of this process.
    #[arg(long, value_enum, default_value = "all")]
    pub target: Target,
    /// Also generate a small stream of demo traces into this instance.
    #[arg(long)]
    pub demo: bool,
    /// Hot-store directory (storage.dir).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// OTLP/gRPC listen address (ingest.grpc_addr).
    #[arg(long)]
    pub grpc_addr: Option<String>,
    /// OTLP/HTTP listen address (ingest.http_addr).
    #[arg(long)]
    pub http_addr: Option<String>,
    /// Query API and UI listen address (query.addr).
    #[arg(long)]
    pub query_addr: Option<String>,
    /// Any config key: `--set section.key=value` (repeatable; overrides the
    /// file and STRAND_SECTION__KEY environment variables).
    #[arg(long = "set", value_name = "SECTION.KEY=VALUE")]
    pub set: Vec<String>,
}

/// Every config key with its default, appended to `serve --help`.
fn config_help() -> String {
    let defaults = toml::to_string(&Config::default()).unwrap_or_default();
    format!(
        "Configuration (TOML file < STRAND_SECTION__KEY env < flags). Every key, with its default:\n\n{defaults}\nSee docs/CONFIG.md for what each key means."
    )
}

impl ServeArgs {
    pub fn load_config(&self) -> Result<Config> {
        let text = match &self.config {
            Some(p) => std::fs::read_to_string(p)
                .map_err(|e| Error::config(p.display().to_string(), e.to_string()))?,
            None => String::new(),
        };
        let mut overrides: Vec<(String, String)> = std::env::vars().collect();
        let mut flag = |key: &str, v: Option<String>| {
            if let Some(v) = v {
                overrides.push((env_key(key), v));
            }
        };
        flag(
            "storage.dir",
            self.data_dir.as_ref().map(|p| p.display().to_string()),
        );
        flag("ingest.grpc_addr", self.grpc_addr.clone());
        flag("ingest.http_addr", self.http_addr.clone());
        flag("query.addr", self.query_addr.clone());
        for kv in &self.set {
            let (k, v) = kv
                .split_once('=')
                .ok_or_else(|| Error::config(kv.clone(), "expected --set section.key=value"))?;
            if !k.contains('.') {
                return Err(Error::config(k, "expected section.key"));
            }
            overrides.push((env_key(k), v.to_string()));
        }
        Config::from_sources(&text, &overrides)
    }
}

fn env_key(dotted: &str) -> String {
    format!(
        "STRAND_{}",
        dotted.replacen('.', "__", 1).to_ascii_uppercase()
    )
}

pub fn init_logging() {
    let filter =
        tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .try_init();
}

fn addr(key: &str, s: &str) -> Result<SocketAddr> {
    s.parse()
        .map_err(|e| Error::config(key, format!("{s:?}: {e}")))
}

pub fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let cfg = args.load_config()?;
    if matches!(args.target, Target::Ingest | Target::Writer) && !cfg.kafka.enabled {
        anyhow::bail!("--target {:?} needs kafka.enabled = true", args.target);
    }
    let system = actix_web::rt::System::new();
    system.block_on(run(cfg, args.target, args.demo))?;
    Ok(())
}

async fn run(cfg: Config, target: Target, demo: bool) -> anyhow::Result<()> {
    let ready = Arc::new(AtomicBool::new(false));
    let stores_here = matches!(target, Target::All | Target::Writer | Target::Query);
    let ingests_here = matches!(target, Target::All | Target::Ingest);

    // Storage tiers: the hot store always (where data lives), Elasticsearch
    // when enabled; a query node with peers reads them instead of a local
    // store. `durable` is Ok only once every tier has the spans.
    let mut writers: Vec<Arc<dyn SpanWriter>> = Vec::new();
    let mut readers: Vec<Arc<dyn SpanReader>> = Vec::new();
    let remote = target == Target::Query && !cfg.query.peers.is_empty();
    if remote {
        for peer in &cfg.query.peers {
            let r = crate::store::remote::RemoteReader::new(
                peer,
                crate::store::remote::DEFAULT_TIMEOUT,
            )?;
            readers.push(Arc::new(r));
        }
        tracing::info!(peers = ?cfg.query.peers, "reading from peers");
    }
    let mut _dir_lock = None;
    if stores_here && !remote {
        _dir_lock = Some(crate::store::lock_data_dir(&cfg.storage.dir)?);
        let store = crate::store::HotStore::open(&cfg.storage, &cfg.index)?;
        readers.push(Arc::new(crate::store::offload::OffloadedHotStore(
            store.clone(),
        )));
        if target != Target::Query {
            writers.push(Arc::new(crate::actors::writer::start_hot_writer(
                store,
                &cfg.storage,
            )));
        }
    }
    if stores_here && cfg.elasticsearch.enabled {
        // Not `connect`: start even while Elasticsearch is down, and
        // answer queries from the hot store until it is back.
        let es = crate::elasticsearch::EsStore::open(&cfg.elasticsearch)?;
        readers.push(Arc::new(
            crate::elasticsearch::fallible::SecondaryTier::new("elasticsearch", es),
        ));
        if target != Target::Query {
            let w = crate::actors::es_writer::start_es_writer(
                &cfg.elasticsearch,
                &cfg.index,
                &cfg.storage.dir,
            )?;
            writers.push(Arc::new(w));
        }
    }
    let durable: Arc<dyn SpanWriter> = Arc::new(FanoutWriter(writers));

    let mut kafka_consumers = None;
    if cfg.kafka.enabled && matches!(target, Target::All | Target::Writer) {
        // A writer may start before any ingest node: create the topics
        // its consumers subscribe to.
        crate::kafka::admin::ensure_topic(&cfg.kafka, &cfg.kafka.topic, cfg.kafka.partitions)
            .await?;
        crate::kafka::admin::ensure_topic(
            &cfg.kafka,
            &crate::kafka::dlq_topic(&cfg.kafka.topic),
            1,
        )
        .await?;
        kafka_consumers = Some(crate::actors::kafka_consumer::start_kafka_consumers(
            &cfg.kafka,
            durable.clone(),
        )?);
    }
    let ingest_sink: Arc<dyn SpanWriter> = if !ingests_here {
        durable.clone()
    } else if cfg.kafka.enabled {
        Arc::new(crate::kafka::producer::KafkaSink::connect(&cfg.kafka).await?)
    } else {
        durable.clone()
    };

    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut servers = Vec::new();
    if ingests_here {
        let receiver = crate::ingest::start_receiver(&cfg, ingest_sink);
        // gRPC gets its own multi-threaded runtime so protobuf decoding
        // uses every core, independent of actix's per-thread arbiters.
        let grpc_addr = addr("ingest.grpc_addr", &cfg.ingest.grpc_addr)?;
        let (rx, icfg, r) = (stop_rx.clone(), cfg.ingest.clone(), receiver.clone());
        let grpc = std::thread::Builder::new()
            .name("otlp-grpc".into())
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .enable_all()
                    .build()?;
                rt.block_on(crate::ingest::serve_grpc(grpc_addr, r, icfg, wait_stop(rx)))
                    .map_err(|e| std::io::Error::other(e.to_string()))
            })?;
        let http = crate::ingest::http_server(
            addr("ingest.http_addr", &cfg.ingest.http_addr)?,
            receiver,
            cfg.ingest.clone(),
        )?;
        servers.push(http.handle());
        actix_web::rt::spawn(http);
        tracing::info!(grpc = %cfg.ingest.grpc_addr, http = %cfg.ingest.http_addr, "OTLP receivers listening");
        std::mem::drop(grpc);
    }

    if stores_here {
        let reader: Arc<dyn SpanReader> = match readers.len() {
            1 => readers.remove(0),
            _ => Arc::new(TieredReader(readers)),
        };
        let state = web::Data::new(crate::query::QueryState {
            reader: reader.clone(),
            cfg: cfg.query.clone(),
            ready: ready.clone(),
        });
        let export_reader = web::Data::new(reader);
        let query = HttpServer::new(move || {
            App::new()
                .app_data(state.clone())
                .app_data(export_reader.clone())
                .configure(crate::query::configure)
                .configure(crate::ui::configure)
                .configure(crate::export::configure)
        })
        .bind(addr("query.addr", &cfg.query.addr)?)?
        .run();
        servers.push(query.handle());
        actix_web::rt::spawn(query);
        tracing::info!(addr = %cfg.query.addr, "query service and UI listening");
    }

    if !stores_here {
        // An ingest node has no query API, but orchestration and tests
        // still probe its health on query.addr.
        let health = health_server(addr("query.addr", &cfg.query.addr)?, ready.clone())?;
        servers.push(health.handle());
        actix_web::rt::spawn(health);
    }

    if demo && ingests_here {
        actix_web::rt::spawn(crate::loadgen::demo::run(cfg.ingest.http_addr.clone()));
    }
    ready.store(true, Ordering::SeqCst);
    tracing::info!(target = ?target, "strand is ready");

    shutdown_signal().await;
    tracing::info!("shutting down");
    ready.store(false, Ordering::SeqCst);
    let _ = stop_tx.send(true);
    for s in servers {
        s.stop(true).await;
    }
    drop(kafka_consumers);
    actix::System::current().stop();
    Ok(())
}

/// /healthz, /readyz and /metrics only (the ingest role).
fn health_server(
    at: SocketAddr,
    ready: Arc<AtomicBool>,
) -> std::io::Result<actix_web::dev::Server> {
    let ready = web::Data::new(ready);
    Ok(HttpServer::new(move || {
        App::new()
            .app_data(ready.clone())
            .route("/healthz", web::get().to(crate::query::health::healthz))
            .route("/metrics", web::get().to(crate::query::health::metrics))
            .route(
                "/readyz",
                web::get().to(|r: web::Data<Arc<AtomicBool>>| async move {
                    if r.load(Ordering::Acquire) {
                        actix_web::HttpResponse::Ok().body("ready")
                    } else {
                        actix_web::HttpResponse::ServiceUnavailable()
                            .insert_header(("Retry-After", "1"))
                            .body("not ready")
                    }
                }),
            )
    })
    .workers(1)
    .bind(at)?
    .run())
}

async fn wait_stop(mut rx: tokio::sync::watch::Receiver<bool>) {
    while !*rx.borrow() {
        if rx.changed().await.is_err() {
            return;
        }
    }
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => return std::future::pending().await,
            };
        tokio::select! { _ = ctrl_c => {}, _ = term.recv() => {} }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

/// `strand export parquet`: reads the hot store in `--data-dir` (default
/// ./data) directly. The directory lock makes this fail clearly while a
/// `strand serve` owns it; export a live instance over HTTP instead
/// (`GET /api/export/parquet`).
pub fn export_parquet(args: crate::export::ExportArgs) -> anyhow::Result<()> {
    let dir = args
        .data_dir
        .clone()
        .unwrap_or_else(|| PathBuf::from("./data"));
    let storage = crate::config::StorageConfig {
        dir: dir.clone(),
        ..Default::default()
    };
    let _lock = crate::store::lock_data_dir(&dir)?;
    let store = crate::store::HotStore::open(&storage, &crate::config::IndexConfig::default())?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(crate::export::main_export(store, &args))?;
    Ok(())
}

/// `strand loadgen`.
pub fn loadgen(args: crate::loadgen::LoadgenArgs) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(crate::loadgen::main_loadgen(&args))?;
    Ok(())
}
