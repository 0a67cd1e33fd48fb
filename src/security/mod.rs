//! Transport security and ingest authentication (docs/SECURITY.md).
//!
//! - `tls`: `ServerTls`, one rustls setup for every listener (actix-web
//!   and tonic), with certificate files followed for rotation.
//! - `conn`: TLS connections for tonic, and the client certificate's
//!   identity on both servers.
//! - `peer`: the names in a verified client certificate.
//! - `auth`: `[[ingest.clients]]`: API-key hashes, mTLS subjects,
//!   per-client span counts and rate limits.
//! - `keys`: `strand auth new-key` / `strand auth hash-key`.

pub mod auth;
pub mod config;
pub mod conn;
pub mod keys;
pub mod peer;
pub mod tls;

pub use auth::{Authenticator, Client};
pub use config::{IngestClient, TlsConfig};
pub use peer::PeerIdentity;
pub use tls::ServerTls;

/// `server.listen(listener)`, or with `Some(tls)` (a [`ServerTls`]) the
/// rustls listener, for any actix-web `HttpServer`; either way the
/// connection's client certificate is recorded for `conn::http_peer`.
/// Answers `io::Result<HttpServer>`. A macro because `HttpServer`'s
/// generic bounds name crates strand does not depend on directly.
macro_rules! listen {
    ($server:expr, $listener:expr, $tls:expr) => {{
        let server = $server.on_connect($crate::security::conn::http_on_connect);
        match $tls {
            Some(t) => server.listen_rustls_0_23($listener, t.http_config()),
            None => server.listen($listener),
        }
    }};
}
pub(crate) use listen;
