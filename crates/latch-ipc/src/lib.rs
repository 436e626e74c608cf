//! latch-ipc: the local-socket transport of latch.
//!
//! One job: carry typed messages between `latchd` and its local clients over a local
//! socket (a Unix domain socket; a named pipe on Windows), and let nothing through that
//! has not proved it holds the daemon's session token. It owns:
//!
//! - the latch home and its files ([`home`]): `latch.sock`, `session-token`, `latchd.lock`,
//!   and the checks on the directory's owner and mode;
//! - the session-token file ([`token`]): 32 random bytes, written 0600 through a temp file
//!   and renamed into place, regenerated at every start, removed at shutdown;
//! - framing ([`frame`]): a 4-byte big-endian length, then a postcard payload; 256 bytes
//!   at most before authentication, 1 MiB after;
//! - the mutual handshake ([`handshake`]): `Hello` → `Challenge` (the daemon proves it holds
//!   the token) → `Auth` (the client proves it) → `AuthResult`, all under one deadline;
//! - the peer-credential check ([`peer`]) made on accept, before a byte is read;
//! - limits: a pre-authentication connection cap separate from the authenticated one;
//!   after the handshake, an outbound budget in bytes per connection (a peer that does
//!   not read its answers is closed after the stall deadline) and a deadline for a
//!   started frame to complete (none between frames);
//! - the authenticated connection types ([`server`], [`client`]) and event fan-out
//!   ([`broadcast`]).
//!
//! It must not know anything about latch's auth models, requests or events: every message
//! type is a type parameter (`Serialize + DeserializeOwned`), supplied by `latch-protocol`,
//! and the protocol version is a number the caller passes in. It holds no business logic
//! and has no switch that turns authentication off.
//!
//! Type-state: an unauthenticated connection never leaves this crate. The only connection
//! types a caller ever holds ([`server::Connection`], [`client::ClientConnection`]) are
//! built after a successful handshake, and only they can send, receive or subscribe to a
//! [`broadcast::Broadcaster`].
//!
//! # Example
//!
//! ```no_run
//! use latch_ipc::{broadcast::Broadcaster, client, server::{Server, ServerConfig}};
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Serialize, Deserialize)]
//! struct Ping(u64);
//! #[derive(Serialize, Deserialize)]
//! struct Pong(u64);
//! #[derive(Clone, Serialize, Deserialize)]
//! struct Event(String);
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! // The daemon: bind in its home, accept authenticated connections, answer them.
//! let mut server: Server<Ping, Pong, Event> =
//!     Server::bind(ServerConfig::new("/home/me/.latch", 1)).await?;
//! let events = Broadcaster::<Event>::new(1024);
//! tokio::spawn(async move {
//!     while let Some(conn) = server.accept().await {
//!         let events = events.clone();
//!         tokio::spawn(async move {
//!             let (mut requests, replies) = conn.into_split();
//!             replies.subscribe(&events).await.ok();
//!             while let Ok(Some(Ping(n))) = requests.recv().await {
//!                 if replies.send(&Pong(n)).await.is_err() {
//!                     break;
//!                 }
//!             }
//!         });
//!     }
//! });
//!
//! // A client: socket and token from LATCH_SOCKET / LATCH_TOKEN_FILE / LATCH_HOME.
//! let config = client::ClientConfig::from_env(1)?;
//! let mut conn = client::connect::<Ping, Pong, Event>(&config).await?;
//! conn.send(&Ping(7)).await?;
//! if let Some(latch_ipc::ServerFrame::Response(Pong(n))) = conn.recv().await? {
//!     assert_eq!(n, 7);
//! }
//! # Ok(())
//! # }
//! ```

pub mod broadcast;
pub mod client;
mod conn;
pub mod frame;
pub mod handshake;
pub mod home;
mod limit;
pub mod peer;
pub mod server;
mod slots;
pub mod token;

pub use conn::{FRAME_OVERHEAD, FrameReceiver, Raw, SendError, ServerFrame, frame_cost};
