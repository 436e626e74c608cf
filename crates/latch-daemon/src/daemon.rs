//! Wiring: home, store, manager, socket; the serve loop; the graceful shutdown.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use latch_auth::{AuthManager, ManagerOptions};
use latch_ipc::Raw;
use latch_ipc::client::ClientConfig;
use latch_ipc::home::Home;
use latch_ipc::peer::PeerPolicy;
use latch_ipc::server::{Server, ServerConfig};
use latch_models::Clock;
use latch_protocol::{Event, PROTOCOL_VERSION};
use latch_store::{Store, StoreOptions};
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};

use crate::audit::{self, AuditLog};
use crate::backend::Backend;
use crate::config::{ConfigSource, DaemonConfig, StoreBackend, StoreConfig};
use crate::connection::{self, Shared};
use crate::error::DaemonError;
use crate::events::{self, EventHub};
use crate::handler::Handler;
use crate::registries::{self, Registries};
use crate::wire::ResponsePayload;
use crate::{cleanup, fd_limit, ha, signals};

type DaemonServer = Server<Raw, ResponsePayload, Event>;

/// After the grace period, how long the answers already queued get to reach the socket.
const FLUSH_GRACE: Duration = Duration::from_secs(1);
/// How often the flush wait looks at the connection count.
const FLUSH_POLL: Duration = Duration::from_millis(2);

/// Everything the daemon needs to start.
#[derive(Clone, Debug)]
pub struct DaemonOptions {
    /// The latch home (socket, session token, lock, `latch.toml`, `.storage/`).
    pub home: PathBuf,
    /// The configuration.
    pub config: DaemonConfig,
    /// Where the configuration came from (for the start-up log line).
    pub config_source: ConfigSource,
    /// The AuthManager's clock; `None` is the system clock. Tests inject a fixed one.
    pub clock: Option<Arc<dyn Clock>>,
}

impl DaemonOptions {
    /// A daemon in `home` with a configuration built in code.
    pub fn new(home: impl Into<PathBuf>, config: DaemonConfig) -> Self {
        Self {
            home: home.into(),
            config,
            config_source: ConfigSource::Code,
            clock: None,
        }
    }

    /// Resolves the home (`home`, else `LATCH_HOME`, else `~/.latch`) and reads the
    /// configuration (`config_path`, else `<home>/latch.toml` if it exists, else the
    /// defaults), as `latchd` does.
    ///
    /// # Errors
    /// [`DaemonError::Home`] when no home can be found; [`DaemonError::Config`].
    pub fn load(home: Option<&Path>, config_path: Option<&Path>) -> Result<Self, DaemonError> {
        let home = Home::resolve(home)?;
        let (config, config_source) = DaemonConfig::load(config_path, home.dir())?;
        Ok(Self {
            home: home.dir().to_path_buf(),
            config,
            config_source,
            clock: None,
        })
    }
}

/// A running daemon. Dropping it stops the daemon in the background; call
/// [`DaemonHandle::shutdown`] to stop it and wait.
#[derive(Debug)]
pub struct DaemonHandle {
    home: Home,
    stop: watch::Sender<bool>,
    task: JoinHandle<Result<(), DaemonError>>,
    manager: AuthManager,
}

impl DaemonHandle {
    /// The latch home.
    #[must_use]
    pub fn home(&self) -> &Path {
        self.home.dir()
    }

    /// The socket clients connect to.
    #[must_use]
    pub fn socket_path(&self) -> PathBuf {
        self.home.socket_path()
    }

    /// The session-token file.
    #[must_use]
    pub fn token_path(&self) -> PathBuf {
        self.home.token_path()
    }

    /// How a client connects to this daemon.
    #[must_use]
    pub fn client_config(&self) -> ClientConfig {
        ClientConfig::for_home(&self.home, PROTOCOL_VERSION)
    }

    /// The daemon's AuthManager (for in-process benchmarks and tests).
    #[must_use]
    pub fn manager(&self) -> &AuthManager {
        &self.manager
    }

    /// Starts the graceful shutdown without waiting for it.
    pub fn stop(&self) {
        self.stop.send_replace(true);
    }

    /// Stops the daemon gracefully and waits until it has: no new connections or
    /// requests, running requests answered (within `shutdown_grace_secs`), socket and
    /// token file removed, store closed (which compacts it).
    ///
    /// # Errors
    /// [`DaemonError::Close`] if the store could not be compacted;
    /// [`DaemonError::Task`] if the serving task failed.
    pub async fn shutdown(self) -> Result<(), DaemonError> {
        self.stop();
        self.wait().await
    }

