//! latch-store-postgres: the shared backend for more than one host.
//!
//! One job: make a latch [`Store`]'s batches durable in one PostgreSQL database that
//! several latchd share, and bring every other host's batches into this host's memory in
//! order. Validation never touches the database: each host holds the whole state in
//! memory (latch-store), and only writes go to PostgreSQL.
//!
//! - **The log.** `latch_log(seq bigint primary key, origin, payload)` holds every batch
//!   group in commit order. A host appends inside a transaction that first takes the
//!   log's append lock (`pg_advisory_xact_lock`), then applies every batch it has not
//!   yet seen, then plans and applies its own queued commits on that state (so a check
//!   such as "username still free" is re-made on the state the batch lands on), inserts
//!   them as one row at `last_applied + 1` and commits. Appends are therefore serial:
//!   row N+1 can only commit after row N, a reader never has to skip a number, and no
//!   aborted sequence value leaves a gap. A commit is acknowledged once PostgreSQL
//!   committed it.
//! - **Delivery.** Each append notifies `latch_log` (LISTEN/NOTIFY); every host also
//!   polls (default each second) in case a notification is missed, and applies new rows
//!   strictly in order.
//! - **Checkpoints.** Every [`PgConfig::checkpoint_every`] rows a host writes the whole
//!   state (Home Assistant's four files) at its last row to `latch_checkpoint`; start-up
//!   loads the newest checkpoint and replays only the rows after it.
//! - **Failure.** Every database call has a deadline ([`PgConfig::write_timeout`]), so a
//!   write fails fast with [`StoreError::Unavailable`] when the database does not
//!   answer; the host reconnects with backoff and catches up. If an append failed after
//!   its group was applied in memory, the state is reloaded from the database before
//!   any further write.
//! - **Schema.** Versioned migrations run at start under a session advisory lock, so two
//!   hosts never migrate at once.
//!
//! What it must not do: hold the store's lock across a database call, or talk TLS-less
//! to a database that is neither on a Unix socket nor on loopback (TLS is then required
//! and the certificate verified against the web PKI roots).
//!
//! ```no_run
//! # async fn demo() -> Result<(), latch_store_postgres::PgError> {
//! use latch_store_postgres::{PgBackend, PgConfig};
//! let config = PgConfig::new("postgres://latch@db.example/latch", Some("secret".into()), "host-a");
//! let backend = PgBackend::open(config).await?;
//! let store = backend.store();
//! println!("{} users", store.users().len());
//! # Ok(()) }
//! ```

mod driver;
mod schema;

use std::fmt;
use std::net::IpAddr;
use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use latch_store::{AuthData, Store, StoreError, StoreFile, StoreOptions};
use parking_lot_free::Mutex;
use tokio_postgres::config::{Host, SslMode};
use tokio_postgres_rustls::MakeRustlsConnect;
use zeroize::Zeroizing;

pub use driver::BackendStatus;

/// When the database last answered, readable without a lock (every validation of a
/// host with a staleness bound reads it).
#[derive(Debug)]
pub(crate) struct Contact {
    base: Instant,
    /// Milliseconds after `base` of the last answer.
    at_ms: std::sync::atomic::AtomicU64,
}

impl Contact {
    fn new() -> Self {
        Self {
            base: Instant::now(),
            at_ms: std::sync::atomic::AtomicU64::new(0),
        }
    }

    pub(crate) fn touch(&self) {
        let ms = u64::try_from(self.base.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.at_ms
            .fetch_max(ms, std::sync::atomic::Ordering::Relaxed);
    }

    fn silent_for(&self) -> Duration {
        let now = self.base.elapsed();
        let at = Duration::from_millis(self.at_ms.load(std::sync::atomic::Ordering::Relaxed));
        now.saturating_sub(at)
    }
}

/// The shared backend's errors.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PgError {
    /// The URL does not parse.
    #[error("invalid database url: {0}")]
    Url(String),
    /// The database cannot be reached or refused a statement.
    #[error("database: {0}")]
    Db(#[from] tokio_postgres::Error),
    /// A database call did not finish in time.
    #[error("the database did not answer within {0:?}")]
    Timeout(Duration),
    /// The database's content is not what latch wrote.
    #[error("invalid data in the database: {0}")]
    Invalid(String),
    /// The database's schema is newer than this build.
    #[error("the database schema is version {found}; this latchd knows up to {known}")]
    SchemaTooNew {
        /// In the database.
        found: i32,
        /// Known here.
        known: i32,
    },
    /// Importing needs an empty database.
    #[error(
        "the database already holds latch data (log up to batch {0}); import needs an empty one"
    )]
    NotEmpty(i64),
    /// Exporting needs a database that holds latch data.
    #[error(
        "the database holds no latch data (nothing was imported or written): nothing to export"
    )]
    Empty,
    /// The store refused (decoding a checkpoint, ...).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// TLS could not be set up.
    #[error("tls: {0}")]
    Tls(String),
}

