//! latch-http: the HTTP door of latch — Home Assistant's HTTP auth API and a sign-in
//! page, served in front of latchd.
//!
//! One job: let apps written for Home Assistant's auth API sign in against latch over
//! HTTP, unchanged. It serves `GET /auth/providers`, `/auth/login_flow` (and
//! `/{flow_id}`), `POST /auth/token` (`authorization_code`, `refresh_token`,
//! `action=revoke`), `POST /auth/revoke`, `GET /.well-known/oauth-authorization-server`
//! with Home Assistant 2024.3's paths, status codes, JSON fields and error strings, the
//! IndieAuth client-id and redirect-URI rules ([`indieauth`]), and `/auth/authorize`, a
//! sign-in page of its own. Every answer a client can see from Home Assistant is compared
//! with Home Assistant's own in `tests/fixtures/` by the end-to-end tests.
//!
//! It also puts other web apps behind latch (forward-auth): `GET /auth/verify` answers
//! nginx `auth_request`, Traefik `forwardAuth` and Caddy `forward_auth` by the access
//! rules of the configuration ([`access`]), from a browser session (`/auth/signin`,
//! `/auth/signout`: a refresh token behind an `HttpOnly` cookie) or a bearer token, out of
//! an in-memory cache that follows latchd's events.
//!
//! It holds **no auth logic and no auth data**: it is a `latch-client` tool. latchd runs
//! the login flows, keeps the authorization codes, mints and revokes the tokens; this
//! crate turns HTTP into protocol requests and answers back, passing the client's real
//! address ([`forwarded`]: the TCP peer, or `X-Forwarded-For` from a trusted proxy)
//! with every login, refresh and validation. What it owns is HTTP: parsing and limits
//! (body and head size, deadlines, connections, login flows per address), the network
//! fetch of IndieAuth discovery, TLS, the pages, the access rules and the verify cache
//! (who a presented credential is, never the credential itself). It must not depend on latch crates
//! above `latch-client` and `latch-protocol` (and `latch-models`' address rules).
//!
//! # Example
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use latch_client::{Client, ClientOptions};
//! use latch_http::{HttpConfig, HttpServer};
//!
//! let client = Client::new_lazy(ClientOptions::for_home("/var/lib/latch"))?;
//! let server = HttpServer::bind(HttpConfig::default(), client).await?;
//! println!("serving on http://{}", server.local_addr());
//! server.serve(async { let _ = tokio::signal::ctrl_c().await; }).await;
//! # Ok(()) }
//! ```

pub mod access;
mod answers;
pub mod config;
mod daemon;
mod fetch;
mod flows;
pub mod forwarded;
mod ha_json;
pub mod indieauth;
mod limits;
mod routes;
mod server;
mod state;
mod tls;
mod verify;

pub use config::{ConfigError, HttpConfig};
pub use limits::FLOW_TTL;
pub use server::{HttpServer, ServeError, check_tls};
