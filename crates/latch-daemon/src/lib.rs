//! latch-daemon: `latchd`, the latch daemon.
//!
//! One job: run latch's auth system behind its local socket. It reads the
//! configuration ([`config`]), finds the home and its files, wires the store
//! (`latch-store`), the AuthManager (`latch-auth`) and the socket (`latch-ipc`)
//! together, serves requests ([`handler`] maps each `latch_protocol::Request` onto an
//! AuthManager call and each result or error onto the protocol's answer), and stops
//! cleanly on SIGTERM or SIGINT. It holds **no auth logic** of its own: who may log in,
//! what a token proves and what a user may do are the AuthManager's decisions.
//!
//! - **Defaults.** With no configuration at all it serves Home Assistant's setup: the
//!   `homeassistant` password provider and the TOTP module. The home is `--home`, else
//!   `LATCH_HOME`, else `~/.latch`; `<home>/latch.toml` (or `--config PATH`) is read if
//!   present. Every key and its default: `latch.toml.example` in this crate.
//! - **Home Assistant directories.** `--home` may point at a Home Assistant
//!   configuration directory: its `.storage/auth*` files load unchanged. Home Assistant
//!   must not run on that directory at the same time. It takes no lock, so this cannot
//!   be detected reliably: when the home holds `.HA_VERSION` latchd logs a warning and,
//!   on Linux, refuses to start if `/proc` shows a `hass` process configured on it (see
//!   [`ha`] for what that check cannot see). latchd's own lock (`latchd.lock`) and the
//!   store's lock keep two latchd off one home.
//! - **Serving.** Requests are pipelined: answers carry their request's id. Requests
//!   answered from memory (token validation) are answered by the connection's reading
//!   task; everything else runs in its own task, so a slow login (bcrypt on the
//!   provider's blocking pool) never delays a validation. A request the daemon cannot
//!   decode but whose id it can read is answered `unsupported_request`. Events reach a
//!   connection only after it subscribes, and only the kinds it named.
//! - **Descriptors.** Every connection holds one: at start `run` raises the soft
//!   open-file limit to the hard limit, and warns when that is below the configured
//!   connections. At the limit new connections are refused; the rest are served.
//! - **Exit status.** 0 after a clean stop; 2 for an error a restart cannot fix (bad
//!   configuration, already running, unsafe home, corrupt or unreadable store, a planted
//!   symlink: [`DaemonError::is_permanent`]); 1 for one it may (an I/O error).
//! - **Shutdown.** Stop accepting, let running requests finish (within
//!   `shutdown_grace_secs`), remove the socket and token files, close the store (which
//!   compacts it). Under systemd (`Type=notify`) it reports `READY=1` and `STOPPING=1`;
//!   `latchd.service` in this crate is an example unit.
//! - **Logs** (`tracing`): one line at start (home, socket, versions, user count,
//!   providers), the manager's lines for failed logins and admin changes, and the
//!   daemon's own for the changes the manager does not log. Never a token, password,
//!   code or request payload.
//! - **Home Assistant's registries** ([`registries`]): when `.storage` holds
//!   `core.entity_registry`, `core.device_registry` and `core.area_registry`, they are
//!   read (read-only, never through a symlink, size-capped), re-read when they change,
//!   and answer `device_ids`/`area_ids` policy rules in permission checks. A file that
//!   does not parse is logged and the previous state kept.
//! - **Audit log** (`[audit]`, on by default): every security event (logins, failures,
//!   lockouts, token creation and revocation, user changes) appended as a JSON line to
//!   `<home>/audit.log`, mode 0600, rotated by size; see `audit.rs`. A symlink at that
//!   path stops the daemon from starting. Best-effort on a crash (flushed, not fsynced).
//!
//! # Example
//!
//! Run a daemon in-process, talk to it over its socket, stop it:
//!
//! ```no_run
//! use latch_daemon::{DaemonConfig, DaemonOptions, DaemonFrame, ResponsePayload};
//! use latch_protocol::{Event, Request, RequestFrame, Response};
//!
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let daemon = latch_daemon::start(DaemonOptions::new("/tmp/latch-home", DaemonConfig::default())).await?;
//! let mut conn = latch_ipc::client::connect::<RequestFrame, ResponsePayload, Event>(
//!     &daemon.client_config(),
//! )
//! .await?;
//! conn.send(&RequestFrame::new(1, Request::Ping)).await?;
//! let answer = conn.recv().await?;
//! assert_eq!(
//!     answer,
//!     Some(DaemonFrame::Response(ResponsePayload { id: 1, result: Ok(Response::Pong) }))
//! );
//! daemon.shutdown().await?;
//! # Ok(()) }
//! ```

mod audit;
mod backend;
mod cleanup;
pub mod config;
mod connection;
mod convert;
mod daemon;
mod error;
mod events;
mod fd_limit;
pub mod ha;
pub mod handler;
mod http_door;
mod lists;
pub mod moving;
pub mod registries;
mod signals;
mod wire;

pub use audit::AUDIT_FILE;
pub use config::{ConfigError, ConfigSource, DaemonConfig};
pub use daemon::{DaemonHandle, DaemonOptions, run, start};
pub use error::{DaemonError, EXIT_PERMANENT, EXIT_TRANSIENT};
pub use signals::{notify_ready, notify_stopping, shutdown_signal};
pub use wire::{DaemonFrame, ResponsePayload};
