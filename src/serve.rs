//! `strand serve`: the composition root. It builds the supervision tree
//! for the configured role, binds the listeners, composes the storage tiers
//! and runs until SIGINT/SIGTERM.

use std::path::PathBuf;
use std::sync::Arc;

use actix_web::{web, App, HttpServer};
use clap::{Args, ValueEnum};
use tokio::sync::watch;

use crate::actors::listener::{bind, watch_http, GrpcListener, StopListener};
use crate::actors::tree::{Health, Policy, Root, StageHandle};
use crate::config::Config;
use crate::error::{Error, Result};
use crate::ingest::Intake;
use crate::model::SpanWriter;
use crate::tiers::Parts;

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

/// Text logs (see `selftrace::logs` for the JSON format).
pub fn init_logging() {
    crate::selftrace::logs::init(crate::selftrace::logs::LogFormat::Text);
}

pub fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let cfg = args.load_config()?;
    if matches!(args.target, Target::Ingest | Target::Writer) && !cfg.kafka.enabled {
        anyhow::bail!("--target {:?} needs kafka.enabled = true", args.target);
    }
    let system = actix_web::rt::System::new();
    if let Err(e) = system.block_on(run(cfg, args.target, args.demo)) {
        // Stages started before the failure would first be polled while
        // the runtime is dropped, outside any reactor, and panic there; a
        // process about to exit with the error leaves it standing.
        std::mem::forget(system);
        return Err(e);
    }
    Ok(())
}

