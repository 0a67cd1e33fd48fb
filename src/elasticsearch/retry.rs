//! Retry classification of the Elasticsearch sink, decided once: transport
//! failures, 429 and 5xx are "try again later" (the data is kept and the
//! caller backs off); other 4xx are the request's fault. For `_bulk`, a
//! whole request failing for configuration reasons (auth, missing index)
//! is retried too, but a single item refused with a 4xx is dead-lettered.

use crate::error::{Error, Result};

/// Maps a client error: transport failures (refused, timeout) are
/// `Unavailable`, so callers retry.
pub(crate) fn client_error(what: &str, e: elasticsearch::Error) -> Error {
    Error::Unavailable(format!("elasticsearch {what}: {e}"))
}

/// Turns a non-2xx response into an error: 429/5xx are retryable, other 4xx
/// are the request's fault.
pub(crate) async fn check_status(
    what: &str,
    resp: elasticsearch::http::response::Response,
) -> Result<elasticsearch::http::response::Response> {
    let status = resp.status_code();
    if status.is_success() {
        return Ok(resp);
    }
    let body = resp.text().await.unwrap_or_default();
    let body: String = body.chars().take(2_000).collect();
    let msg = format!("elasticsearch {what}: HTTP {}: {body}", status.as_u16());
    Err(if status.as_u16() == 429 || status.is_server_error() {
        Error::Unavailable(msg)
    } else if status.as_u16() == 404 {
        Error::NotFound(msg)
    } else {
        Error::InvalidArgument(msg)
    })
}

/// Whether a whole-request status means "try again later" rather than
/// "this request is wrong". Auth and not-found point at configuration, not
/// at the data, so the data is kept.
pub(crate) fn request_retryable(status: u16) -> bool {
    matches!(status, 401 | 403 | 404 | 408 | 429) || status >= 500
}

/// Whether one `_bulk` item may succeed if sent again.
pub(crate) fn item_retryable(status: u16) -> bool {
    status == 429 || status >= 500
}