/// How to reach the database and how to behave.
#[derive(Clone)]
pub struct PgConfig {
    /// libpq-style URL or key/value string.
    pub url: String,
    /// The password, if the URL has none (from `LATCH_DB_PASSWORD` or a password file;
    /// never from latch.toml).
    pub password: Option<Zeroizing<String>>,
    /// This host's name in the log (`origin`).
    pub host_name: String,
    /// Deadline of each database call. Default 3 s.
    pub write_timeout: Duration,
    /// Polling interval (the fallback when a notification is missed). Default 1 s.
    pub poll_interval: Duration,
    /// A checkpoint is written every this many log rows. Default 1,000.
    pub checkpoint_every: u64,
    /// Usage metadata is appended at most this often. Default 1 s.
    pub usage_flush_interval: Duration,
}

impl fmt::Debug for PgConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgConfig")
            .field("url", &redact_url(&self.url))
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("host_name", &self.host_name)
            .field("write_timeout", &self.write_timeout)
            .field("poll_interval", &self.poll_interval)
            .field("checkpoint_every", &self.checkpoint_every)
            .finish_non_exhaustive()
    }
}

/// The URL with any password replaced.
fn redact_url(url: &str) -> String {
    match (url.find("://"), url.find('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            match userinfo.find(':') {
                Some(colon) => format!(
                    "{}{}:<redacted>{}",
                    &url[..scheme + 3],
                    &userinfo[..colon],
                    &url[at..]
                ),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

impl PgConfig {
    /// A configuration with the defaults.
    #[must_use]
    pub fn new(url: &str, password: Option<String>, host_name: &str) -> Self {
        Self {
            url: url.to_owned(),
            password: password.map(Zeroizing::new),
            host_name: host_name.to_owned(),
            write_timeout: Duration::from_secs(3),
            poll_interval: Duration::from_secs(1),
            checkpoint_every: 1_000,
            usage_flush_interval: Duration::from_secs(1),
        }
    }

    /// The tokio-postgres configuration: password set, TLS required unless every host
    /// is a Unix socket or loopback.
    pub(crate) fn pg(&self) -> Result<tokio_postgres::Config, PgError> {
        let mut c =
            tokio_postgres::Config::from_str(&self.url).map_err(|e| PgError::Url(e.to_string()))?;
        if let Some(p) = &self.password {
            c.password(p.as_bytes());
        }
        c.connect_timeout(self.write_timeout);
        c.application_name(format!("latchd {}", self.host_name));
        if c.get_hosts().is_empty() {
            return Err(PgError::Url("no host".into()));
        }
        let local = c.get_hosts().iter().all(|h| match h {
            Host::Unix(_) => true,
            Host::Tcp(name) => {
                name == "localhost"
                    || name
                        .trim_start_matches('[')
                        .trim_end_matches(']')
                        .parse::<IpAddr>()
                        .is_ok_and(|ip| ip.is_loopback())
            }
        });
        c.ssl_mode(if local {
            SslMode::Disable
        } else {
            SslMode::Require
        });
        Ok(c)
    }
}

/// TLS with certificate verification against the web PKI roots.
pub(crate) fn tls() -> Result<MakeRustlsConnect, PgError> {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| PgError::Tls(e.to_string()))?
    .with_root_certificates(roots)
    .with_no_client_auth();
    Ok(MakeRustlsConnect::new(config))
}

/// Connects, with the call's deadline; the connection runs in its own task.
pub(crate) async fn connect(config: &PgConfig) -> Result<tokio_postgres::Client, PgError> {
    let pg = config.pg()?;
    let (client, connection) = deadline(config.write_timeout, pg.connect(tls()?)).await??;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::debug!(error = %e, "database connection ended");
        }
    });
    Ok(client)
}

/// Runs `f` with a deadline.
pub(crate) async fn deadline<T>(limit: Duration, f: impl Future<Output = T>) -> Result<T, PgError> {
    tokio::time::timeout(limit, f)
        .await
        .map_err(|_| PgError::Timeout(limit))
}

/// A store whose batches live in PostgreSQL, and the task that serves it.
#[derive(Debug)]
pub struct PgBackend {
    store: Store,
    status: Arc<Mutex<BackendStatus>>,
    contact: Arc<Contact>,
}

impl PgBackend {
    /// Connects, runs the schema migrations, loads the newest checkpoint and the rows
    /// after it, and starts the driver task on the current tokio runtime.
    ///
    /// # Errors
    /// [`PgError`]: the database cannot be reached, its schema is newer, its data does
    /// not decode.
    pub async fn open(config: PgConfig) -> Result<Self, PgError> {
        let started = Instant::now();
        let mut client = connect(&config).await?;
        schema::migrate(&mut client, config.write_timeout).await?;
        let (data, seq) = driver::load(&client, &config).await?;
        let (store, side) = Store::with_log(data, seq, &StoreOptions::default());
        let status = Arc::new(Mutex::new(BackendStatus::new(seq)));
        let contact = Arc::new(Contact::new());
        driver::start(
            config,
            client,
            side,
            Arc::clone(&status),
            Arc::clone(&contact),
        )
        .await?;
        tracing::info!(
            seq,
            elapsed_ms = started.elapsed().as_millis(),
            "loaded the shared store"
        );
        Ok(Self {
            store,
            status,
            contact,
        })
    }

