//! Stages that own a listening socket. Every listener is bound at start-up
//! ([`bind`]), so a port that is taken fails `strand serve` with the
//! address and the config key named, before anything reports ready.
//!
//! - [`GrpcListener`]: an actor that owns the OTLP/gRPC thread and its
//!   tokio runtime (`ingest.workers` threads, `grpc-N`). If the server
//!   ends with an error it is reported to the tree and served again on the
//!   same socket after the stage's backoff; a group restart
//!   (`RestartStage`) drains it and serves again the same way.
//! - [`watch_http`]: an actix-web server (OTLP/HTTP, query, health) as a
//!   stage: its end before shutdown is reported as a failure.

use std::net::TcpListener;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use actix::prelude::*;
use tokio::sync::watch;

use super::tree::{RestartStage, StageHandle};
use crate::backoff::Backoff;
use crate::error::{Error, Result};
use crate::ingest::Intake;

/// Binds `addr` (the value of config key `key`), naming both on failure.
pub fn bind(key: &str, addr: &str) -> Result<TcpListener> {
    let at: std::net::SocketAddr = addr
        .parse()
        .map_err(|e| Error::config(key, format!("{addr:?}: {e}")))?;
    TcpListener::bind(at).map_err(|e| Error::config(key, format!("cannot listen on {addr}: {e}")))
}

/// What the serving thread is asked to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Ask {
    Serve,
    /// Drain and serve again (generation number, so repeats are seen).
    Restart(u64),
    Stop,
}

/// The OTLP/gRPC server stage.
pub struct GrpcListener {
    ask: watch::Sender<Ask>,
    restarts: u64,
    stage: StageHandle,
    thread: Option<JoinHandle<()>>,
}

impl GrpcListener {
    /// Starts serving `listener` on a thread of its own. Call inside an
    /// actix System; the returned actor stops the server when it stops.
    pub fn start(
        listener: TcpListener,
        intake: Intake,
        workers: usize,
        stage: StageHandle,
    ) -> Result<Addr<GrpcListener>> {
        listener.set_nonblocking(true)?;
        let (ask, rx) = watch::channel(Ask::Serve);
        let s = stage.clone();
        let thread = std::thread::Builder::new()
            .name("otlp-grpc".into())
            .spawn(move || serve_loop(listener, intake, workers.max(1), rx, s))?;
        let addr = GrpcListener {
            ask,
            restarts: 0,
            stage: stage.clone(),
            thread: Some(thread),
        }
        .start();
        stage.register(Some(addr.clone().recipient()));
        Ok(addr)
    }
}

impl Actor for GrpcListener {
    type Context = Context<Self>;

    fn stopped(&mut self, _: &mut Context<Self>) {
        self.ask.send_replace(Ask::Stop);
        if let Some(t) = self.thread.take() {
            // The server drains its connections; do not wait on it here.
            drop(t);
        }
    }
}

/// Command: stop serving (shutdown).
#[derive(Message)]
#[rtype(result = "()")]
pub struct StopListener;

impl Handler<StopListener> for GrpcListener {
    type Result = ();

    fn handle(&mut self, _: StopListener, ctx: &mut Context<Self>) {
        ctx.stop();
    }
}

impl Handler<RestartStage> for GrpcListener {
    type Result = ();

    fn handle(&mut self, _: RestartStage, _: &mut Context<Self>) {
        self.restarts += 1;
        self.stage.restarting();
        self.ask.send_replace(Ask::Restart(self.restarts));
    }
}

fn serve_loop(
    listener: TcpListener,
    intake: Intake,
    workers: usize,
    mut ask: watch::Receiver<Ask>,
    stage: StageHandle,
) {
    let n = Arc::new(AtomicUsize::new(0));
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .thread_name_fn(move || format!("grpc-{}", n.fetch_add(1, Ordering::Relaxed)))
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return stage.failed(&format!("cannot start the gRPC runtime: {e}")),
    };
    let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(10));
    loop {
        let seen = *ask.borrow_and_update();
        if seen == Ask::Stop {
            break;
        }
        let served = listener.try_clone().map_err(Error::from).and_then(|l| {
            rt.block_on(async {
                let l = tokio::net::TcpListener::from_std(l)?;
                stage.up();
                let mut rx = ask.clone();
                // Any new ask (restart or stop) drains this server.
                let shutdown = async move {
                    let _ = rx.changed().await;
                };
                crate::ingest::serve_grpc_on(l, intake.clone(), shutdown).await
            })
        });
        let now = *ask.borrow();
        if now == Ask::Stop {
            break;
        }
        let e = match served {
            Ok(()) if now != seen => {
                // Restarted with its group: not a failure of its own.
                tracing::info!("OTLP/gRPC server serving again after a group restart");
                continue;
            }
            Ok(()) => Error::Unavailable("the gRPC server ended".into()),
            Err(e) => e,
        };
        let delay = backoff.next_delay();
        tracing::error!(error = %e, ?delay, "OTLP/gRPC server failed; serving again");
        stage.failed(&e);
        std::thread::sleep(delay);
    }
    stage.stopped();
}

/// Runs an actix-web server as a stage: its end before `stopping` is set
/// is a failure the tree hears of (actix-web servers end only when
/// stopped, so this is a fault, never routine).
pub fn watch_http(
    server: actix_web::dev::Server,
    stage: StageHandle,
    stopping: watch::Receiver<bool>,
) {
    stage.register(None);
    stage.up();
    actix_web::rt::spawn(async move {
        let r = server.await;
        if *stopping.borrow() {
            stage.stopped();
            return;
        }
        let why = match r {
            Ok(()) => "server ended".to_string(),
            Err(e) => e.to_string(),
        };
        tracing::error!(stage = %stage.name, error = %why, "HTTP server ended unexpectedly");
        stage.failed(&why);
    });
}
