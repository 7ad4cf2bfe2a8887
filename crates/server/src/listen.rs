//! The accept loop every listener runs: optional TLS, HTTP/1 and HTTP/2 on one port, a header read
//! timeout, and graceful shutdown.
//!
//! `axum::serve` has no header read timeout and no TLS, and a slow-loris client (one header byte
//! every few seconds) can hold a connection, a file descriptor and a task for ever; hyper's own
//! connection builder bounds the time to read a request head, so the loop is written here on
//! hyper-util. TLS comes from rustls (TorchServe's `private_key_file` / `certificate_file`) with
//! ALPN offering `h2` so gRPC clients can use it too.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::{TlsAcceptor, rustls};
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;
use tracing::{debug, warn};

/// HTTPS: a PEM certificate chain, its private key, and the listeners that use them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsConfig {
    /// Certificate chain, PEM (`certificate_file`).
    pub certificate_file: PathBuf,
    /// Private key, PEM: PKCS#8, PKCS#1 or SEC1 (`private_key_file`).
    pub private_key_file: PathBuf,
    /// Which listeners speak TLS.
    pub listeners: TlsListeners,
}

/// Which listeners speak TLS. TorchServe decides it per listener: an `https://` address, and
/// `enable_grpc_ssl` for the two gRPC ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(clippy::struct_excessive_bools)] // one switch per listener, as the settings name them
pub struct TlsListeners {
    /// The inference API.
    pub inference: bool,
    /// The management API.
    pub management: bool,
    /// The metrics API.
    pub metrics: bool,
    /// Both gRPC APIs.
    pub grpc: bool,
}

impl TlsListeners {
    /// Every listener.
    pub const ALL: Self = Self { inference: true, management: true, metrics: true, grpc: true };
}

impl TlsConfig {
    /// Reads the files and builds the acceptor.
    ///
    /// # Errors
    /// When a file cannot be read, holds no certificate or key, or the key does not match.
    pub(crate) fn server_config(&self) -> std::io::Result<Arc<rustls::ServerConfig>> {
        let bad = |path: &Path, what: String| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("TLS: {}: {what}", path.display()),
            )
        };
        let certs: Vec<CertificateDer<'static>> =
            CertificateDer::pem_file_iter(&self.certificate_file)
                .map_err(|e| bad(&self.certificate_file, e.to_string()))?
                .collect::<Result<_, _>>()
                .map_err(|e| bad(&self.certificate_file, e.to_string()))?;
        if certs.is_empty() {
            return Err(bad(&self.certificate_file, "no PEM certificate in the file".into()));
        }
        let key = PrivateKeyDer::from_pem_file(&self.private_key_file)
            .map_err(|e| bad(&self.private_key_file, e.to_string()))?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| bad(&self.certificate_file, e.to_string()))?
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .map_err(|e| bad(&self.private_key_file, key_error(&e)))?;
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }
}

/// Why a key was refused, in words that name the cause: a key that does not match the certificate,
/// or one the TLS library cannot sign with (RSA under 2048 bits, such as old test keys).
fn key_error(e: &rustls::Error) -> String {
    match e {
        rustls::Error::InconsistentKeys(_) => format!("does not fit the certificate: {e}"),
        _ => format!(
            "cannot be used ({e}): oxserve takes RSA keys of 2048 to 8192 bits, ECDSA P-256/P-384 \
             and Ed25519; a shorter RSA key is refused as too weak, make a new one \
             (`openssl req -x509 -newkey rsa:2048 ...`)"
        ),
    }
}

/// Per-connection limits.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ConnLimits {
    /// Time to read one request head (HTTP/1); also bounds the TLS handshake.
    pub(crate) header_read_timeout: Duration,
}

/// Accepts connections until `token` is cancelled, then waits for the open ones to finish their
/// requests (the caller bounds that wait with the drain time).
pub(crate) async fn serve(
    listener: TcpListener,
    router: Router,
    tls: Option<Arc<rustls::ServerConfig>>,
    limits: ConnLimits,
    token: CancellationToken,
) -> std::io::Result<()> {
    let tls = tls.map(TlsAcceptor::from);
    let graceful = GracefulShutdown::new();
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_buf_size(64 * 1024);
    builder.http2().timer(TokioTimer::new()).max_concurrent_streams(256);
    let builder = Arc::new(builder);
    loop {
        let (tcp, remote) = tokio::select! {
            () = token.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    warn!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        // Small answers go out at once instead of waiting on Nagle's algorithm for the peer's
        // delayed ACK (tens of milliseconds on HTTP/2 and keep-alive connections).
        let _ = tcp.set_nodelay(true);
        let router = router.clone();
        let builder = Arc::clone(&builder);
        let watcher = graceful.watcher();
        let tls = tls.clone();
        tokio::spawn(async move {
            match tls {
                None => connection(tcp, remote, router, &builder, watcher).await,
                Some(acceptor) => {
                    let handshake = acceptor.accept(tcp);
                    match tokio::time::timeout(limits.header_read_timeout, handshake).await {
                        Ok(Ok(stream)) => {
                            connection(stream, remote, router, &builder, watcher).await
                        }
                        Ok(Err(e)) => debug!(%remote, "TLS handshake failed: {e}"),
                        Err(_) => debug!(%remote, "TLS handshake timed out"),
                    }
                }
            }
        });
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}

async fn connection<S>(
    stream: S,
    remote: SocketAddr,
    router: Router,
    builder: &Builder<TokioExecutor>,
    watcher: hyper_util::server::graceful::Watcher,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
        request.extensions_mut().insert(ConnectInfo(remote));
        router.clone().oneshot(request)
    });
    let conn = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
    if let Err(e) = watcher.watch(conn.into_owned()).await {
        debug!(%remote, "connection ended: {e}");
    }
}
