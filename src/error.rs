//! The one error type. Each variant is mapped once, here, to a gRPC code and
//! an HTTP status; whether a client should retry follows from the mapping.

use actix_web::http::StatusCode as HttpStatus;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The request itself is wrong; retrying it will not help.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    #[error("not found: {0}")]
    NotFound(String),
    /// Missing or wrong credentials (ingest API key).
    #[error("unauthenticated: {0}")]
    Unauthenticated(String),
    #[error("payload too large: {0}")]
    TooLarge(String),
    /// Temporarily over capacity (queues or in-flight bytes full): retry later.
    #[error("overloaded: {0}")]
    Overloaded(String),
    /// A dependency (disk, Kafka, Elasticsearch) cannot take data now: retry later.
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// Stored data failed its checksum or framing; it is never served.
    #[error("corrupt data: {0}")]
    Corrupt(String),
    #[error("configuration: {key}: {message}")]
    Config { key: String, message: String },
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    #[error("internal: {0}")]
    Internal(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn config(key: impl Into<String>, message: impl Into<String>) -> Self {
        Error::Config {
            key: key.into(),
            message: message.into(),
        }
    }

    pub fn grpc_code(&self) -> tonic::Code {
        match self {
            Error::InvalidArgument(_) | Error::Config { .. } => tonic::Code::InvalidArgument,
            Error::NotFound(_) => tonic::Code::NotFound,
            Error::Unauthenticated(_) => tonic::Code::Unauthenticated,
            // OTLP: an oversize request is not retryable.
            Error::TooLarge(_) => tonic::Code::InvalidArgument,
            Error::Overloaded(_) => tonic::Code::ResourceExhausted,
            Error::Unavailable(_) | Error::Io(_) => tonic::Code::Unavailable,
            Error::Corrupt(_) => tonic::Code::DataLoss,
            Error::Internal(_) => tonic::Code::Internal,
        }
    }

    pub fn http_status(&self) -> HttpStatus {
        match self {
            Error::InvalidArgument(_) | Error::Config { .. } => HttpStatus::BAD_REQUEST,
            Error::NotFound(_) => HttpStatus::NOT_FOUND,
            Error::Unauthenticated(_) => HttpStatus::UNAUTHORIZED,
            Error::TooLarge(_) => HttpStatus::PAYLOAD_TOO_LARGE,
            Error::Overloaded(_) => HttpStatus::TOO_MANY_REQUESTS,
            Error::Unavailable(_) | Error::Io(_) => HttpStatus::SERVICE_UNAVAILABLE,
            Error::Corrupt(_) | Error::Internal(_) => HttpStatus::INTERNAL_SERVER_ERROR,
        }
    }

    /// Whether the client should retry (and be sent a Retry-After).
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            Error::Overloaded(_) | Error::Unavailable(_) | Error::Io(_)
        )
    }
}

/// Seconds a client is told to wait before retrying a retryable error.
pub const RETRY_AFTER_SECS: u64 = 1;

impl Error {
    /// How long a client should wait before retrying, or `None` when a
    /// retry cannot help. The one place retry hints are decided: every API
    /// (OTLP gRPC and HTTP, Jaeger, api_v3, Tempo, health) asks here.
    pub fn retry_after(&self) -> Option<std::time::Duration> {
        self.is_retryable()
            .then(|| std::time::Duration::from_secs(RETRY_AFTER_SECS))
    }

    /// Adds `Retry-After` to an HTTP response when a retry can help.
    pub fn add_retry_after(&self, resp: &mut actix_web::HttpResponse) {
        if let Some(d) = self.retry_after() {
            resp.headers_mut().insert(
                actix_web::http::header::RETRY_AFTER,
                actix_web::http::header::HeaderValue::from(d.as_secs()),
            );
        }
    }

    /// An HTTP response with this error's status, `body` and retry hint.
    pub fn http_response(&self, content_type: &str, body: Vec<u8>) -> actix_web::HttpResponse {
        let mut resp = actix_web::HttpResponse::build(self.http_status())
            .content_type(content_type)
            .body(body);
        self.add_retry_after(&mut resp);
        resp
    }
}

/// Retryable errors carry a `google.rpc.RetryInfo` detail, without which
/// OTLP exporters do not retry RESOURCE_EXHAUSTED.
impl From<Error> for tonic::Status {
    fn from(e: Error) -> Self {
        use tonic_types::{ErrorDetails, StatusExt};
        let (code, msg) = (e.grpc_code(), e.to_string());
        match e.retry_after() {
            Some(d) => {
                tonic::Status::with_error_details(code, msg, ErrorDetails::with_retry_info(Some(d)))
            }
            None => tonic::Status::new(code, msg),
        }
    }
}

impl actix_web::ResponseError for Error {
    fn status_code(&self) -> HttpStatus {
        self.http_status()
    }

    fn error_response(&self) -> actix_web::HttpResponse {
        let status = self.http_status();
        // Jaeger's error envelope, understood by Jaeger UI and by OTLP/HTTP
        // clients (which only read the status code).
        let body = serde_json::json!({
            "data": null, "total": 0, "limit": 0, "offset": 0,
            "errors": [{ "code": status.as_u16(), "msg": self.to_string() }]
        });
        self.http_response("application/json", body.to_string().into_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retryable_errors_map_to_retryable_codes() {
        let e = Error::Overloaded("queue full".into());
        assert!(e.is_retryable());
        assert_eq!(e.grpc_code(), tonic::Code::ResourceExhausted);
        assert_eq!(e.http_status(), HttpStatus::TOO_MANY_REQUESTS);
        assert_eq!(e.retry_after(), Some(std::time::Duration::from_secs(1)));
        let status = tonic::Status::from(e);
        assert!(!status.details().is_empty(), "RetryInfo attached");
        let e = Error::InvalidArgument("bad".into());
        assert!(!e.is_retryable() && e.retry_after().is_none());
        assert_eq!(tonic::Status::from(e).code(), tonic::Code::InvalidArgument);
    }
}
