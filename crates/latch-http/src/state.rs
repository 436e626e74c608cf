//! What every request handler shares, and the middleware that finds the client's real
//! address before any handler runs.

use std::net::SocketAddr;
use std::ops::Deref;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::Response;

use crate::answers;
use crate::config::HttpConfig;
use crate::daemon::Daemon;
use crate::fetch::Discovery;
use crate::forwarded::{self, ProxyRules};
use crate::limits::{FLOW_TTL, FlowLimiter};

/// The TCP peer of a connection, put on each of its requests by the server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Peer(pub(crate) SocketAddr);

/// The shared state.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) config: HttpConfig,
    pub(crate) rules: ProxyRules,
    pub(crate) daemon: Daemon,
    pub(crate) discovery: Discovery,
    pub(crate) flows: FlowLimiter,
}

/// A handle on [`Shared`], cloned into every request.
#[derive(Debug, Clone)]
pub(crate) struct AppState(Arc<Shared>);

impl Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

impl AppState {
    pub(crate) fn new(config: HttpConfig, daemon: Daemon, discovery: Discovery) -> Self {
        Self(Arc::new(Shared {
            rules: config.proxy_rules(),
            flows: FlowLimiter::new(config.max_login_flows_per_address, FLOW_TTL),
            config,
            daemon,
            discovery,
        }))
    }
}

/// Finds the client's address (the peer, or `X-Forwarded-For` from a trusted proxy) and
/// puts a [`forwarded::ClientAddr`] on the request; refused forwarded headers are
/// logged and answered with aiohttp's plain 400, as Home Assistant answers them.
pub(crate) async fn client_addr(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Response {
    let Some(Peer(peer)) = request.extensions().get::<Peer>().copied() else {
        tracing::error!("a request without its connection's peer address");
        return answers::internal();
    };
    match forwarded::resolve(forwarded::peer_ip(peer), request.headers(), &state.rules) {
        Ok(client) => {
            request.extensions_mut().insert(client);
            next.run(request).await
        }
        Err(e) => {
            tracing::error!("{e}");
            answers::text_error(StatusCode::BAD_REQUEST)
        }
    }
}
