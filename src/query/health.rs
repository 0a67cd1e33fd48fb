//! Operational endpoints: Prometheus metrics, liveness, readiness and the
//! actor table.

use std::sync::atomic::Ordering;

use actix_web::{web, HttpResponse};

use super::QueryState;

pub async fn metrics() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(crate::metrics::render())
}

/// Alive as long as the process answers.
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().content_type("text/plain").body("ok")
}

/// Ready once startup (store recovery, listeners) has finished.
pub async fn readyz(state: web::Data<QueryState>) -> HttpResponse {
    if state.ready.load(Ordering::Acquire) {
        HttpResponse::Ok().content_type("text/plain").body("ready")
    } else {
        HttpResponse::ServiceUnavailable()
            .content_type("text/plain")
            .insert_header(("Retry-After", "1"))
            .body("not ready")
    }
}

pub async fn actors() -> HttpResponse {
    HttpResponse::Ok().json(crate::metrics::ActorStats::snapshot_json())
}
