//! latch-client: the async client library of `latchd`.
//!
//! One job: let a local program talk to the latch daemon — find its socket and session
//! token, connect and run the mutual handshake, send typed requests (one method per
//! protocol request, each returning its own payload type), subscribe to events, and
//! reconnect when the daemon restarts (re-reading the rotated token file).
//!
//! It holds no auth logic and makes no decision of its own: every answer comes from the
//! daemon. It must not depend on anything above `latch-ipc` (transport) and
//! `latch-protocol` (the message types, re-exported as [`protocol`]); it never prints,
//! and never logs a secret (tokens and passwords travel as
//! [`Sensitive`](protocol::Sensitive)).
//!
//! - [`Client`] is `Clone + Send + Sync`: clones share one connection, on which requests
//!   from many tasks are pipelined; a reader task hands each answer to its caller by
//!   request id.
//! - [`ClientError`] tells "the daemon is not running" ([`ClientError::NotRunning`])
//!   from "our token file is missing or stale" ([`ClientError::TokenMissing`],
//!   [`ClientError::AuthRefused`], [`ClientError::ServerImpostor`]) from "the daemon
//!   said no" ([`ClientError::Api`]), and maps each to a command-line exit code
//!   ([`ClientError::exit_code`]).
//! - [`Client::subscribe`] yields a bounded [`Subscription`] stream of [`ClientEvent`]s
//!   that survives reconnects.
//! - Listings that can outgrow one frame (users, tokens, lockouts) are read a page at a
//!   time through a [`Pager`] ([`Client::users`], [`Client::tokens`],
//!   [`Client::lockouts`]); `list_*` collect every page. A user is found directly by id
//!   or username ([`Client::get_user`], [`Client::get_user_by_username`]).
//!
//! # Example
//!
//! Validate the access token a web request carries:
//!
//! ```no_run
//! # async fn handle(bearer: &str) -> Result<(), latch_client::ClientError> {
//! let client = latch_client::Client::connect().await?;
//! match client.validate_token(bearer).await {
//!     Ok(valid) => tracing::info!(user = %valid.user.id, "token accepted"),
//!     Err(e) => tracing::warn!(error = %e, "token refused"),
//! }
//! # Ok(())
//! # }
//! ```

mod api;
mod client;
mod error;
mod events;
mod http_api;
mod options;
mod pager;

pub use api::{NewUser, UserUpdate};
pub use client::Client;
pub use error::{ClientError, START_HINT, TOKEN_HINT, api_exit_code, exit};
pub use events::{ClientEvent, Subscription};
pub use http_api::CodeFlowStart;
pub use latch_protocol as protocol;
pub use options::{
    ClientOptions, DEFAULT_CONNECT_TIMEOUT, DEFAULT_EVENT_BUFFER, DEFAULT_REQUEST_TIMEOUT,
    ReconnectPolicy,
};
pub use pager::{Paged, Pager};
