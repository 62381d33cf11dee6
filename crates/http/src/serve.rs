//! Serving: where to listen (loopback by default; anywhere else only over TLS or with
//! an explicit `insecure_http`), TLS from PEM files (rustls), and a graceful stop.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use crate::{AppState, Error, Result, router};

/// Where and how to listen.
#[derive(Clone, Debug)]
pub struct Listen {
    /// The address (default `127.0.0.1:8080`).
    pub addr: SocketAddr,
    /// TLS: a PEM certificate chain and its PEM private key.
    pub tls: Option<(PathBuf, PathBuf)>,
    /// Plain HTTP on an address that is not loopback (tokens cross the network in
    /// the clear): refused unless set.
    pub insecure_http: bool,
}

impl Default for Listen {
    fn default() -> Self {
        Listen {
            addr: SocketAddr::from(([127, 0, 0, 1], 8080)),
            tls: None,
            insecure_http: false,
        }
    }
}

impl Listen {
    /// Refuses plain HTTP off loopback unless asked for.
    pub fn check(&self) -> Result<()> {
        if !self.addr.ip().is_loopback() && self.tls.is_none() && !self.insecure_http {
            return Err(Error::Config(format!(
                "{} is not a loopback address: serve it over TLS (--tls-cert, --tls-key) or say --insecure-http (bearer tokens would cross the network in the clear)",
                self.addr
            )));
        }
        Ok(())
    }

    /// The TLS acceptor from the PEM files (none without TLS): read at once, so a bad
    /// certificate or key is refused before anything else starts.
    pub fn acceptor(&self) -> Result<Option<tokio_rustls::TlsAcceptor>> {
        let Some((cert, key)) = &self.tls else {
            return Ok(None);
        };
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};
        let bad = |what: &PathBuf, e: &dyn std::fmt::Display| {
            Error::Config(format!("TLS: {}: {e}", what.display()))
        };
        let certs = CertificateDer::pem_file_iter(cert)
            .map_err(|e| bad(cert, &e))?
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|e| bad(cert, &e))?;
        let key = PrivateKeyDer::from_pem_file(key).map_err(|e| bad(key, &e))?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| Error::Config(format!("TLS: {e}")))?
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .map_err(|e| Error::Config(format!("TLS: {e}")))?;
        Ok(Some(tokio_rustls::TlsAcceptor::from(Arc::new(config))))
    }
}

/// TLS connections on a TCP listener: each handshake runs in a task of its own
/// (bounded to 10 s), so a client that stalls one holds up nobody else.
struct TlsListener {
    ready: tokio::sync::mpsc::Receiver<(
        tokio_rustls::server::TlsStream<tokio::net::TcpStream>,
        SocketAddr,
    )>,
    local: SocketAddr,
}

impl TlsListener {
    fn new(tcp: tokio::net::TcpListener, acceptor: tokio_rustls::TlsAcceptor) -> Result<Self> {
        let local = tcp.local_addr()?;
        let (tx, ready) = tokio::sync::mpsc::channel(64);
        tokio::spawn(async move {
            let mut tcp = tcp;
            loop {
                let (stream, addr) = axum::serve::Listener::accept(&mut tcp).await;
                if tx.is_closed() {
                    return;
                }
                let (tx, acceptor) = (tx.clone(), acceptor.clone());
                tokio::spawn(async move {
                    let hs = tokio::time::timeout(
                        std::time::Duration::from_secs(10),
                        acceptor.accept(stream),
                    )
                    .await;
                    match hs {
                        Ok(Ok(tls)) => {
                            let _ = tx.send((tls, addr)).await;
                        }
                        Ok(Err(e)) => tracing::debug!(%addr, error = %e, "TLS handshake failed"),
                        Err(_) => tracing::debug!(%addr, "TLS handshake timed out"),
                    }
                });
            }
        });
        Ok(TlsListener { ready, local })
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = tokio_rustls::server::TlsStream<tokio::net::TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(c) => c,
            // the accepting task ended (it does not while the listener lives)
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.local)
    }
}

/// The file `bindspace serve` writes its base URL to, in the data directory, while it
/// runs (`bindspace status --data DIR` reads it).
pub const SERVE_URL_FILE: &str = "serve.url";

/// How long requests in flight get once a stop is asked for (a slow export client
/// does not keep the server up).
pub const DRAIN: std::time::Duration = std::time::Duration::from_secs(30);

/// Serves the API of `state` on `listener` until `stop` completes, then lets the
/// requests in flight finish (at most [`DRAIN`]); queued jobs do not start any more.
/// Call it on the engine's runtime.
pub async fn serve(
    state: AppState,
    listener: tokio::net::TcpListener,
    listen: &Listen,
    stop: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<()> {
    listen.check()?;
    let acceptor = listen.acceptor()?;
    let jobs = state.jobs.clone();
    let (stopped_tx, stopped_rx) = tokio::sync::watch::channel(false);
    let stop = async move {
        stop.await;
        jobs.close();
        let _ = stopped_tx.send(true);
    };
    let app = router(state);
    let served = async move {
        match acceptor {
            None => axum::serve(listener, app)
                .with_graceful_shutdown(stop)
                .await
                .map_err(Error::Io),
            Some(acceptor) => axum::serve(TlsListener::new(listener, acceptor)?, app)
                .with_graceful_shutdown(stop)
                .await
                .map_err(Error::Io),
        }
    };
    let mut stopped = stopped_rx;
    let deadline = async move {
        let _ = stopped.wait_for(|s| *s).await;
        tokio::time::sleep(DRAIN).await;
    };
    tokio::select! {
        r = served => r,
        () = deadline => {
            tracing::warn!("requests still in flight {DRAIN:?} after the stop: stopping anyway");
            Ok(())
        }
    }
}