    /// Waits until the daemon has stopped (after [`DaemonHandle::stop`]).
    ///
    /// # Errors
    /// As [`DaemonHandle::shutdown`].
    pub async fn wait(self) -> Result<(), DaemonError> {
        match self.task.await {
            Ok(result) => result,
            Err(e) => Err(DaemonError::Task(e.to_string())),
        }
    }
}

/// Runs the daemon until `shutdown` resolves, then stops it gracefully. First raises the
/// process's soft open-file limit to the hard limit (each connection takes a
/// descriptor), warning when even that is below the configured connections. Tells systemd
/// `READY=1` once the socket serves and `STOPPING=1` when stopping (when
/// `NOTIFY_SOCKET` is set).
///
/// # Errors
/// Any [`DaemonError`] from [`start`] or [`DaemonHandle::shutdown`].
pub async fn run(
    options: DaemonOptions,
    shutdown: impl Future<Output = ()>,
) -> Result<(), DaemonError> {
    let socket = &options.config.socket;
    fd_limit::raise_and_report(
        socket
            .max_connections
            .saturating_add(socket.max_unauthenticated),
    );
    let handle = start(options).await?;
    signals::notify_ready();
    shutdown.await;
    handle.shutdown().await
}

/// Starts the daemon: checks the home, binds the socket (taking the single-instance
/// lock and writing a fresh session token), opens the store, builds the AuthManager
/// and serves. When this returns, the socket accepts and requests are answered.
///
/// # Errors
/// [`DaemonError`]: a bad configuration, an unusable home, Home Assistant running on
/// the home, another latchd, a store that does not load.
pub async fn start(options: DaemonOptions) -> Result<DaemonHandle, DaemonError> {
    let DaemonOptions {
        home,
        config,
        config_source,
        clock,
    } = options;
    config.validate()?;
    let home = Home::new(home);
    latch_ipc::home::ensure_home(home.dir())?;
    check_home_assistant(home.dir())?;

    let server = DaemonServer::bind(server_config(&home, &config)).await?;

    let (store, backend) = open_store(home.dir(), &config.store).await?;

    let mut manager_options = ManagerOptions {
        throttle: config.throttle.clone(),
        access_token_lifetime_secs: config.tokens.access_token_lifetime_secs,
        hash_pool_size: (config.hashing.pool_size > 0).then_some(config.hashing.pool_size),
        ..ManagerOptions::default()
    };
    if let Some(clock) = clock {
        manager_options.clock = clock;
    }
    let manager = AuthManager::from_config(store.clone(), &config.auth_config(), manager_options)?;
    let audit_log = if config.audit.enabled {
        let log =
            AuditLog::open(home.dir(), &config.audit).map_err(|source| DaemonError::Audit {
                path: home.dir().join(audit::AUDIT_FILE),
                source,
            })?;
        Some(log)
    } else {
        None
    };

    let (stop, stop_rx) = watch::channel(false);
    let (halt, halt_rx) = watch::channel(false);
    let hub = Arc::new(EventHub::new());
    // Changes made on other hosts (a shared store) fire this host's events too.
    let mut applied = store.subscribe_applied();
    let foreign_manager = manager.clone();
    tokio::spawn(async move {
        loop {
            match applied.recv().await {
                Ok(batch) => foreign_manager.fire_applied(&batch),
                Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                    tracing::warn!(
                        missed = n,
                        "events of changes made on other hosts were dropped"
                    );
                }
                Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
            }
        }
    });
    let forwarder = tokio::spawn(events::forward(
        manager.subscribe(),
        Arc::clone(&hub),
        halt_rx,
    ));
    let auditor = match audit_log {
        Some(log) => {
            let clock = manager.clone();
            let path = log.path().to_path_buf();
            let auditor = audit::spawn(log, manager.subscribe(), halt.subscribe(), move || {
                clock.now()
            })
            .map_err(|source| DaemonError::Audit { path, source })?;
            Some(auditor)
        }
        None => None,
    };
    let cleanup = tokio::spawn(cleanup::run(manager.clone(), stop_rx.clone()));
    let registries = Arc::new(Registries::new(home.dir()));
    let first_read = Arc::clone(&registries);
    tokio::task::spawn_blocking(move || first_read.reload())
        .await
        .map_err(|e| DaemonError::Task(e.to_string()))?;
    let registry_watch = tokio::spawn(registries::watch(Arc::clone(&registries), stop_rx.clone()));
    let handler = Handler::new(manager.clone(), home.dir().to_path_buf())
        .with_registries(registries)
        .with_backend(backend);
    let shared = Arc::new(Shared {
        handler: Arc::new(handler),
        hub,
        max_in_flight: config.socket.max_in_flight_per_connection,
    });

    log_start(&home, &manager, &config_source);
    let serving = Serving {
        server,
        shared,
        stop: stop_rx,
        grace: config.shutdown_grace(),
        store,
        halt,
        forwarder,
        auditor,
        cleanup,
        registry_watch,
    };
    let task = tokio::spawn(serving.run());
    Ok(DaemonHandle {
        home,
        stop,
        task,
        manager,
    })
}

