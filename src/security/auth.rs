//! Ingest authentication: which `[[ingest.clients]]` entry a request
//! comes from, decided from its headers and its connection before the
//! body is read.
//!
//! A client is known by an API key (config holds only `sha256:<hex>` of
//! it) or by its client certificate's names (`mtls_subject`). API keys
//! are 256-bit random secrets (`strand auth new-key`), so one SHA-256 is
//! enough: a slow password hash guards low-entropy secrets against
//! guessing, and nobody can enumerate 2^256 keys; a fast hash keeps the
//! check off the ingest hot path's profile. The legacy `ingest.api_key`
//! (plain text in config) is the client named `default`.
//!
//! Each client may carry `spans_per_sec`: a token bucket holding one
//! second of spans, allowed to go into debt. A request is admitted while
//! the bucket is positive (before its body is read, when its span count
//! is not yet known) and charged its accepted spans afterwards, so the
//! long-run rate is the limit and a refused request cost nothing.

use std::sync::Arc;
use std::time::Instant;

use parking_lot::Mutex;

use super::peer::PeerIdentity;
use crate::config::IngestConfig;
use crate::error::{Error, Result};
use crate::metrics::Counter;

/// The name of the client the legacy `ingest.api_key` authenticates.
pub const LEGACY_CLIENT: &str = "default";

/// Longest Authorization / x-strand-api-key value looked at.
const MAX_CREDENTIAL_BYTES: usize = 4096;

/// An authenticated sender of spans. Later stages get its name.
pub struct Client {
    pub name: Arc<str>,
    key_hash: Option<[u8; 32]>,
    subject: String,
    limit: Option<Mutex<Bucket>>,
    spans: Counter,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client").field("name", &self.name).finish()
    }
}

struct Bucket {
    rate: f64,
    tokens: f64,
    at: Instant,
}

impl Bucket {
    fn refill(&mut self) {
        let now = Instant::now();
        let burst = self.rate.max(1.0);
        let dt = now.duration_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + dt * self.rate).min(burst);
        self.at = now;
    }
}

impl Client {
    fn new(name: &str, key_hash: Option<[u8; 32]>, subject: &str, rate: f64) -> Client {
        Client {
            name: name.into(),
            key_hash,
            subject: subject.to_string(),
            limit: (rate > 0.0).then(|| {
                Mutex::new(Bucket {
                    rate,
                    tokens: rate.max(1.0),
                    at: Instant::now(),
                })
            }),
            spans: Counter::new(
                "strand_ingest_client_spans_total",
                "spans accepted per authenticated ingest client",
                &[("client", name)],
            ),
        }
    }

    /// Refuses (retryably) while this client is over its span rate.
    pub fn admit(&self) -> Result<()> {
        let Some(b) = &self.limit else {
            return Ok(());
        };
        let mut b = b.lock();
        b.refill();
        if b.tokens > 0.0 {
            return Ok(());
        }
        Err(Error::Overloaded(format!(
            "ingest client {:?} is over its limit of {} spans/s; retry later",
            self.name, b.rate
        )))
    }

    /// Counts `spans` accepted from this client (and charges its limit).
    pub fn accepted(&self, spans: u64) {
        self.spans.add(spans);
        if let Some(b) = &self.limit {
            let mut b = b.lock();
            b.refill();
            b.tokens -= spans as f64;
        }
    }
}

/// The configured clients; `None` from [`Self::authenticate`] means
/// authentication is off (no clients, no legacy key).
pub struct Authenticator {
    clients: Vec<Arc<Client>>,
}

/// `sha256:<64 hex>` → the digest; the reason when it is not that.
pub fn parse_key_hash(s: &str) -> std::result::Result<[u8; 32], String> {
    let hex_part = s
        .strip_prefix("sha256:")
        .ok_or_else(|| "must be sha256:<64 hex digits> (strand auth new-key)".to_string())?;
    let bytes = hex::decode(hex_part).map_err(|e| format!("not hex: {e}"))?;
    bytes
        .try_into()
        .map_err(|_| "a SHA-256 digest is 64 hex digits".to_string())
}

