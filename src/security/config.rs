//! The `[tls]` section and the `[[ingest.clients]]` entries. Both are
//! checked twice: `validate` (pure, at config load) refuses shapes that
//! cannot work; `tls::ServerTls::load` and `auth::Authenticator::new`
//! (at start-up) refuse files and hashes that cannot work. Each error
//! names its config key.

use serde::{Deserialize, Serialize};
use std::path::PathBuf;

use crate::error::{Error, Result};

#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct TlsConfig {
    /// PEM certificate chain (leaf first). Empty: every listener speaks
    /// plaintext (the embedded quick start).
    pub cert_file: PathBuf,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1) matching `cert_file`.
    pub key_file: PathBuf,
    /// PEM CA bundle for client certificates (mTLS). Clients that present
    /// a certificate must chain to it; clients without one may still
    /// authenticate with an API key. Empty: client certificates are not
    /// asked for.
    pub client_ca_file: PathBuf,
    /// Listeners that stay plaintext although `cert_file` is set, by
    /// name: `otlp_grpc`, `otlp_http`, `zipkin_http`, `query_http`,
    /// `sampling_http`, `sampling_grpc`
    /// (e.g. the query port behind a TLS-terminating proxy).
    pub plaintext_listeners: Vec<String>,
}

/// Names accepted in `tls.plaintext_listeners` (the stage names).
pub const LISTENERS: &[&str] = &[
    "otlp_grpc",
    "otlp_http",
    "zipkin_http",
    "query_http",
    "sampling_http",
    "sampling_grpc",
];

impl TlsConfig {
    pub fn enabled(&self) -> bool {
        !self.cert_file.as_os_str().is_empty()
    }

    /// Whether listener `name` (one of [`LISTENERS`]) serves TLS.
    pub fn serves(&self, name: &str) -> bool {
        self.enabled() && !self.plaintext_listeners.iter().any(|l| l == name)
    }

    pub fn validate(&self) -> Result<()> {
        let cert = !self.cert_file.as_os_str().is_empty();
        let key = !self.key_file.as_os_str().is_empty();
        if cert && !key {
            return Err(Error::config("tls.key_file", "required with tls.cert_file"));
        }
        if key && !cert {
            return Err(Error::config("tls.cert_file", "required with tls.key_file"));
        }
        if !cert && !self.client_ca_file.as_os_str().is_empty() {
            return Err(Error::config(
                "tls.client_ca_file",
                "client certificates need TLS: set tls.cert_file and tls.key_file",
            ));
        }
        for l in &self.plaintext_listeners {
            if !LISTENERS.contains(&l.as_str()) {
                return Err(Error::config(
                    "tls.plaintext_listeners",
                    format!("unknown listener {l:?} (one of {})", LISTENERS.join(", ")),
                ));
            }
        }
        Ok(())
    }
}

/// One `[[ingest.clients]]` entry: a named sender of spans, known by the
/// hash of its API key, by its client certificate, or either.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct IngestClient {
    /// The name metrics and later stages know the client by.
    pub name: String,
    /// `sha256:<64 hex digits>` of the API key (`strand auth new-key`).
    pub api_key_hash: String,
    /// A client certificate whose subject CN, or one of whose DNS, URI or
    /// e-mail subject alternative names, equals this names the client
    /// (needs `tls.client_ca_file`).
    pub mtls_subject: String,
    /// Accepted spans per second for this client, on average; beyond it
    /// requests are refused with 429 / RESOURCE_EXHAUSTED (retryable).
    /// 0: no limit.
    pub spans_per_sec: f64,
}

