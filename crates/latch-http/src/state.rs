//! What every request handler shares, and the middleware that finds the client's real
//! address before any handler runs.

use std::net::SocketAddr;
use std::ops::Deref;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::Response;

use crate::access::AccessRules;
use crate::answers;
use crate::config::HttpConfig;
use crate::daemon::Daemon;
use crate::fetch::Discovery;
use crate::forwarded::{self, ProxyRules};
use crate::limits::{FLOW_TTL, FlowLimiter};
use crate::verify::VerifyCache;

/// latch-http's own OAuth client id when no `public_url` is set.
pub(crate) const DEFAULT_CLIENT_ID: &str = "http://localhost/latch-http/";

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
    /// Forward-auth's access rules.
    pub(crate) access: AccessRules,
    /// Forward-auth's verify cache.
    pub(crate) verify: Arc<VerifyCache>,
    /// The key of the forms' CSRF tokens, drawn at start.
    pub(crate) csrf_key: [u8; 32],
    /// The session cookie is `Secure`.
    pub(crate) cookie_secure: bool,
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
        let client_id = config.public_url.as_deref().map_or_else(
            || DEFAULT_CLIENT_ID.to_owned(),
            |u| format!("{}/", u.trim_end_matches('/')),
        );
        let mut csrf_key = [0_u8; 32];
        rand::fill(&mut csrf_key);
        Self(Arc::new(Shared {
            rules: config.proxy_rules(),
            flows: FlowLimiter::new(config.max_login_flows_per_address, FLOW_TTL),
            access: config.access_rules(),
            verify: Arc::new(VerifyCache::new(client_id)),
            csrf_key,
            cookie_secure: cookie_secure(&config),
            config,
            daemon,
            discovery,
        }))
    }
}

/// Whether the session cookie is `Secure`: always, unless the configuration says
/// explicitly that browsers reach latch-http over plain http on this machine only
/// (`public_url` is `http://` on a loopback host, no cookie domain other than
/// `localhost`, and latch-http listens on loopback).
pub(crate) fn cookie_secure(config: &HttpConfig) -> bool {
    let local_public = config
        .public_url
        .as_deref()
        .and_then(|u| url::Url::parse(u).ok())
        .is_some_and(|u| {
            u.scheme() == "http"
                && match u.host() {
                    Some(url::Host::Domain(d)) => d == "localhost",
                    Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
                    Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
                    None => false,
                }
        });
    let local_domain = config
        .cookie_domain
        .as_deref()
        .is_none_or(|d| d == "localhost");
    !(local_public && local_domain && config.listen.ip().is_loopback())
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_own_client_id_is_one_latchd_accepts() {
        assert!(crate::indieauth::verify_client_id(DEFAULT_CLIENT_ID));
    }

    #[test]
    fn cookies_are_secure_unless_explicitly_local_http() {
        let mut config = HttpConfig::default();
        assert!(cookie_secure(&config), "no public_url: secure");
        config.public_url = Some("http://127.0.0.1:8080".into());
        assert!(!cookie_secure(&config));
        config.cookie_domain = Some("home.example".into());
        assert!(cookie_secure(&config));
        config.cookie_domain = None;
        config.listen = "0.0.0.0:8123".parse().unwrap();
        assert!(cookie_secure(&config));
        config.listen = "127.0.0.1:8123".parse().unwrap();
        config.public_url = Some("https://localhost".into());
        assert!(cookie_secure(&config));
        config.public_url = Some("http://auth.home.example".into());
        assert!(cookie_secure(&config));
    }
}
