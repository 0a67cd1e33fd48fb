//! Server-side TLS for every listener, one helper for actix-web and tonic.
//!
//! [`ServerTls::load`] reads `[tls]` at start-up and refuses what cannot
//! work (a missing or unreadable file, no certificate or key in it, a key
//! that does not match the certificate, a CA bundle without a CA), naming
//! the key. Afterwards [`ReloadingCert`] serves the files' current
//! contents: at most once a second, a handshake stats both files and
//! re-reads them when their mtime, size or inode changed, so replacing
//! the files rotates the certificate for new connections without a
//! restart. A replacement that does not load (half-written, mismatched)
//! is logged and the previous certificate stays in service.
//!
//! TLS 1.2 is the minimum (rustls has no older versions); the crypto
//! provider is ring, passed explicitly so another provider linked in by a
//! dependency can never change it.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use parking_lot::Mutex;
use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use super::config::TlsConfig;
use crate::error::{Error, Result};

/// How often a handshake may look at the files' metadata.
const CHECK_EVERY: Duration = Duration::from_secs(1);

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// TLS for the listeners: cheap to clone, shared by all of them so one
/// rotation reaches every port.
#[derive(Clone)]
pub struct ServerTls {
    base: Arc<rustls::ServerConfig>,
    cfg: TlsConfig,
}

impl std::fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerTls")
            .field("cert_file", &self.cfg.cert_file)
            .finish()
    }
}

impl ServerTls {
    /// `None` when `[tls]` is off (plaintext everywhere).
    pub fn load(cfg: &TlsConfig) -> Result<Option<ServerTls>> {
        cfg.validate()?;
        if !cfg.enabled() {
            return Ok(None);
        }
        let resolver = ReloadingCert::new(&cfg.cert_file, &cfg.key_file)?;
        let builder = rustls::ServerConfig::builder_with_provider(provider())
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .map_err(|e| Error::config("tls", e.to_string()))?;
        let builder = if cfg.client_ca_file.as_os_str().is_empty() {
            builder.with_no_client_auth()
        } else {
            let roots = load_roots(&cfg.client_ca_file)?;
            // Optional at the TLS layer: a client may authenticate with an
            // API key instead; the ingest check decides (security::auth).
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
                .allow_unauthenticated()
                .build()
                .map_err(|e| Error::config("tls.client_ca_file", e.to_string()))?;
            builder.with_client_cert_verifier(verifier)
        };
        let base = builder.with_cert_resolver(Arc::new(resolver));
        Ok(Some(ServerTls {
            base: Arc::new(base),
            cfg: cfg.clone(),
        }))
    }

    /// This TLS for listener `name` unless `tls.plaintext_listeners` names it.
    pub fn for_listener(tls: Option<&ServerTls>, name: &str) -> Option<ServerTls> {
        tls.filter(|t| t.cfg.serves(name)).cloned()
    }

    /// A rustls config offering `alpn` (e.g. `[b"h2"]`).
    pub fn server_config(&self, alpn: &[&[u8]]) -> rustls::ServerConfig {
        let mut c = (*self.base).clone();
        c.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        c
    }

    /// For actix-web's `listen_rustls_0_23`, which adds the ALPN
    /// protocols it speaks itself (HTTP/1.1 in this build).
    pub fn http_config(&self) -> rustls::ServerConfig {
        self.server_config(&[])
    }

    /// For tonic (see `security::grpc`): HTTP/2 only.
    pub fn acceptor_h2(&self) -> tokio_rustls::TlsAcceptor {
        tokio_rustls::TlsAcceptor::from(Arc::new(self.server_config(&[b"h2"])))
    }
}

fn load_roots(path: &Path) -> Result<rustls::RootCertStore> {
    let key = "tls.client_ca_file";
    let certs = read_certs(path).map_err(|why| Error::config(key, why))?;
    let mut roots = rustls::RootCertStore::empty();
    let (added, _ignored) = roots.add_parsable_certificates(certs);
    if added == 0 {
        return Err(Error::config(
            key,
            format!("{}: no usable CA certificate", path.display()),
        ));
    }
    Ok(roots)
}

fn read_certs(path: &Path) -> std::result::Result<Vec<CertificateDer<'static>>, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let certs = CertificateDer::pem_slice_iter(&bytes)
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| format!("{}: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("{}: no PEM certificate in it", path.display()));
    }
    Ok(certs)
}

/// Reads and checks a certificate and key pair; errors name the key.
pub fn load_pair(cert: &Path, key: &Path) -> Result<CertifiedKey> {
    let chain = read_certs(cert).map_err(|why| Error::config("tls.cert_file", why))?;
    let bytes = std::fs::read(key)
        .map_err(|e| Error::config("tls.key_file", format!("{}: {e}", key.display())))?;
    let der = PrivateKeyDer::from_pem_slice(&bytes).map_err(|e| {
        Error::config(
            "tls.key_file",
            format!("{}: no PEM private key: {e}", key.display()),
        )
    })?;
    let signing = provider()
        .key_provider
        .load_private_key(der)
        .map_err(|e| Error::config("tls.key_file", format!("{}: {e}", key.display())))?;
    let ck = CertifiedKey::new(chain, signing);
    match ck.keys_match() {
        Ok(()) => Ok(ck),
        Err(e) => Err(Error::config(
            "tls.key_file",
            format!(
                "{} does not match the certificate in {}: {e}",
                key.display(),
                cert.display()
            ),
        )),
    }
}