fn server_config(home: &Home, config: &DaemonConfig) -> ServerConfig {
    let mut server = ServerConfig::new(home.dir(), PROTOCOL_VERSION);
    server.peer_policy = PeerPolicy {
        allowed_uids: config.socket.allowed_uids.clone(),
        ..PeerPolicy::current_user()
    };
    server.handshake_timeout = config.handshake_timeout();
    server.max_pre_auth = config.socket.max_unauthenticated;
    server.max_authenticated = config.socket.max_connections;
    server.outbound_budget =
        usize::try_from(config.socket.outbound_budget_bytes).unwrap_or(usize::MAX);
    server.stall_timeout = config.stall_timeout();
    server
}

fn check_home_assistant(home: &Path) -> Result<(), DaemonError> {
    if !ha::is_home_assistant_dir(home) {
        return Ok(());
    }
    if let Some(found) = ha::find_running(home) {
        return Err(DaemonError::HomeAssistantRunning {
            pid: found.pid,
            config_dir: found.config_dir,
        });
    }
    tracing::warn!(
        home = %home.display(),
        "this is a Home Assistant configuration directory: Home Assistant must not run on it \
         while latchd does (each would overwrite the other's auth data); no running Home \
         Assistant was found, but a containerised or remote one cannot be seen"
    );
    Ok(())
}

fn log_start(home: &Home, manager: &AuthManager, source: &ConfigSource) {
    let providers: Vec<String> = manager
        .providers()
        .iter()
        .map(|p| match p.id() {
            Some(id) => format!("{}/{id}", p.provider_type()),
            None => p.provider_type().to_owned(),
        })
        .collect();
    let mfa: Vec<&str> = manager.mfa_modules().iter().map(|m| m.id()).collect();
    let (users, tokens) = manager
        .store()
        .read(|d| (d.user_count(), d.refresh_token_count()));
    tracing::info!(
        home = %home.dir().display(),
        socket = %home.socket_path().display(),
        version = env!("CARGO_PKG_VERSION"),
        protocol = PROTOCOL_VERSION,
        users,
        refresh_tokens = tokens,
        providers = %providers.join(","),
        mfa_modules = %mfa.join(","),
        config = %source,
        "latchd started"
    );
}

/// The serve loop and what it stops at the end.
struct Serving {
    server: DaemonServer,
    shared: Arc<Shared>,
    stop: watch::Receiver<bool>,
    grace: Duration,
    store: Store,
    halt: watch::Sender<bool>,
    forwarder: JoinHandle<()>,
    /// The audit log's writer (a thread of its own), when enabled; drains and flushes
    /// at `halt`.
    auditor: Option<audit::Auditor>,
    cleanup: JoinHandle<()>,
    /// Re-reads Home Assistant's registries when they change; stops at `stop`.
    registry_watch: JoinHandle<()>,
}