/// The composition root: binds every listener, starts each stage under
/// the supervision tree, composes the storage tiers, then serves until
/// SIGINT/SIGTERM.
async fn run(cfg: Config, target: Target, demo: bool) -> anyhow::Result<()> {
    let health = Health::default();
    let root = Root::start(Policy::default(), health.clone());
    let stores_here = matches!(target, Target::All | Target::Writer | Target::Query);
    let ingests_here = matches!(target, Target::All | Target::Ingest);
    let remote = target == Target::Query && !cfg.query.peers.is_empty();

    // TLS files are checked before anything binds or opens (security::tls).
    let tls = crate::security::ServerTls::load(&cfg.tls)?;
    // Listeners first: a taken port fails start-up, naming it.
    let (grpc_listener, http_listener) = if ingests_here {
        (
            Some(bind("ingest.grpc_addr", &cfg.ingest.grpc_addr)?),
            Some(bind("ingest.http_addr", &cfg.ingest.http_addr)?),
        )
    } else {
        (None, None)
    };
    let zipkin_listener = match ingests_here && !cfg.ingest.zipkin_addr.is_empty() {
        true => Some(bind("ingest.zipkin_addr", &cfg.ingest.zipkin_addr)?),
        false => None,
    };
    let query_listener = bind("query.addr", &cfg.query.addr)?;
    // The remote-sampling ports, where SDKs send their spans.
    let sr = &cfg.sampling.remote;
    let sampling_http_listener = match ingests_here && !sr.http_addr.is_empty() {
        true => Some(bind("sampling.remote.http_addr", &sr.http_addr)?),
        false => None,
    };
    let sampling_grpc_listener = match ingests_here && !sr.grpc_addr.is_empty() {
        true => Some(bind("sampling.remote.grpc_addr", &sr.grpc_addr)?),
        false => None,
    };
    let strategies = crate::strategies::store::Store::open(&cfg.sampling)?;

    // Storage: the hot store where data lives (a query node with peers
    // reads them instead), Elasticsearch when enabled.
    let mut parts = Parts::default();
    let mut _dir_lock = None;
    // Before the writers: tail sampling reads per-operation quantiles.
    let metric_peers = if remote { &cfg.query.peers[..] } else { &[] };
    let span_metrics =
        crate::spanmetrics::wiring::reader(&cfg, stores_here && !remote, metric_peers)?;
    if stores_here && !remote {
        _dir_lock = Some(crate::store::lock_data_dir(&cfg.storage.dir)?);
        let store = crate::store::HotStore::open(&cfg.storage, &cfg.index)?;
        if target != Target::Query {
            let w = match cfg.sampling.tail.enabled {
                true => crate::actors::writer::start_hot_writer_tail(
                    store.clone(),
                    Some(&root),
                    crate::tailsampling::TailSetup {
                        cfg: Arc::new(cfg.sampling.tail.clone()),
                        quantiles: crate::tailsampling::quantiles::Quantiles::start(
                            span_metrics.reader.clone(),
                            std::time::Duration::from_secs(cfg.sampling.tail.quantile_refresh_secs),
                        ),
                    },
                )?,
                false => crate::actors::writer::start_hot_writer(store.clone(), Some(&root)),
            };
            parts.hot_writer = Some(Arc::new(w));
        }
        parts.hot = Some(store);
    }
    if remote {
        parts.peers = cfg.query.peers.clone();
        tracing::info!(peers = ?cfg.query.peers, "reading from peers");
    }
    if stores_here && cfg.elasticsearch.enabled {
        // Not `connect`: start even while Elasticsearch is down, and
        // answer queries from the hot store until it is back.
        parts.elasticsearch = Some(crate::elasticsearch::EsStore::open(&cfg.elasticsearch)?);
        if target != Target::Query {
            let w = crate::elasticsearch::sink::start_es_writer(
                &cfg.elasticsearch,
                &cfg.index,
                &cfg.storage.dir,
                Some(&root),
            )?;
            parts.elasticsearch_writer = Some(Arc::new(w));
        }
    }
    let tiers = crate::tiers::compose(parts)?;
    let (metrics_hub, metrics_flusher) =
        crate::spanmetrics::wiring::start(&cfg, ingests_here, &span_metrics, Some(&root)).await?;

    let mut kafka_consumers = None;
    let mut extra_consumers = Vec::new();
    let mut metrics_consumer = None;
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
        kafka_consumers = Some(crate::kafka::consumer::start_kafka_consumers(
            &cfg.kafka,
            tiers.durable.clone(),
            Some(&root),
        )?);
        extra_consumers = crate::kafka::consumer::start_extra_consumers(
            &cfg.kafka,
            tiers.durable.clone(),
            Some(&root),
        )?;
        if let Some(store) = &span_metrics.store {
            let c = crate::spanmetrics::kafka_store::start(&cfg, store.clone(), Some(&root));
            metrics_consumer = Some(c.await?);
        }
    }

    let (stopping_tx, stopping) = watch::channel(false);
    let mut servers = Vec::new();
    let mut grpc = None;
    let mut ingest_sink = None;
    if let (Some(grpc_listener), Some(http_listener)) = (grpc_listener, http_listener) {
        let sink: Arc<dyn SpanWriter> = if cfg.kafka.enabled {
            let producer = crate::kafka::producer::KafkaSink::connect(&cfg.kafka).await?;
            StageHandle::new(Some(&root), "kafka", "kafka_producer").register(None);
            Arc::new(producer)
        } else {
            tiers.durable.clone()
        };
        ingest_sink = Some(sink.clone());
        let intake = Intake::start_counting(&cfg, sink, Some(&root), metrics_hub.as_deref())
            .with_tls(tls.clone());
        let workers = cfg.ingest.worker_count();
        grpc = Some(GrpcListener::start(
            grpc_listener,
            intake.clone(),
            workers,
            StageHandle::new(Some(&root), "ingest", "otlp_grpc"),
        )?);
        if let Some(l) = zipkin_listener {
            let zipkin = crate::ingest::zipkin::zipkin_server_on(l, intake.clone(), workers)?;
            servers.push(zipkin.handle());
            let stage = StageHandle::new(Some(&root), "ingest", "zipkin_http");
            watch_http(zipkin, stage, stopping.clone());
            tracing::info!(zipkin = %cfg.ingest.zipkin_addr, "Zipkin receiver listening");
        }
        let http = crate::ingest::http_server_on(http_listener, intake, workers)?;
        servers.push(http.handle());
        watch_http(
            http,
            StageHandle::new(Some(&root), "ingest", "otlp_http"),
            stopping.clone(),
        );
        tracing::info!(grpc = %cfg.ingest.grpc_addr, http = %cfg.ingest.http_addr, workers, "OTLP receivers listening");
    }

    crate::strategies::start(
        &cfg,
        strategies.clone(),
        &span_metrics,
        (sampling_http_listener, sampling_grpc_listener),
        tls.as_ref(),
        &mut servers,
        (&root, stopping.clone()),
    )?;

    let _self_tracing = start_self_tracing(&cfg, target, &tiers, ingest_sink);

    let query_tls = crate::security::ServerTls::for_listener(tls.as_ref(), "query_http");
    let query = match &tiers.reader {
        Some(reader) => {
            let state = web::Data::new(crate::query::QueryState {
                reader: reader.clone(),
                cfg: cfg.query.clone(),
                health: health.clone(),
                span_metrics: span_metrics.reader.clone(),
            });
            let export_reader = web::Data::new(reader.clone());
            let ui_links = web::Data::new(crate::ui::links::Links::compile(&cfg.ui)?);
            let sampling = web::Data::new(strategies.clone());
            let server = HttpServer::new(move || {
                crate::actors::name_thread("query-http");
                App::new()
                    .wrap_fn(crate::selftrace::http::traced)
                    .app_data(state.clone())
                    .app_data(export_reader.clone())
                    .app_data(ui_links.clone())
                    .app_data(sampling.clone())
                    .configure(crate::strategies::http::configure_query)
                    .configure(crate::query::configure)
                    .configure(crate::ui::configure)
                    .configure(crate::export::configure)
            });
            crate::security::listen!(server, query_listener, query_tls)?.run()
        }
        None => {
            // An ingest node has no query API, but orchestration and tests
            // still probe its health on query.addr.
            let h = web::Data::new(health.clone());
            let sampling = web::Data::new(strategies.clone());
            let server = HttpServer::new(move || {
                App::new()
                    .app_data(h.clone())
                    .app_data(sampling.clone())
                    .configure(crate::strategies::http::configure_query)
                    .configure(crate::query::health::configure)
            })
            .workers(1);
            crate::security::listen!(server, query_listener, query_tls)?.run()
        }
    };
    servers.push(query.handle());
    watch_http(
        query,
        StageHandle::new(Some(&root), "query", "query_http"),
        stopping.clone(),
    );
    tracing::info!(addr = %cfg.query.addr, "query service listening");

    if demo && ingests_here {
        actix_web::rt::spawn(crate::loadgen::demo::run(cfg.ingest.http_addr.clone()));
    }
    health.set_started(true);
    tracing::info!(target = ?target, "strand is ready");

    shutdown_signal().await;
    tracing::info!("shutting down");
    health.set_started(false);
    stopping_tx.send_replace(true);
    if let Some(g) = grpc {
        g.do_send(StopListener);
    }
    for s in servers {
        s.stop(true).await;
    }
    // The last counts of the receivers, now that no request is in flight.
    if let Err(e) = metrics_flusher.flush() {
        tracing::warn!("span metrics not flushed at shutdown: {e}");
    }
    drop(kafka_consumers);
    drop(extra_consumers);
    drop(metrics_consumer);
    actix::System::current().stop();
    Ok(())
}

/// Self-traces go to the endpoint when one is set, else into this
/// process: straight to the durable tiers where there are some (in Kafka
/// mode too, so self-spans never loop through the topic), to Kafka on an
/// ingest node; a query node with peers has nowhere local to put them.
fn start_self_tracing(
    cfg: &Config,
    target: Target,
    tiers: &crate::tiers::Tiers,
    ingest_sink: Option<Arc<dyn SpanWriter>>,
) -> Option<crate::selftrace::SelfTracing> {
    use crate::selftrace::Delivery;
    let st = &cfg.self_tracing;
    let to = if let Some(url) = st.traces_url() {
        Delivery::Http { url }
    } else {
        let sink = match target {
            Target::All | Target::Writer => Some(tiers.durable.clone()),
            Target::Ingest => ingest_sink,
            Target::Query => None,
        };
        let Some(sink) = sink else {
            if st.enabled {
                tracing::info!("self-tracing off: a query node needs self_tracing.endpoint");
            }
            return None;
        };
        Delivery::InProcess {
            processor: Arc::new(crate::pipeline::Processor::new(cfg)),
            sink,
        }
    };
    let role = format!("{target:?}").to_ascii_lowercase();
    crate::selftrace::start(st, &role, to)
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
