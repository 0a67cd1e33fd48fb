//! TLS connections into the servers, and who is on them.
//!
//! - tonic: [`tls_incoming`] turns a TCP listener into a stream of TLS
//!   connections (handshakes run concurrently, each bounded in time, so one
//!   slow client cannot hold up the others) for
//!   `serve_with_incoming_shutdown`; each carries [`TlsConnInfo`], which
//!   tonic puts into every request's extensions.
//! - actix-web: [`http_on_connect`] (for `HttpServer::on_connect`) stores
//!   the connection's [`PeerIdentity`] in its extensions, read back with
//!   `HttpRequest::conn_data`.

use std::any::Any;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio_stream::wrappers::ReceiverStream;

use super::peer::PeerIdentity;

/// A TLS handshake that takes longer than this is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// What tonic knows about a TLS connection (in request extensions).
#[derive(Clone, Debug)]
pub struct TlsConnInfo {
    pub remote: Option<SocketAddr>,
    pub peer: Arc<PeerIdentity>,
}

/// One accepted, handshaken TLS connection.
pub struct TlsConn {
    inner: tokio_rustls::server::TlsStream<TcpStream>,
    info: TlsConnInfo,
}

impl tonic::transport::server::Connected for TlsConn {
    type ConnectInfo = TlsConnInfo;

    fn connect_info(&self) -> TlsConnInfo {
        self.info.clone()
    }
}

impl AsyncRead for TlsConn {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for TlsConn {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// Accepts on `listener` and yields handshaken connections; the accept
/// task ends when the stream is dropped (the server stopped).
pub fn tls_incoming(
    listener: TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
) -> ReceiverStream<io::Result<TlsConn>> {
    let (tx, rx) = tokio::sync::mpsc::channel(64);
    tokio::spawn(async move {
        loop {
            let accepted = tokio::select! {
                a = listener.accept() => a,
                _ = tx.closed() => return,
            };
            let (tcp, remote) = match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of descriptors and the like: brief pause, go on.
                    tracing::warn!(error = %e, "TLS listener accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            // See ingest::grpc: small reply frames would wait for Nagle.
            let _ = tcp.set_nodelay(true);
            let (acceptor, tx) = (acceptor.clone(), tx.clone());
            tokio::spawn(async move {
                match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                    Ok(Ok(tls)) => {
                        let peer = PeerIdentity::from_chain(tls.get_ref().1.peer_certificates());
                        let info = TlsConnInfo {
                            remote: Some(remote),
                            peer: Arc::new(peer),
                        };
                        let _ = tx.send(Ok(TlsConn { inner: tls, info })).await;
                    }
                    Ok(Err(e)) => tracing::debug!(%remote, error = %e, "TLS handshake failed"),
                    Err(_) => tracing::debug!(%remote, "TLS handshake timed out"),
                }
            });
        }
    });
    ReceiverStream::new(rx)
}

/// For `HttpServer::on_connect`: the client certificate's names, if any.
pub fn http_on_connect(conn: &dyn Any, ext: &mut actix_web::dev::Extensions) {
    type Tls = actix_tls::accept::rustls_0_23::TlsStream<actix_web::rt::net::TcpStream>;
    if let Some(tls) = conn.downcast_ref::<Tls>() {
        let peer = PeerIdentity::from_chain(tls.get_ref().1.peer_certificates());
        ext.insert(Arc::new(peer));
    }
}

/// The peer identity actix-web recorded for this request's connection.
pub fn http_peer(req: &actix_web::HttpRequest) -> Option<Arc<PeerIdentity>> {
    req.conn_data::<Arc<PeerIdentity>>().cloned()
}
