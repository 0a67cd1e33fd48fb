//! gRPC `jaeger.api_v2.SamplingManager/GetSamplingStrategy` (Jaeger's
//! :5779 in strand's default), answering from the same store as HTTP.

use std::sync::Arc;

use tokio::sync::watch;

use super::model::{Response, StrategyType};
use super::store::Store;
use crate::actors::tree::StageHandle;
use crate::error::{Error, Result};

/// The generated messages and service of proto/jaeger/api_v2/sampling.proto.
pub mod proto {
    tonic::include_proto!("jaeger.api_v2");
}

use proto::sampling_manager_server::{SamplingManager, SamplingManagerServer};

pub struct Service {
    store: Arc<Store>,
}

#[tonic::async_trait]
impl SamplingManager for Service {
    async fn get_sampling_strategy(
        &self,
        req: tonic::Request<proto::SamplingStrategyParameters>,
    ) -> std::result::Result<tonic::Response<proto::SamplingStrategyResponse>, tonic::Status> {
        let service = req.into_inner().service_name;
        if service.trim().is_empty() {
            return Err(Error::InvalidArgument("serviceName must be provided".into()).into());
        }
        Ok(tonic::Response::new(to_proto(
            &self.store.response(&service),
        )))
    }
}

pub fn to_proto(r: &Response) -> proto::SamplingStrategyResponse {
    let p = |rate| proto::ProbabilisticSamplingStrategy {
        sampling_rate: rate,
    };
    proto::SamplingStrategyResponse {
        strategy_type: match r.strategy_type {
            StrategyType::Probabilistic => proto::SamplingStrategyType::Probabilistic,
            StrategyType::RateLimiting => proto::SamplingStrategyType::RateLimiting,
        } as i32,
        probabilistic_sampling: r.probabilistic_sampling.map(|s| p(s.sampling_rate)),
        rate_limiting_sampling: r.rate_limiting_sampling.map(|s| {
            proto::RateLimitingSamplingStrategy {
                max_traces_per_second: s.max_traces_per_second,
            }
        }),
        operation_sampling: r.operation_sampling.as_ref().map(|o| {
            proto::PerOperationSamplingStrategies {
                default_sampling_probability: o.default_sampling_probability,
                default_lower_bound_traces_per_second: o.default_lower_bound_traces_per_second,
                per_operation_strategies: o
                    .per_operation_strategies
                    .iter()
                    .map(|s| proto::OperationSamplingStrategy {
                        operation: s.operation.clone(),
                        probabilistic_sampling: Some(p(s.probabilistic_sampling.sampling_rate)),
                    })
                    .collect(),
                default_upper_bound_traces_per_second: o.default_upper_bound_traces_per_second,
            }
        }),
    }
}

/// Serves on `listener` until `stopping` turns true; an end before that
/// is reported to the tree as the stage's failure.
pub fn serve(
    listener: std::net::TcpListener,
    store: Arc<Store>,
    tls: Option<crate::security::ServerTls>,
    stage: StageHandle,
    mut stopping: watch::Receiver<bool>,
) -> Result<()> {
    listener.set_nonblocking(true)?;
    stage.register(None);
    actix_web::rt::spawn(async move {
        let served = async {
            let l = tokio::net::TcpListener::from_std(listener)?;
            stage.up();
            let mut rx = stopping.clone();
            let shutdown = async move {
                let _ = rx.wait_for(|s| *s).await;
            };
            let router = tonic::transport::Server::builder()
                .add_service(SamplingManagerServer::new(Service { store }));
            match tls {
                Some(t) => {
                    let incoming = crate::security::conn::tls_incoming(l, t.acceptor_h2());
                    router
                        .serve_with_incoming_shutdown(incoming, shutdown)
                        .await
                }
                None => {
                    let incoming =
                        tonic::transport::server::TcpIncoming::from(l).with_nodelay(Some(true));
                    router
                        .serve_with_incoming_shutdown(incoming, shutdown)
                        .await
                }
            }
            .map_err(|e| Error::Unavailable(format!("sampling gRPC server: {e}")))
        }
        .await;
        if *stopping.borrow_and_update() {
            stage.stopped();
            return;
        }
        let why = match served {
            Ok(()) => "server ended".to_string(),
            Err(e) => e.to_string(),
        };
        tracing::error!(error = %why, "sampling gRPC server ended unexpectedly");
        stage.failed(&why);
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn answers_over_grpc_with_the_proto_types() {
        let cfg = crate::config::SamplingConfig {
            ratio: 0.125,
            ..Default::default()
        };
        let svc = Service {
            store: Store::build(&cfg, None, None).unwrap(),
        };
        let r = svc
            .get_sampling_strategy(tonic::Request::new(proto::SamplingStrategyParameters {
                service_name: "a".into(),
            }))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(
            r.strategy_type,
            proto::SamplingStrategyType::Probabilistic as i32
        );
        assert_eq!(r.probabilistic_sampling.unwrap().sampling_rate, 0.125);
        let e = svc
            .get_sampling_strategy(tonic::Request::new(Default::default()))
            .await
            .unwrap_err();
        assert_eq!(e.code(), tonic::Code::InvalidArgument);
    }
}