/// Checks the clients' shapes (hash format, names, a way to
/// authenticate); `legacy_key` is `ingest.api_key`, the client `default`.
pub fn validate_clients(clients: &[IngestClient], legacy_key: &str, tls: &TlsConfig) -> Result<()> {
    let key = "ingest.clients";
    let legacy = crate::security::auth::LEGACY_CLIENT;
    if !legacy_key.is_empty() && clients.iter().any(|c| c.name == legacy) {
        return Err(Error::config(
            "ingest.api_key",
            format!("is the client named {legacy:?}, and ingest.clients has one already"),
        ));
    }
    let mut names = std::collections::HashSet::new();
    for c in clients {
        if c.name.is_empty() || c.name.len() > 128 || c.name.contains(char::is_control) {
            return Err(Error::config(
                format!("{key}.name"),
                format!("{:?}: must be 1..128 printable characters", c.name),
            ));
        }
        if !names.insert(c.name.as_str()) {
            return Err(Error::config(
                format!("{key}.name"),
                format!("{:?} is used twice", c.name),
            ));
        }
        if c.api_key_hash.is_empty() && c.mtls_subject.is_empty() {
            return Err(Error::config(
                key,
                format!("client {:?} needs api_key_hash or mtls_subject", c.name),
            ));
        }
        if !c.api_key_hash.is_empty() {
            crate::security::auth::parse_key_hash(&c.api_key_hash).map_err(|why| {
                Error::config(
                    format!("{key}.api_key_hash"),
                    format!("client {:?}: {why}", c.name),
                )
            })?;
        }
        if !c.mtls_subject.is_empty() && tls.client_ca_file.as_os_str().is_empty() {
            return Err(Error::config(
                format!("{key}.mtls_subject"),
                format!("client {:?}: needs tls.client_ca_file", c.name),
            ));
        }
        if !c.spans_per_sec.is_finite() || c.spans_per_sec < 0.0 {
            return Err(Error::config(
                format!("{key}.spans_per_sec"),
                format!("client {:?}: must be a non-negative number", c.name),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls_shapes_name_their_key() {
        let t = |cert: &str, key: &str, ca: &str| TlsConfig {
            cert_file: cert.into(),
            key_file: key.into(),
            client_ca_file: ca.into(),
            plaintext_listeners: vec![],
        };
        assert!(t("", "", "").validate().is_ok());
        assert!(t("c.pem", "k.pem", "ca.pem").validate().is_ok());
        let e = t("c.pem", "", "").validate().unwrap_err();
        assert!(e.to_string().contains("tls.key_file"), "{e}");
        let e = t("", "k.pem", "").validate().unwrap_err();
        assert!(e.to_string().contains("tls.cert_file"), "{e}");
        let e = t("", "", "ca.pem").validate().unwrap_err();
        assert!(e.to_string().contains("tls.client_ca_file"), "{e}");
        let mut p = t("c.pem", "k.pem", "");
        p.plaintext_listeners = vec!["query_http".into()];
        assert!(p.validate().is_ok());
        assert!(p.serves("otlp_grpc") && !p.serves("query_http"));
        p.plaintext_listeners = vec!["query".into()];
        let e = p.validate().unwrap_err();
        assert!(e.to_string().contains("tls.plaintext_listeners"), "{e}");
        assert!(!t("", "", "").serves("otlp_grpc"));
    }

    #[test]
    fn client_shapes_name_their_key() {
        let tls = TlsConfig::default();
        let c = |name: &str, hash: &str, subject: &str| IngestClient {
            name: name.into(),
            api_key_hash: hash.into(),
            mtls_subject: subject.into(),
            spans_per_sec: 0.0,
        };
        let good = format!("sha256:{}", "ab".repeat(32));
        assert!(validate_clients(&[c("a", &good, "")], "", &tls).is_ok());
        let e = validate_clients(&[c("a", "md5:00", "")], "", &tls).unwrap_err();
        assert!(e.to_string().contains("ingest.clients.api_key_hash"), "{e}");
        let e = validate_clients(&[c("a", "sha256:zz", "")], "", &tls).unwrap_err();
        assert!(e.to_string().contains("api_key_hash"), "{e}");
        let e = validate_clients(&[c("a", &good, ""), c("a", &good, "")], "", &tls).unwrap_err();
        assert!(e.to_string().contains("used twice"), "{e}");
        let e = validate_clients(&[c("", &good, "")], "", &tls).unwrap_err();
        assert!(e.to_string().contains("ingest.clients.name"), "{e}");
        let e = validate_clients(&[c("a", "", "")], "", &tls).unwrap_err();
        assert!(e.to_string().contains("needs api_key_hash"), "{e}");
        let e = validate_clients(&[c("a", "", "agent-1")], "", &tls).unwrap_err();
        assert!(e.to_string().contains("tls.client_ca_file"), "{e}");
        let e = validate_clients(&[c("default", &good, "")], "legacy", &tls).unwrap_err();
        assert!(e.to_string().contains("ingest.api_key"), "{e}");
        let mut limited = c("a", &good, "");
        limited.spans_per_sec = -1.0;
        let e = validate_clients(&[limited], "", &tls).unwrap_err();
        assert!(e.to_string().contains("spans_per_sec"), "{e}");
    }
}