    /// The store (every clone shares it).
    #[must_use]
    pub fn store(&self) -> Store {
        self.store.clone()
    }

    /// Connection, last batch applied and how long since the database last answered.
    #[must_use]
    pub fn status(&self) -> BackendStatus {
        self.status.lock().clone()
    }

    /// A shareable view of the status.
    #[must_use]
    pub fn status_handle(&self) -> StatusHandle {
        StatusHandle {
            status: Arc::clone(&self.status),
            contact: Arc::clone(&self.contact),
        }
    }
}

/// The backend's status, readable from anywhere.
#[derive(Clone, Debug)]
pub struct StatusHandle {
    status: Arc<Mutex<BackendStatus>>,
    contact: Arc<Contact>,
}

impl StatusHandle {
    /// The current status.
    #[must_use]
    pub fn get(&self) -> BackendStatus {
        self.status.lock().clone()
    }

    /// How long since the database last answered this host (a poll, a catch-up, an
    /// append). Lock-free: cheap enough to check before every validation.
    #[must_use]
    pub fn silent_for(&self) -> Duration {
        self.contact.silent_for()
    }
}

/// Puts `data` (a home read with [`Store::open`], say) into an empty database as its
/// first checkpoint.
///
/// # Errors
/// [`PgError::NotEmpty`] if the database holds latch data; [`PgError`] otherwise.
pub async fn import(config: &PgConfig, data: &AuthData) -> Result<(), PgError> {
    let mut client = connect(config).await?;
    schema::migrate(&mut client, config.write_timeout).await?;
    let mut files: [Option<Vec<u8>>; 4] = Default::default();
    for f in StoreFile::ALL {
        files[index(f)] = Some(data.encode(f)?);
    }
    driver::import(&mut client, config, &files).await
}

/// Reads the database's current state (newest checkpoint and the rows after it) and
/// writes it as Home Assistant's files into `<dir>/.storage` (which must not hold them
/// yet), through a latch store so the files are exactly what latch writes.
///
/// # Errors
/// [`PgError`]; [`PgError::Store`] if the directory cannot take the files.
pub async fn export(config: &PgConfig, dir: &Path) -> Result<u64, PgError> {
    let client = connect(config).await?;
    let held = deadline(
        config.write_timeout,
        client.query_one(
            "SELECT to_regclass('latch_log') IS NOT NULL \
                AND to_regclass('latch_checkpoint') IS NOT NULL",
            &[],
        ),
    )
    .await??
    .get::<_, bool>(0);
    if !held || !driver::holds_data(&client, config).await? {
        return Err(PgError::Empty);
    }
    let (data, seq) = driver::load(&client, config).await?;
    let dir = dir.to_owned();
    tokio::task::spawn_blocking(move || -> Result<(), PgError> {
        let store = Store::open(&dir, StoreOptions::default())?;
        if store.users().len() + store.ha_users().len() > 0 {
            return Err(PgError::Invalid(format!(
                "{} holds data already; export needs an empty home",
                dir.display()
            )));
        }
        store.commit_blocking(data.to_changes())?;
        store.close_blocking()?;
        Ok(())
    })
    .await
    .map_err(|e| PgError::Invalid(e.to_string()))??;
    Ok(seq)
}

pub(crate) fn index(f: StoreFile) -> usize {
    StoreFile::ALL.iter().position(|x| *x == f).unwrap_or(0)
}

mod parking_lot_free {
    //! A std mutex that shrugs off poisoning (the status is plain data).
    #[derive(Debug, Default)]
    pub(crate) struct Mutex<T>(std::sync::Mutex<T>);

    impl<T> Mutex<T> {
        pub(crate) fn new(t: T) -> Self {
            Self(std::sync::Mutex::new(t))
        }

        pub(crate) fn lock(&self) -> std::sync::MutexGuard<'_, T> {
            self.0
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_never_show() {
        let c = PgConfig::new(
            "postgres://latch:hunter2@db.example/latch",
            Some("s3cret".into()),
            "a",
        );
        let text = format!("{c:?}");
        assert!(
            !text.contains("hunter2") && !text.contains("s3cret"),
            "{text}"
        );
        assert!(text.contains("latch:<redacted>@db.example"), "{text}");
    }

    #[test]
    fn tls_is_required_beyond_loopback_and_unix_sockets() {
        let mode = |url: &str| PgConfig::new(url, None, "a").pg().unwrap().get_ssl_mode();
        assert_eq!(mode("postgres://u@127.0.0.1/db"), SslMode::Disable);
        assert_eq!(mode("postgres://u@localhost/db"), SslMode::Disable);
        assert_eq!(mode("postgres://u@[::1]/db"), SslMode::Disable);
        assert_eq!(mode("host=/run/postgresql dbname=db"), SslMode::Disable);
        assert_eq!(mode("postgres://u@db.example/db"), SslMode::Require);
        assert_eq!(mode("postgres://u@10.0.0.5/db"), SslMode::Require);
        assert_eq!(
            mode("postgres://u@127.0.0.1,db.example/db"),
            SslMode::Require
        );
    }
}
