//! Operational endpoints: Prometheus metrics, liveness, readiness and the
//! supervision tree. An ingest-only node serves them too (`configure`).

use actix_web::{web, HttpResponse};

use super::QueryState;
use crate::actors::tree::Health;
use crate::error::Error;

pub async fn metrics() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(crate::metrics::render())
}

/// Alive as long as the process answers.
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().content_type("text/plain").body("ok")
}

/// Ready once start-up finished (store recovery, listeners bound) while no
/// supervision group is failed; otherwise 503 saying why.
pub fn readiness(health: &Health) -> HttpResponse {
    match health.ready() {
        Ok(()) => HttpResponse::Ok().content_type("text/plain").body("ready"),
        Err(why) => {
            let e = Error::Unavailable(format!("not ready: {why}"));
            e.http_response("text/plain", e.to_string().into_bytes())
        }
    }
}

pub async fn readyz(state: web::Data<QueryState>) -> HttpResponse {
    readiness(&state.health)
}

/// The supervision tree: groups with their state and stages, and every
/// actor's counters.
pub async fn actors(state: web::Data<QueryState>) -> HttpResponse {
    HttpResponse::Ok().json(state.health.snapshot_json())
}

/// /healthz, /readyz, /metrics and /api/admin/actors without a store (the
/// ingest role), over `web::Data<Health>`.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/healthz", web::get().to(healthz))
        .route("/metrics", web::get().to(metrics))
        .route(
            "/readyz",
            web::get().to(|h: web::Data<Health>| async move { readiness(&h) }),
        )
        .route(
            "/api/admin/actors",
            web::get().to(|h: web::Data<Health>| async move {
                HttpResponse::Ok().json(h.snapshot_json())
            }),
        );
}