/// What identifies a file's version cheaply.
type Stamp = Option<(SystemTime, u64, u64)>;

fn stamp(p: &Path) -> Stamp {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(p).ok()?;
    Some((m.modified().ok()?, m.len(), m.ino()))
}

struct Current {
    key: Arc<CertifiedKey>,
    stamps: (Stamp, Stamp),
    checked: Instant,
}

/// A `ResolvesServerCert` that follows the files (see the module comment).
pub struct ReloadingCert {
    cert: PathBuf,
    key: PathBuf,
    current: Mutex<Current>,
}

impl std::fmt::Debug for ReloadingCert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReloadingCert")
            .field("cert", &self.cert)
            .finish()
    }
}

impl ReloadingCert {
    pub fn new(cert: &Path, key: &Path) -> Result<ReloadingCert> {
        let stamps = (stamp(cert), stamp(key));
        let loaded = load_pair(cert, key)?;
        Ok(ReloadingCert {
            cert: cert.to_path_buf(),
            key: key.to_path_buf(),
            current: Mutex::new(Current {
                key: Arc::new(loaded),
                stamps,
                checked: Instant::now(),
            }),
        })
    }

    /// The certificate to serve now, re-read first if the files changed.
    pub fn current(&self) -> Arc<CertifiedKey> {
        let mut cur = self.current.lock();
        if cur.checked.elapsed() >= CHECK_EVERY {
            cur.checked = Instant::now();
            let stamps = (stamp(&self.cert), stamp(&self.key));
            if stamps != cur.stamps {
                // Remember the stamps even on failure: a broken file is
                // reported once, and retried when it changes again.
                cur.stamps = stamps;
                match load_pair(&self.cert, &self.key) {
                    Ok(k) => {
                        tracing::info!(cert = %self.cert.display(), "TLS certificate reloaded");
                        cur.key = Arc::new(k);
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "TLS certificate files changed but do not load; serving the previous certificate");
                    }
                }
            }
        }
        cur.key.clone()
    }
}

impl ResolvesServerCert for ReloadingCert {
    fn resolve(&self, _: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_pair(dir: &Path, name: &str, cn: &str) -> (PathBuf, PathBuf) {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(vec!["localhost".to_string()]).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, cn);
        let cert = params.self_signed(&key).unwrap();
        let (c, k) = (
            dir.join(format!("{name}.crt")),
            dir.join(format!("{name}.key")),
        );
        std::fs::write(&c, cert.pem()).unwrap();
        std::fs::write(&k, key.serialize_pem()).unwrap();
        (c, k)
    }

    fn cfg(cert: &Path, key: &Path) -> TlsConfig {
        TlsConfig {
            cert_file: cert.into(),
            key_file: key.into(),
            ..Default::default()
        }
    }

    #[test]
    fn bad_files_are_refused_naming_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let (c1, k1) = write_pair(dir.path(), "a", "a");
        let (_c2, k2) = write_pair(dir.path(), "b", "b");
        assert!(ServerTls::load(&cfg(&c1, &k1)).unwrap().is_some());
        assert!(ServerTls::load(&TlsConfig::default()).unwrap().is_none());
        let missing = dir.path().join("missing.pem");
        let e = ServerTls::load(&cfg(&missing, &k1))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("tls.cert_file") && e.contains("missing.pem"),
            "{e}"
        );
        let e = ServerTls::load(&cfg(&c1, &missing))
            .unwrap_err()
            .to_string();
        assert!(e.contains("tls.key_file"), "{e}");
        let e = ServerTls::load(&cfg(&c1, &k2)).unwrap_err().to_string();
        assert!(
            e.contains("tls.key_file") && e.contains("does not match"),
            "{e}"
        );
        let e = ServerTls::load(&cfg(&k1, &k1)).unwrap_err().to_string();
        assert!(
            e.contains("tls.cert_file") && e.contains("no PEM certificate"),
            "{e}"
        );
        let e = ServerTls::load(&cfg(&c1, &c1)).unwrap_err().to_string();
        assert!(e.contains("tls.key_file"), "{e}");
        let mut with_ca = cfg(&c1, &k1);
        with_ca.client_ca_file = k1.clone();
        let e = ServerTls::load(&with_ca).unwrap_err().to_string();
        assert!(e.contains("tls.client_ca_file"), "{e}");
    }

    #[test]
    fn replaced_files_are_served_and_a_broken_replacement_is_not() {
        let dir = tempfile::tempdir().unwrap();
        let (c, k) = write_pair(dir.path(), "live", "first");
        let r = ReloadingCert::new(&c, &k).unwrap();
        let first = r.current().cert[0].clone();
        // A half-written replacement: the old certificate stays.
        std::fs::write(&k, "-----BEGIN PRIVATE KEY-----\n").unwrap();
        r.current.lock().checked -= CHECK_EVERY;
        assert_eq!(r.current().cert[0], first);
        let (c2, k2) = write_pair(dir.path(), "next", "second");
        std::fs::rename(&c2, &c).unwrap();
        std::fs::rename(&k2, &k).unwrap();
        assert_eq!(r.current().cert[0], first, "not re-checked within a second");
        r.current.lock().checked -= CHECK_EVERY;
        let now = r.current().cert[0].clone();
        assert_ne!(now, first);
        assert_eq!(
            super::super::peer::certificate_names(now.as_ref())[0],
            "second"
        );
    }
}