pub fn sha256(key: &[u8]) -> [u8; 32] {
    let d = ring::digest::digest(&ring::digest::SHA256, key);
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

/// The config form of a key's hash.
pub fn key_hash_string(key: &str) -> String {
    format!("sha256:{}", hex::encode(sha256(key.as_bytes())))
}

impl Authenticator {
    /// From `ingest.clients` and the legacy `ingest.api_key`, as
    /// `config::validate_clients` accepted them. An entry whose hash does
    /// not parse (only reachable without validation) matches no key:
    /// closed, not open.
    pub fn new(cfg: &IngestConfig) -> Authenticator {
        let mut clients: Vec<Arc<Client>> = cfg
            .clients
            .iter()
            .map(|c| {
                let hash = parse_key_hash(&c.api_key_hash).ok();
                Arc::new(Client::new(&c.name, hash, &c.mtls_subject, c.spans_per_sec))
            })
            .collect();
        if !cfg.api_key.is_empty() {
            let hash = sha256(cfg.api_key.as_bytes());
            clients.push(Arc::new(Client::new(LEGACY_CLIENT, Some(hash), "", 0.0)));
        }
        Authenticator { clients }
    }

    pub fn enabled(&self) -> bool {
        !self.clients.is_empty()
    }

    /// The client a request comes from. A presented API key decides (a
    /// wrong or malformed one is refused even on a connection with a good
    /// certificate); without one, the client certificate's names do.
    pub fn authenticate(
        &self,
        authorization: Option<&[u8]>,
        api_key_header: Option<&[u8]>,
        peer: Option<&PeerIdentity>,
    ) -> Result<Option<Arc<Client>>> {
        if !self.enabled() {
            return Ok(None);
        }
        // x-strand-api-key first: an Authorization header a proxy adds
        // for itself must not hide it.
        let key = match (api_key_header, authorization) {
            (Some(k), _) => Some(header_key(k)?),
            (None, Some(a)) => Some(bearer(a)?),
            (None, None) => None,
        };
        if let Some(key) = key {
            let h = sha256(key);
            let found = self.clients.iter().fold(None, |found, c| {
                // Every entry is compared, so the time says nothing.
                let eq = c.key_hash.is_some_and(|k| constant_time_eq(&k, &h));
                if eq {
                    Some(c.clone())
                } else {
                    found
                }
            });
            return found
                .map(Some)
                .ok_or_else(|| Error::Unauthenticated("unknown API key".into()));
        }
        let names = peer.map(|p| &p.names[..]).unwrap_or_default();
        if names.is_empty() {
            return Err(Error::Unauthenticated(
                "missing credentials: send authorization: Bearer <key> or x-strand-api-key, or a client certificate".into(),
            ));
        }
        self.clients
            .iter()
            .find(|c| !c.subject.is_empty() && names.iter().any(|n| *n == c.subject))
            .cloned()
            .map(Some)
            .ok_or_else(|| {
                Error::Unauthenticated(format!(
                    "client certificate {:?} names no ingest client",
                    names.first().map(String::as_str).unwrap_or_default()
                ))
            })
    }
}

fn too_long(what: &str) -> Error {
    Error::Unauthenticated(format!(
        "{what} is longer than {MAX_CREDENTIAL_BYTES} bytes"
    ))
}

/// `Bearer <key>` (scheme case-insensitive); anything else is refused
/// with the reason.
fn bearer(value: &[u8]) -> Result<&[u8]> {
    if value.len() > MAX_CREDENTIAL_BYTES {
        return Err(too_long("authorization"));
    }
    let text = std::str::from_utf8(value)
        .map_err(|_| Error::Unauthenticated("authorization is not valid UTF-8".into()))?
        .trim();
    let (scheme, token) = text
        .split_once(' ')
        .ok_or_else(|| Error::Unauthenticated("authorization must be \"Bearer <key>\"".into()))?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(Error::Unauthenticated(format!(
            "authorization scheme {scheme:?} is not supported (Bearer is)"
        )));
    }
    let token = token.trim();
    if token.is_empty() || token.contains(char::is_whitespace) {
        return Err(Error::Unauthenticated(
            "authorization must be \"Bearer <key>\" with one key".into(),
        ));
    }
    Ok(token.as_bytes())
}

fn header_key(value: &[u8]) -> Result<&[u8]> {
    if value.len() > MAX_CREDENTIAL_BYTES {
        return Err(too_long("x-strand-api-key"));
    }
    let k = value.trim_ascii();
    if k.is_empty() {
        return Err(Error::Unauthenticated("x-strand-api-key is empty".into()));
    }
    Ok(k)
}