impl Serving {
    async fn run(self) -> Result<(), DaemonError> {
        let Self {
            mut server,
            shared,
            mut stop,
            grace,
            store,
            halt,
            forwarder,
            auditor,
            cleanup,
            registry_watch,
        } = self;
        let mut connections = JoinSet::new();
        let for_connections = stop.clone();
        loop {
            tokio::select! {
                biased;
                // A dropped handle stops the daemon too.
                _ = stop.wait_for(|stopped| *stopped) => break,
                conn = server.accept() => match conn {
                    Some(conn) => {
                        connections.spawn(connection::serve(
                            conn,
                            Arc::clone(&shared),
                            for_connections.clone(),
                        ));
                    }
                    None => break,
                },
                Some(_) = connections.join_next(), if !connections.is_empty() => {}
            }
        }

        // Stop: no new connections; connections stop reading and finish what runs.
        signals::notify_stopping();
        tracing::info!(
            connections = connections.len(),
            "shutting down: finishing running requests"
        );
        let finished = tokio::time::timeout(grace, async {
            while connections.join_next().await.is_some() {}
        })
        .await
        .is_ok();
        if !finished {
            tracing::warn!(
                connections = connections.len(),
                grace_secs = grace.as_secs(),
                "requests still running after the grace period; closing their connections"
            );
            connections.abort_all();
            while connections.join_next().await.is_some() {}
        }
        wait_for_writers(&mut server).await;
        server.shutdown().await;

        // The cleanup task stopped at `stop`; waiting for it first means the events of a
        // cleanup it was finishing still reach subscribers and the audit log.
        let _ = cleanup.await;
        let _ = registry_watch.await;
        halt.send_replace(true);
        let _ = forwarder.await;
        if let Some(auditor) = auditor {
            // Drains what is queued and flushes the audit log.
            auditor.finish().await;
        }
        store.close().await.map_err(DaemonError::Close)?;
        tracing::info!("latchd stopped");
        Ok(())
    }
}

/// Lets every connection's writer put the answers already queued on the socket (a
/// connection releases its slot once its writer is done), closing connections that
/// arrive meanwhile, for at most [`FLUSH_GRACE`].
async fn wait_for_writers(server: &mut DaemonServer) {
    let deadline = tokio::time::Instant::now() + FLUSH_GRACE;
    while server.stats().authenticated > 0 && tokio::time::Instant::now() < deadline {
        tokio::select! {
            conn = server.accept() => drop(conn),
            () = tokio::time::sleep(FLUSH_POLL) => {}
        }
    }
}

/// Opens the store `[store]` names: the home's files, or the shared PostgreSQL database.
async fn open_store(home: &Path, config: &StoreConfig) -> Result<(Store, Backend), DaemonError> {
    match config.backend {
        StoreBackend::Files => {
            let store_options = StoreOptions {
                compact_after_bytes: config.compact_after_bytes,
                ..StoreOptions::default()
            };
            let dir = home.to_path_buf();
            let store = tokio::task::spawn_blocking(move || Store::open(dir, store_options))
                .await
                .map_err(|e| DaemonError::Task(e.to_string()))??;
            Ok((store, Backend::Files))
        }
        StoreBackend::Postgres => {
            let pg = pg_config(config)?;
            let backend = latch_store_postgres::PgBackend::open(pg)
                .await
                .map_err(|e| DaemonError::SharedStore(e.to_string()))?;
            Ok((
                backend.store(),
                Backend::Postgres {
                    status: backend.status_handle(),
                    max_staleness: Duration::from_secs(config.max_staleness_secs),
                },
            ))
        }
    }
}

/// The shared database's settings from `[store]` (the password from its file or the
/// environment).
///
/// # Errors
/// [`DaemonError::PasswordFile`].
pub(crate) fn pg_config(
    config: &StoreConfig,
) -> Result<latch_store_postgres::PgConfig, DaemonError> {
    let url = config.url.clone().unwrap_or_default();
    let password = db_password(config.password_file.as_deref())?;
    let host_name = config.host_name.clone().unwrap_or_else(|| {
        std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_owned())
            .unwrap_or_else(|_| "latchd".to_owned())
    });
    let mut pg = latch_store_postgres::PgConfig::new(&url, password, &host_name);
    pg.write_timeout = Duration::from_millis(config.write_timeout_ms);
    Ok(pg)
}

/// The database password: from `password_file` (which must be a regular file of mode
/// 0600 or stricter), else `LATCH_DB_PASSWORD`, else none.
fn db_password(file: Option<&Path>) -> Result<Option<String>, DaemonError> {
    if let Some(path) = file {
        use std::os::unix::fs::MetadataExt;
        let meta = std::fs::metadata(path)
            .map_err(|e| DaemonError::PasswordFile(format!("{}: {e}", path.display())))?;
        if !meta.is_file() || meta.mode() & 0o077 != 0 {
            return Err(DaemonError::PasswordFile(format!(
                "{} must be a regular file readable by its owner only (mode 0600)",
                path.display()
            )));
        }
        let text = std::fs::read_to_string(path)
            .map_err(|e| DaemonError::PasswordFile(format!("{}: {e}", path.display())))?;
        return Ok(Some(text.trim_end_matches(['\n', '\r']).to_owned()));
    }
    Ok(std::env::var("LATCH_DB_PASSWORD").ok())
}
