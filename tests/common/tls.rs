//! A certificate authority made in the test (rcgen), server and client
//! certificates it signs, and TLS clients that trust it: a raw rustls
//! handshake (to see which certificate a port serves), reqwest, tonic and
//! the OTel SDK's exporters.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};

pub struct TestCa {
    issuer: Issuer<'static, KeyPair>,
    pub pem: String,
}

/// A certificate and its key, as PEM text.
pub struct Pem {
    pub cert: String,
    pub key: String,
}

impl Pem {
    /// Writes `<name>.crt` and `<name>.key` under `dir` (by rename, as a
    /// certificate manager replaces files), returning their paths.
    pub fn write(&self, dir: &Path, name: &str) -> (PathBuf, PathBuf) {
        let (c, k) = (
            dir.join(format!("{name}.crt")),
            dir.join(format!("{name}.key")),
        );
        for (path, text) in [(&c, &self.cert), (&k, &self.key)] {
            let tmp = path.with_extension("tmp");
            std::fs::write(&tmp, text).unwrap();
            std::fs::rename(&tmp, path).unwrap();
        }
        (c, k)
    }

    /// The certificate's DER (what a TLS handshake shows).
    pub fn der(&self) -> Vec<u8> {
        use rustls_pki_types::pem::PemObject;
        rustls_pki_types::CertificateDer::from_pem_slice(self.cert.as_bytes())
            .unwrap()
            .to_vec()
    }
}

impl TestCa {
    pub fn new(name: &str) -> TestCa {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let cert = params.self_signed(&key).unwrap();
        TestCa {
            pem: cert.pem(),
            issuer: Issuer::new(params, key),
        }
    }

    fn sign(&self, cn: &str, sans: Vec<String>) -> Pem {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(sans).unwrap();
        params.distinguished_name.push(DnType::CommonName, cn);
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        Pem {
            cert: cert.pem(),
            key: key.serialize_pem(),
        }
    }

    /// A server certificate for `localhost` and 127.0.0.1.
    pub fn server(&self, cn: &str) -> Pem {
        self.sign(cn, vec!["localhost".into(), "127.0.0.1".into()])
    }

    /// A client certificate whose subject CN is `cn`.
    pub fn client(&self, cn: &str) -> Pem {
        self.sign(cn, vec![])
    }

    pub fn write(&self, dir: &Path) -> PathBuf {
        let p = dir.join("ca.crt");
        std::fs::write(&p, &self.pem).unwrap();
        p
    }

    fn roots(&self) -> rustls::RootCertStore {
        use rustls_pki_types::pem::PemObject;
        let mut roots = rustls::RootCertStore::empty();
        for c in rustls_pki_types::CertificateDer::pem_slice_iter(self.pem.as_bytes()) {
            roots.add(c.unwrap()).unwrap();
        }
        roots
    }

    /// A rustls client config trusting this CA, optionally presenting
    /// `identity`.
    pub fn client_config(&self, identity: Option<&Pem>) -> rustls::ClientConfig {
        use rustls_pki_types::pem::PemObject;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let b = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(self.roots());
        match identity {
            None => b.with_no_client_auth(),
            Some(id) => {
                let chain = rustls_pki_types::CertificateDer::pem_slice_iter(id.cert.as_bytes())
                    .map(|c| c.unwrap())
                    .collect();
                let key =
                    rustls_pki_types::PrivateKeyDer::from_pem_slice(id.key.as_bytes()).unwrap();
                b.with_client_auth_cert(chain, key).unwrap()
            }
        }
    }

    /// The leaf certificate (DER) `addr` serves to a new connection;
    /// `None` when the handshake fails.
    pub fn served_leaf(&self, addr: &str) -> Option<Vec<u8>> {
        let cfg = Arc::new(self.client_config(None));
        let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
        let mut conn = rustls::ClientConnection::new(cfg, name).ok()?;
        let mut tcp = std::net::TcpStream::connect(addr).ok()?;
        tcp.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
        while conn.is_handshaking() {
            conn.complete_io(&mut tcp).ok()?;
        }
        Some(conn.peer_certificates()?.first()?.to_vec())
    }

    /// reqwest 0.12 (strand's own) trusting this CA, for queries and raw
    /// OTLP/HTTP and Zipkin posts.
    pub fn reqwest(&self) -> reqwest::Client {
        reqwest::Client::builder()
            .use_preconfigured_tls(self.client_config(None))
            .pool_max_idle_per_host(0)
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap()
    }

    /// A tonic channel to `https://localhost:<port>` over TLS.
    pub async fn grpc_channel(
        &self,
        port: u16,
        identity: Option<&Pem>,
    ) -> tonic::transport::Channel {
        tonic::transport::Endpoint::from_shared(format!("https://localhost:{port}"))
            .unwrap()
            .tls_config(self.tonic_tls(identity))
            .unwrap()
            .connect()
            .await
            .expect("TLS gRPC connect")
    }

    pub fn tonic_tls(&self, identity: Option<&Pem>) -> tonic::transport::ClientTlsConfig {
        let mut t = tonic::transport::ClientTlsConfig::new()
            .ca_certificate(tonic::transport::Certificate::from_pem(&self.pem))
            .domain_name("localhost");
        if let Some(id) = identity {
            t = t.identity(tonic::transport::Identity::from_pem(&id.cert, &id.key));
        }
        t
    }

    /// The OTel SDK's gRPC exporter over TLS, with `headers` as metadata.
    pub fn grpc_exporter(
        &self,
        port: u16,
        identity: Option<&Pem>,
        headers: &[(&'static str, &str)],
    ) -> opentelemetry_otlp::SpanExporter {
        use opentelemetry_otlp::{WithExportConfig, WithTonicConfig};
        let mut md = tonic::metadata::MetadataMap::new();
        for (k, v) in headers {
            md.insert(*k, v.parse().unwrap());
        }
        opentelemetry_otlp::SpanExporter::builder()
            .with_tonic()
            .with_endpoint(format!("https://localhost:{port}"))
            .with_tls_config(self.tonic_tls(identity))
            .with_metadata(md)
            .with_timeout(Duration::from_secs(10))
            .build()
            .expect("TLS gRPC exporter")
    }

    /// The OTel SDK's HTTP/protobuf exporter over TLS (its reqwest 0.13
    /// client, trusting this CA), with `headers`.
    pub fn http_exporter(
        &self,
        port: u16,
        headers: &[(&str, &str)],
    ) -> opentelemetry_otlp::SpanExporter {
        use opentelemetry_otlp::{Protocol, WithExportConfig, WithHttpConfig};
        super::otel::ensure_crypto_provider();
        let client = reqwest013::Client::builder()
            .tls_backend_preconfigured(self.client_config(None))
            .build()
            .unwrap();
        let headers = headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_http_client(client)
            .with_protocol(Protocol::HttpBinary)
            .with_endpoint(format!("https://localhost:{port}/v1/traces"))
            .with_headers(headers)
            .with_timeout(Duration::from_secs(10))
            .build()
            .expect("TLS HTTP exporter")
    }
}