/// Comparison whose time does not depend on where the inputs differ.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::security::config::IngestClient;

    fn cfg(clients: Vec<IngestClient>, legacy: &str) -> IngestConfig {
        IngestConfig {
            clients,
            api_key: legacy.into(),
            ..Default::default()
        }
    }

    fn client(name: &str, key: &str, subject: &str, rate: f64) -> IngestClient {
        IngestClient {
            name: name.into(),
            api_key_hash: if key.is_empty() {
                String::new()
            } else {
                key_hash_string(key)
            },
            mtls_subject: subject.into(),
            spans_per_sec: rate,
        }
    }

    fn name(r: Result<Option<Arc<Client>>>) -> String {
        match r {
            Ok(Some(c)) => c.name.to_string(),
            Ok(None) => "<anonymous>".into(),
            Err(e) => format!("error: {e}"),
        }
    }

    #[test]
    fn off_without_clients_and_legacy_key_is_default() {
        let a = Authenticator::new(&cfg(vec![], ""));
        assert_eq!(name(a.authenticate(None, None, None)), "<anonymous>");
        let a = Authenticator::new(&cfg(vec![], "s3cret"));
        assert_eq!(
            name(a.authenticate(Some(b"Bearer s3cret"), None, None)),
            "default"
        );
        assert_eq!(name(a.authenticate(None, Some(b"s3cret"), None)), "default");
        assert!(name(a.authenticate(None, None, None)).contains("missing credentials"));
        let broken = IngestClient {
            api_key_hash: "sha256:zz".into(),
            ..client("c", "", "", 0.0)
        };
        let a = Authenticator::new(&cfg(vec![broken], ""));
        assert!(name(a.authenticate(None, Some(b"zz"), None)).contains("unknown API key"));
    }

    #[test]
    fn keys_and_certificates_name_clients() {
        let a = Authenticator::new(&cfg(
            vec![
                client("checkout", "key-one", "", 0.0),
                client("agent", "", "agent-1.example", 0.0),
            ],
            "",
        ));
        assert_eq!(
            name(a.authenticate(Some(b"bearer  key-one "), None, None)),
            "checkout"
        );
        assert!(name(a.authenticate(Some(b"Bearer nope"), None, None)).contains("unknown API key"));
        let cert = PeerIdentity {
            names: vec!["agent-1".into(), "agent-1.example".into()],
        };
        assert_eq!(name(a.authenticate(None, None, Some(&cert))), "agent");
        // A wrong key is refused even with a good certificate.
        assert!(name(a.authenticate(Some(b"Bearer nope"), None, Some(&cert))).contains("unknown"));
        let other = PeerIdentity {
            names: vec!["intruder".into()],
        };
        assert!(name(a.authenticate(None, None, Some(&other))).contains("\"intruder\" names no"));
    }

    #[test]
    fn malformed_authorization_is_a_clear_refusal() {
        let a = Authenticator::new(&cfg(vec![client("c", "k", "", 0.0)], ""));
        let long = vec![b'a'; MAX_CREDENTIAL_BYTES + 1];
        for (value, says) in [
            (&b"Basic azpr"[..], "scheme \"Basic\""),
            (b"Bearer", "must be \"Bearer <key>\""),
            (b"Bearer  ", "must be \"Bearer <key>\""),
            (b"Bearer a b", "with one key"),
            (b"\xff\xfe", "not valid UTF-8"),
            (b"", "must be"),
            (&long[..], "longer than"),
        ] {
            let got = name(a.authenticate(Some(value), None, None));
            assert!(
                got.starts_with("error: ") && got.contains(says),
                "{value:?}: {got}"
            );
        }
        assert!(name(a.authenticate(None, Some(b"  "), None)).contains("empty"));
    }

    #[test]
    fn hashes_parse_and_round_trip() {
        let h = key_hash_string("abc");
        assert_eq!(
            h,
            "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(parse_key_hash(&h).unwrap(), sha256(b"abc"));
        assert!(parse_key_hash("sha256:abcd").is_err());
        assert!(parse_key_hash("sha512:00").is_err());
    }

    #[test]
    fn rate_limit_refuses_while_in_debt_and_recovers() {
        let a = Authenticator::new(&cfg(vec![client("c", "k", "", 1000.0)], ""));
        let c = a.authenticate(None, Some(b"k"), None).unwrap().unwrap();
        c.admit().unwrap();
        c.accepted(1_200);
        let e = c.admit().unwrap_err();
        assert!(matches!(e, Error::Overloaded(_)) && e.to_string().contains("1000 spans/s"));
        // 200 spans of debt at 1000/s: positive again within a second.
        let deadline = Instant::now() + std::time::Duration::from_secs(5);
        while c.admit().is_err() {
            assert!(Instant::now() < deadline, "the bucket never refilled");
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        assert!(c.spans.get() >= 1_200);
    }
}
