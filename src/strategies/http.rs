//! `GET /sampling?service=NAME` (the sampling port, as Jaeger's :5778)
//! and `GET /api/sampling?service=NAME` (the query port): the strategy
//! for one service as the proto JSON mapping.

use std::sync::Arc;

use actix_web::{web, HttpResponse};
use serde::Deserialize;

use super::store::Store;
use crate::error::Error;

#[derive(Deserialize)]
pub struct Params {
    #[serde(default)]
    service: String,
}

async fn strategy(
    store: web::Data<Arc<Store>>,
    q: Result<web::Query<Params>, actix_web::Error>,
) -> Result<HttpResponse, Error> {
    let q = q.map_err(|e| Error::InvalidArgument(format!("bad query string: {e}")))?;
    if q.service.trim().is_empty() {
        return Err(Error::InvalidArgument(
            "'service' parameter must be provided (GET /sampling?service=NAME)".into(),
        ));
    }
    Ok(HttpResponse::Ok().json(store.response(&q.service)))
}

/// The routes of the sampling port (`/sampling`, and `/` as Jaeger's
/// agents also answered there).
pub fn configure_port(cfg: &mut web::ServiceConfig) {
    cfg.route("/sampling", web::get().to(strategy))
        .route("/", web::get().to(strategy));
}

/// The route on the query port.
pub fn configure_query(cfg: &mut web::ServiceConfig) {
    cfg.route("/api/sampling", web::get().to(strategy));
}

/// The sampling port's server (one worker: answers are small and cached
/// by the SDKs between polls).
pub fn server_on(
    listener: std::net::TcpListener,
    store: Arc<Store>,
    tls: Option<crate::security::ServerTls>,
) -> std::io::Result<actix_web::dev::Server> {
    let data = web::Data::new(store);
    let server = actix_web::HttpServer::new(move || {
        crate::actors::name_thread("sampling-http");
        actix_web::App::new()
            .app_data(data.clone())
            .configure(configure_port)
    })
    .workers(1);
    Ok(crate::security::listen!(server, listener, tls)?.run())
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test;

    #[actix_rt::test]
    async fn answers_per_service_and_refuses_a_missing_service() {
        let cfg = crate::config::SamplingConfig {
            ratio: 0.25,
            ..Default::default()
        };
        let store = Store::build(&cfg, None, None).unwrap();
        let app = test::init_service(
            actix_web::App::new()
                .app_data(web::Data::new(store))
                .configure(configure_port)
                .configure(configure_query),
        )
        .await;
        for path in ["/sampling?service=a", "/api/sampling?service=a"] {
            let req = test::TestRequest::get().uri(path).to_request();
            let v: serde_json::Value = test::call_and_read_body_json(&app, req).await;
            assert_eq!(v["strategyType"], "PROBABILISTIC", "{path}");
            assert_eq!(v["probabilisticSampling"]["samplingRate"], 0.25, "{path}");
        }
        for path in [
            "/sampling",
            "/sampling?service=",
            "/api/sampling?service=%20",
        ] {
            let req = test::TestRequest::get().uri(path).to_request();
            let resp = test::call_service(&app, req).await;
            assert_eq!(resp.status(), 400, "{path}");
            let body = test::read_body(resp).await;
            assert!(
                String::from_utf8_lossy(&body).contains("'service' parameter"),
                "{path}"
            );
        }
    }
}
