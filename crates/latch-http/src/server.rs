//! The listener and the connection loop: HTTP/1.1 with keep-alive (hyper), TLS when
//! configured (rustls), a cap on connections served at once, a deadline for each
//! request's head (which also ends idle keep-alive connections), a cap on its size, and
//! a graceful stop.

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::Request;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;
use tower::ServiceExt as _;

use crate::config::HttpConfig;
use crate::daemon::Daemon;
use crate::fetch::Discovery;
use crate::routes;
use crate::state::{AppState, Peer};
use crate::tls;

/// How long running requests may take to finish once a stop is asked for.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Why the server cannot start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServeError {
    /// The listen address cannot be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// The TLS certificate or key cannot be used.
    #[error("cannot use the TLS files {}: {reason}", path.display())]
    Tls {
        /// The file at fault.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The HTTP client for IndieAuth discovery cannot be built.
    #[error("cannot build the client for redirect_uri discovery: {0}")]
    Discovery(String),
}

/// latch-http, bound to its address and ready to serve.
pub struct HttpServer {
    listener: TcpListener,
    local_addr: SocketAddr,
    tls: Option<tokio_rustls::TlsAcceptor>,
    app: Router,
    config: HttpConfig,
    state: AppState,
}

impl std::fmt::Debug for HttpServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpServer")
            .field("local_addr", &self.local_addr)
            .field("tls", &self.tls.is_some())
            .finish_non_exhaustive()
    }
}

/// Loads the TLS certificate and key the configuration names, if any, as a start
/// would (`--check-config` uses it).
///
/// # Errors
/// [`ServeError::Tls`] naming the file at fault.
pub fn check_tls(config: &HttpConfig) -> Result<(), ServeError> {
    match (&config.ssl_certificate, &config.ssl_key) {
        (Some(cert), Some(key)) => tls::acceptor(cert, key).map(drop),
        _ => Ok(()),
    }
}

impl HttpServer {
    /// Binds `config.listen` and prepares TLS; `client` reaches latchd (it may be
    /// created lazily: latch-http starts and answers 503 while latchd is away).
    ///
    /// # Errors
    /// [`ServeError`].
    pub async fn bind(
        config: HttpConfig,
        client: latch_client::Client,
    ) -> Result<Self, ServeError> {
        let tls = match (&config.ssl_certificate, &config.ssl_key) {
            (Some(cert), Some(key)) => Some(tls::acceptor(cert, key)?),
            _ => None,
        };
        let discovery = Discovery::new(config.discovery_timeout(), config.discovery_max_bytes)
            .map_err(|e| ServeError::Discovery(e.to_string()))?;
        let listener =
            TcpListener::bind(config.listen)
                .await
                .map_err(|source| ServeError::Bind {
                    addr: config.listen,
                    source,
                })?;
        let local_addr = listener.local_addr().map_err(|source| ServeError::Bind {
            addr: config.listen,
            source,
        })?;
        let state = AppState::new(config.clone(), Daemon::new(client), discovery);
        Ok(Self {
            listener,
            local_addr,
            tls,
            app: routes::router(state.clone()),
            config,
            state,
        })
    }

    /// The bound address (the port, when `listen` asked for port 0).
    #[must_use]
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// True when serving HTTPS.
    #[must_use]
    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// Serves until `shutdown` completes, then stops accepting, lets requests in flight
    /// finish (at most 10 s) and returns.
    pub async fn serve(self, shutdown: impl Future<Output = ()>) {
        let Self {
            listener,
            tls,
            app,
            config,
            state,
            ..
        } = self;
        // Forward-auth's cache follows latchd's events while the server runs.
        let follower = tokio::spawn(crate::verify::follow(
            std::sync::Arc::clone(&state.verify),
            state.daemon.client().clone(),
        ));
        let permits = Arc::new(Semaphore::new(config.max_connections));
        let (stop_tx, stop_rx) = watch::channel(false);
        let mut connections = JoinSet::new();
        tokio::pin!(shutdown);
        loop {
            let permit = tokio::select! {
                () = &mut shutdown => break,
                permit = Arc::clone(&permits).acquire_owned() => match permit {
                    Ok(permit) => permit,
                    Err(_) => break,
                },
            };
            let accepted = tokio::select! {
                () = &mut shutdown => break,
                accepted = listener.accept() => accepted,
            };
            let (stream, peer) = match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    // EMFILE and friends: wait a moment rather than spin.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let _ = stream.set_nodelay(true);
            let app = app.clone();
            let tls = tls.clone();
            let stop = stop_rx.clone();
            let config = config.clone();
            connections.spawn(async move {
                serve_connection(stream, peer, tls, app, &config, stop).await;
                drop(permit);
            });
            // Reap finished connection tasks as we go.
            while connections.try_join_next().is_some() {}
        }
        drop(listener);
        let _ = stop_tx.send(true);
        let drained = tokio::time::timeout(SHUTDOWN_GRACE, async {
            while connections.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            tracing::warn!("requests still running after the grace period were cut off");
            connections.abort_all();
        }
        follower.abort();
    }
}

async fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    tls: Option<tokio_rustls::TlsAcceptor>,
    app: Router,
    config: &HttpConfig,
    stop: watch::Receiver<bool>,
) {
    match tls {
        None => serve_io(stream, peer, app, config, stop).await,
        Some(acceptor) => {
            match tokio::time::timeout(config.header_timeout(), acceptor.accept(stream)).await {
                Ok(Ok(stream)) => serve_io(stream, peer, app, config, stop).await,
                Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
            }
        }
    }
}

async fn serve_io<S>(
    stream: S,
    peer: SocketAddr,
    app: Router,
    config: &HttpConfig,
    mut stop: watch::Receiver<bool>,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = app.map_request(move |mut request: Request<Incoming>| {
        request.extensions_mut().insert(Peer(peer));
        request
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(config.header_timeout())
        .max_buf_size(config.max_header_bytes.max(8192))
        .keep_alive(true);
    let connection =
        builder.serve_connection(TokioIo::new(stream), TowerToHyperService::new(service));
    tokio::pin!(connection);
    let stopped = async move {
        // The borrow of the value ends here, before anything else waits.
        let _ = stop.wait_for(|stopping| *stopping).await.map(|_| ());
    };
    tokio::select! {
        result = connection.as_mut() => {
            if let Err(e) = result {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
        }
        () = stopped => {
            connection.as_mut().graceful_shutdown();
            let _ = connection.await;
        }
    }
}
