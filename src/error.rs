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

impl From<Error> for tonic::Status {
    fn from(e: Error) -> Self {
        tonic::Status::new(e.grpc_code(), e.to_string())
    }
}

impl actix_web::ResponseError for Error {
    fn status_code(&self) -> HttpStatus {
        self.http_status()
    }

    fn error_response(&self) -> actix_web::HttpResponse {
        let status = self.http_status();
        let mut resp = actix_web::HttpResponse::build(status);
        if self.is_retryable() {
            resp.insert_header(("Retry-After", RETRY_AFTER_SECS.to_string()));
        }
        // Jaeger's error envelope, understood by Jaeger UI and by OTLP/HTTP
        // clients (which only read the status code).
        resp.json(serde_json::json!({
            "data": null, "total": 0, "limit": 0, "offset": 0,
            "errors": [{ "code": status.as_u16(), "msg": self.to_string() }]
        }))
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
        let e = Error::InvalidArgument("bad".into());
        assert!(!e.is_retryable());
        assert_eq!(tonic::Status::from(e).code(), tonic::Code::InvalidArgument);
    }
}
