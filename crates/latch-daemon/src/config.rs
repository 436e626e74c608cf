//! The daemon's configuration: `<home>/latch.toml`, or the file `--config` names.
//!
//! Every key is optional and the daemon runs on the defaults with no file at all. The
//! documented example, `latch.toml.example` in this crate, holds exactly the defaults
//! (a test parses it and compares), and `latchd --print-default-config` prints it.

use std::io;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use latch_auth::{AuthConfig, MfaConfig, ProviderConfig, ThrottleConfig};
use serde::{Deserialize, Serialize};
use toml::Spanned;
use toml::de::{DeTable, DeValue};

/// File name of the configuration inside the latch home.
pub const CONFIG_FILE: &str = "latch.toml";

/// The documented default configuration, as `latchd --print-default-config` prints it.
pub const EXAMPLE: &str = include_str!("../latch.toml.example");

/// Why the configuration cannot be used. The daemon exits with status 2 on any of these.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file exists (or was named with `--config`) but cannot be read.
    #[error("cannot read the configuration {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// The file is not valid TOML or does not fit the schema (an unknown key, a wrong
    /// type, a provider's own refusal).
    #[error("invalid configuration {} at line {line}, column {column}: {message}", path.display())]
    Parse {
        /// The file.
        path: PathBuf,
        /// 1-based line of the error (1 when the parser gave no position).
        line: usize,
        /// 1-based column of the error.
        column: usize,
        /// The TOML parser's message.
        message: String,
    },
    /// A value parses but is out of range (or, for `log_level`, not a level).
    #[error(
        "invalid configuration{}: {key} {reason}",
        location(path.as_deref(), *line, *column)
    )]
    Invalid {
        /// The file, if the configuration came from one.
        path: Option<PathBuf>,
        /// 1-based line of the offending key in the file, when it came from one.
        line: Option<usize>,
        /// 1-based column of the offending key.
        column: Option<usize>,
        /// The key, e.g. `socket.handshake_timeout_secs`.
        key: &'static str,
        /// What is wrong with its value.
        reason: String,
    },
}

fn location(path: Option<&Path>, line: Option<usize>, column: Option<usize>) -> String {
    let mut text = path
        .map(|p| format!(" {}", p.display()))
        .unwrap_or_default();
    if let (Some(line), Some(column)) = (line, column) {
        text.push_str(&format!(" at line {line}, column {column}"));
    }
    text
}

impl ConfigError {
    /// The 1-based line and column of the problem, when it is known.
    #[must_use]
    pub fn position(&self) -> Option<(usize, usize)> {
        match self {
            Self::Read { .. } => None,
            Self::Parse { line, column, .. } => Some((*line, *column)),
            Self::Invalid { line, column, .. } => line.zip(*column),
        }
    }
}

/// The whole configuration. Every field has a default; see `latch.toml.example`.
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DaemonConfig {
    /// Log filter: a level (`error`, `warn`, `info`, `debug`, `trace`) or `tracing`
    /// directives such as `info,latch_store=debug`. Default `"info"`. `RUST_LOG`
    /// overrides it, and `--log-level` overrides both.
    pub log_level: String,
    /// At SIGTERM or SIGINT the daemon stops accepting connections and gives requests
    /// already running this many seconds to finish. Default `10`.
    pub shutdown_grace_secs: u64,
    /// Auth providers, offered in this order (`[[auth_providers]]` tables tagged by
    /// `type`). Default: one `homeassistant` provider, as Home Assistant's.
    pub auth_providers: Vec<ProviderConfig>,
    /// MFA modules, offered in this order (`[[mfa_modules]]` tables tagged by `type`).
    /// Default: the `totp` module with id `totp`, named "Authenticator app".
    pub mfa_modules: Vec<MfaConfig>,
    /// Brute-force throttling of logins (`[throttle]`); see
    /// [`latch_auth::ThrottleConfig`] for each key and its default.
    pub throttle: ThrottleConfig,
    /// Token settings (`[tokens]`).
    pub tokens: TokensConfig,
    /// Socket limits and access (`[socket]`).
    pub socket: SocketConfig,
    /// Store settings (`[store]`).
    pub store: StoreConfig,
    /// Password hashing (`[hashing]`).
    pub hashing: HashingConfig,
    /// The audit log (`[audit]`).
    pub audit: AuditConfig,
    /// `[http]` belongs to `latch-http`, which reads it from the same file (and checks
    /// it with `latch-http --check-config`); latchd accepts it and ignores it.
    pub http: toml::Table,
}

impl Default for DaemonConfig {
    fn default() -> Self {
        let auth = AuthConfig::default();
        Self {
            log_level: "info".to_owned(),
            shutdown_grace_secs: 10,
            auth_providers: auth.auth_providers,
            mfa_modules: auth.mfa_modules,
            throttle: ThrottleConfig::default(),
            tokens: TokensConfig::default(),
            socket: SocketConfig::default(),
            store: StoreConfig::default(),
            hashing: HashingConfig::default(),
            audit: AuditConfig::default(),
            http: toml::Table::new(),
        }
    }
}

/// `[tokens]`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TokensConfig {
    /// Lifetime in seconds of the access tokens minted for sessions that login flows
    /// create. Default `1800` (Home Assistant's 30 minutes). Long-lived tokens keep the
    /// lifetime they were created with.
    pub access_token_lifetime_secs: u64,
}

impl Default for TokensConfig {
    fn default() -> Self {
        Self {
            access_token_lifetime_secs: 1800,
        }
    }
}

/// `[socket]`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SocketConfig {
    /// Further uids allowed to connect, besides the daemon's own and root. Default `[]`.
    /// They still need the session token.
    pub allowed_uids: Vec<u32>,
    /// Deadline for the whole handshake of a connection, in seconds. Default `5`.
    pub handshake_timeout_secs: u64,
    /// Connections still in their handshake at most; more are closed at once.
    /// Default `64`.
    pub max_unauthenticated: usize,
    /// Authenticated connections at most; more are refused as busy. Default `16384`.
    pub max_connections: usize,
    /// Requests of one connection being handled at once; the daemon stops reading that
    /// connection until one finishes. Default `256`.
    pub max_in_flight_per_connection: usize,
    /// Bytes of answers one connection may have queued and not yet read (a frame's
    /// payload and header, plus a fixed overhead per frame). An answer that does not fit
    /// waits for the client to read; one still waiting after `stall_timeout_secs` closes
    /// the connection. Events are not counted here: a subscriber that falls behind
    /// gets a `Lagged` notice instead. Default `4194304` (4 MiB).
    pub outbound_budget_bytes: u64,
    /// A frame a client has started must be complete within this many seconds, and an
    /// answer over `outbound_budget_bytes` waits at most this long; past either the
    /// connection is closed. An idle connection (between frames) has no deadline.
    /// Default `10`.
    pub stall_timeout_secs: u64,
}

impl Default for SocketConfig {
    fn default() -> Self {
        Self {
            allowed_uids: Vec::new(),
            handshake_timeout_secs: 5,
            max_unauthenticated: 64,
            max_connections: 16_384,
            max_in_flight_per_connection: 256,
            outbound_budget_bytes: 4 * 1024 * 1024,
            stall_timeout_secs: 10,
        }
    }
}

/// Where the store keeps its data.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StoreBackend {
    /// Home Assistant's `.storage` files and the local journal (the default).
    #[default]
    Files,
    /// One PostgreSQL database shared by several latchd (see the README's "More than
    /// one host").
    Postgres,
}

/// `[store]`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StoreConfig {
    /// `"files"` (default) or `"postgres"`.
    pub backend: StoreBackend,
    /// Rewrite the snapshot files and empty the journal once the journal holds this many
    /// bytes. Default `8388608` (8 MiB). The store also compacts at every clean shutdown.
    pub compact_after_bytes: u64,
    /// The database (`backend = "postgres"`): a libpq-style URL or key/value string,
    /// without the password (latch refuses one here).
    pub url: Option<String>,
    /// A file (mode 0600) holding the database password; else `LATCH_DB_PASSWORD`.
    pub password_file: Option<std::path::PathBuf>,
    /// This host's name in the shared log. Default: the host name.
    pub host_name: Option<String>,
    /// Deadline of each database call, in milliseconds: a write fails after it when the
    /// database does not answer. Default `3000`.
    pub write_timeout_ms: u64,
    /// How long a host may go without hearing from the database (`backend =
    /// "postgres"`) and still answer validations, refreshes and permission checks from
    /// memory: past it, they answer `unavailable` rather than trust a state that may
    /// miss a revocation made on another host. Default `30`.
    pub max_staleness_secs: u64,
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            backend: StoreBackend::Files,
            compact_after_bytes: 8 * 1024 * 1024,
            url: None,
            password_file: None,
            host_name: None,
            write_timeout_ms: 3000,
            max_staleness_secs: 30,
        }
    }
}

/// `[hashing]`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HashingConfig {
    /// Threads that may run bcrypt at once (password logins and changes); further ones
    /// wait. `0`, the default, means one per CPU.
    pub pool_size: usize,
}

/// `[audit]`: the append-only JSON-lines log of security events, `<home>/audit.log`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuditConfig {
    /// Write the audit log. Default `true`.
    pub enabled: bool,
    /// Rotate the log once it holds more than this many bytes. Default `10485760`
    /// (10 MiB).
    pub max_bytes: u64,
    /// Rotated files kept (`audit.log.1` … `audit.log.<keep>`); `0` keeps none.
    /// Default `5`.
    pub keep: usize,
}

impl Default for AuditConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            max_bytes: 10 * 1024 * 1024,
            keep: 5,
        }
    }
}

/// Where a configuration came from, for the start-up log line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConfigSource {
    /// No file: the embedded defaults.
    Defaults,
    /// Read from this file.
    File(PathBuf),
    /// Built in code (tests, benchmarks).
    Code,
}

impl std::fmt::Display for ConfigSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Defaults => f.write_str("embedded defaults"),
            Self::File(p) => write!(f, "{}", p.display()),
            Self::Code => f.write_str("built in code"),
        }
    }
}

/// The accepted range of one numeric key. Every numeric key of the configuration has
/// one ([`BOUNDS`]), and `latch.toml.example` states it next to the key; a value
/// outside it is refused, so no accepted value can overflow or panic later.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Bound {
    /// The key, e.g. `throttle.window_secs`.
    pub key: &'static str,
    /// The smallest value accepted.
    pub min: u64,
    /// The largest value accepted.
    pub max: u64,
}

const fn bound(key: &'static str, min: u64, max: u64) -> Bound {
    Bound { key, min, max }
}

/// Thirty days, in seconds: the longest throttle window and lockout.
const THIRTY_DAYS_SECS: u64 = 30 * 24 * 3600;
/// One GiB: the largest byte size any key accepts.
const ONE_GIB: u64 = 1024 * 1024 * 1024;

/// The range of every numeric key (the numbers in provider and module tables are
/// checked by the provider or module itself: `bcrypt_cost` 4..=31, `recovery_codes`
/// 0..=100).
pub const BOUNDS: &[Bound] = &[
    bound("shutdown_grace_secs", 0, 3600),
    bound("throttle.window_secs", 1, THIRTY_DAYS_SECS),
    bound("throttle.delay_after", 0, 1000),
    bound("throttle.base_delay_ms", 0, 60_000),
    bound("throttle.max_delay_ms", 0, 60_000),
    bound("throttle.lockout_after", 1, 1000),
    bound("throttle.lockout_secs", 1, THIRTY_DAYS_SECS),
    bound("throttle.max_tracked", 1, 1_000_000),
    // Ten years: keeps the f64 the store writes exact and `exp` far from overflow.
    bound("tokens.access_token_lifetime_secs", 1, 10 * 365 * 24 * 3600),
    bound("socket.handshake_timeout_secs", 1, 60),
    bound("socket.max_unauthenticated", 1, 4096),
    bound("socket.max_connections", 1, 1_048_576),
    bound("socket.max_in_flight_per_connection", 1, 65_536),
    bound("socket.outbound_budget_bytes", 65_536, ONE_GIB),
    bound("socket.stall_timeout_secs", 1, 600),
    bound("store.compact_after_bytes", 1024, ONE_GIB),
    bound("store.write_timeout_ms", 100, 60_000),
    bound("store.max_staleness_secs", 1, 86_400),
    bound("hashing.pool_size", 0, 1024),
    bound("audit.max_bytes", 1024, ONE_GIB),
    bound("audit.keep", 0, 1000),
];

/// At most this many `socket.allowed_uids`.
pub const MAX_ALLOWED_UIDS: usize = 1024;

/// The level names a `log_level` directive may end in.
const LEVELS: [&str; 6] = ["off", "error", "warn", "info", "debug", "trace"];

fn widen(value: usize) -> u64 {
    u64::try_from(value).unwrap_or(u64::MAX)
}

impl DaemonConfig {
    /// Parses and validates a configuration from TOML text; `path` names it in errors.
    ///
    /// # Errors
    /// [`ConfigError::Parse`] with the line and column of the problem;
    /// [`ConfigError::Invalid`] for a value out of its range, with the line and column of
    /// its key.
    pub fn from_toml(text: &str, path: &Path) -> Result<Self, ConfigError> {
        let config: Self = toml::from_str(text).map_err(|e| {
            let (line, column) = e
                .span()
                .map(|span| refine_span(text, span, e.message()))
                .map_or((1, 1), |offset| line_and_column(text, offset));
            ConfigError::Parse {
                path: path.to_path_buf(),
                line,
                column,
                message: e.message().trim_end().to_owned(),
            }
        })?;
        config.validate().map_err(|e| match e {
            ConfigError::Invalid { key, reason, .. } => {
                let position = key_offset(text, key).map(|offset| line_and_column(text, offset));
                ConfigError::Invalid {
                    path: Some(path.to_path_buf()),
                    line: position.map(|(line, _)| line),
                    column: position.map(|(_, column)| column),
                    key,
                    reason,
                }
            }
            other => other,
        })?;
        Ok(config)
    }

    /// Reads the configuration: `explicit` (`--config`), which must exist, else
    /// `<home>/latch.toml` if it exists, else the defaults.
    ///
    /// # Errors
    /// As [`DaemonConfig::from_toml`], and [`ConfigError::Read`].
    pub fn load(explicit: Option<&Path>, home: &Path) -> Result<(Self, ConfigSource), ConfigError> {
        let (path, required) = match explicit {
            Some(p) => (p.to_path_buf(), true),
            None => (home.join(CONFIG_FILE), false),
        };
        match std::fs::read_to_string(&path) {
            Ok(text) => Ok((Self::from_toml(&text, &path)?, ConfigSource::File(path))),
            Err(e) if e.kind() == io::ErrorKind::NotFound && !required => {
                Ok((Self::default(), ConfigSource::Defaults))
            }
            Err(source) => Err(ConfigError::Read { path, source }),
        }
    }

    /// The value of every key in [`BOUNDS`], in its order.
    fn numeric_values(&self) -> [u64; 21] {
        let t = &self.throttle;
        let s = &self.socket;
        [
            self.shutdown_grace_secs,
            t.window_secs,
            u64::from(t.delay_after),
            t.base_delay_ms,
            t.max_delay_ms,
            u64::from(t.lockout_after),
            t.lockout_secs,
            widen(t.max_tracked),
            self.tokens.access_token_lifetime_secs,
            s.handshake_timeout_secs,
            widen(s.max_unauthenticated),
            widen(s.max_connections),
            widen(s.max_in_flight_per_connection),
            s.outbound_budget_bytes,
            s.stall_timeout_secs,
            self.store.compact_after_bytes,
            self.store.write_timeout_ms,
            self.store.max_staleness_secs,
            widen(self.hashing.pool_size),
            self.audit.max_bytes,
            widen(self.audit.keep),
        ]
    }

    /// Checks what serde cannot: every numeric key against its [`Bound`], the log
    /// filter, a non-empty provider list, and the allowed uids.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] naming the first bad key (without a path or position).
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |key, reason: String| {
            Err(ConfigError::Invalid {
                path: None,
                line: None,
                column: None,
                key,
                reason,
            })
        };
        if let Err(reason) = check_log_level(&self.log_level) {
            return invalid("log_level", reason);
        }
        if self.auth_providers.is_empty() {
            return invalid(
                "auth_providers",
                "is empty: no one could log in (remove the key for the default \
                 homeassistant provider)"
                    .to_owned(),
            );
        }
        for (bound, value) in BOUNDS.iter().zip(self.numeric_values()) {
            if !(bound.min..=bound.max).contains(&value) {
                return invalid(
                    bound.key,
                    format!("is {value}, outside {}..={}", bound.min, bound.max),
                );
            }
        }
        let uids = &self.socket.allowed_uids;
        if uids.len() > MAX_ALLOWED_UIDS {
            return invalid(
                "socket.allowed_uids",
                format!(
                    "lists {} uids, at most {MAX_ALLOWED_UIDS} are accepted",
                    uids.len()
                ),
            );
        }
        if uids.contains(&u32::MAX) {
            return invalid(
                "socket.allowed_uids",
                "holds 4294967295, which is not a uid ((uid_t)-1)".to_owned(),
            );
        }
        if self.store.backend == StoreBackend::Postgres {
            match &self.store.url {
                None => {
                    return invalid(
                        "store.url",
                        "is required with backend = \"postgres\"".to_owned(),
                    );
                }
                Some(url) if url_has_password(url) => {
                    return invalid(
                        "store.url",
                        "must not hold a password: use LATCH_DB_PASSWORD or store.password_file"
                            .to_owned(),
                    );
                }
                Some(_) => {}
            }
        }
        Ok(())
    }

    /// The providers and modules, as the AuthManager takes them.
    #[must_use]
    pub fn auth_config(&self) -> AuthConfig {
        AuthConfig {
            auth_providers: self.auth_providers.clone(),
            mfa_modules: self.mfa_modules.clone(),
        }
    }

    /// The handshake deadline.
    #[must_use]
    pub fn handshake_timeout(&self) -> Duration {
        Duration::from_secs(self.socket.handshake_timeout_secs)
    }

    /// How long a started frame, or an answer over the outbound budget, may stall.
    #[must_use]
    pub fn stall_timeout(&self) -> Duration {
        Duration::from_secs(self.socket.stall_timeout_secs)
    }

    /// The shutdown grace period.
    #[must_use]
    pub fn shutdown_grace(&self) -> Duration {
        Duration::from_secs(self.shutdown_grace_secs)
    }
}

/// `Ok` for a filter whose every directive names a level: a level alone (`info`) or
/// `target=level` (`latch_store=debug`). A directive with no level (`loud`) would be
/// read by `tracing` as a target to trace, and nothing else would be logged.
fn check_log_level(filter: &str) -> Result<(), String> {
    let levels = LEVELS.join(", ");
    if filter.trim().is_empty() {
        return Err(format!("is empty: write a level ({levels})"));
    }
    for directive in filter.split(',').map(str::trim).filter(|d| !d.is_empty()) {
        let level = directive
            .rsplit_once('=')
            .map_or(directive, |(_, level)| level)
            .trim();
        if !LEVELS.iter().any(|known| known.eq_ignore_ascii_case(level)) {
            return Err(format!(
                "{directive:?} is not a level ({levels}) nor a directive target=level, \
                 e.g. \"info,latch_store=debug\""
            ));
        }
    }
    // Field values are matched literally: a regex could take unbounded time and memory
    // to compile (fuzzing found a 130-byte one that took half a minute).
    tracing_subscriber::EnvFilter::builder()
        .with_regex(false)
        .parse(filter)
        .map(|_| ())
        .map_err(|e| format!("is not a log filter: {e}"))
}

/// The byte offset of `key` (a dotted path such as `socket.max_connections`) in the
/// TOML `text`, if the text sets it.
fn key_offset(text: &str, key: &str) -> Option<usize> {
    let document = DeTable::parse(text).ok()?;
    let mut table = document.get_ref();
    let mut parts = key.split('.').peekable();
    while let Some(part) = parts.next() {
        let (name, value) = table.iter().find(|(name, _)| name.get_ref() == part)?;
        if parts.peek().is_none() {
            return Some(name.span().start);
        }
        let DeValue::Table(inner) = value.get_ref() else {
            return None;
        };
        table = inner;
    }
    None
}

/// Where to report a parse error at `span`. A provider's or module's own refusal (a
/// `bcrypt_cost` out of range, an unknown key) comes without a position of its own,
/// so the parser points at the whole `[[auth_providers]]` or `[[mfa_modules]]` table;
/// then the key of that table that the message names (first) is reported instead.
fn refine_span(text: &str, span: Range<usize>, message: &str) -> usize {
    let Ok(document) = DeTable::parse(text) else {
        return span.start;
    };
    for section in ["auth_providers", "mfa_modules"] {
        let Some(DeValue::Array(items)) = document.get_ref().get(section).map(Spanned::get_ref)
        else {
            continue;
        };
        let Some(DeValue::Table(table)) = items
            .iter()
            .find(|item| item.span().start == span.start)
            .map(Spanned::get_ref)
        else {
            continue;
        };
        let named = table
            .iter()
            .filter_map(|(name, _)| {
                word_at(message, name.get_ref()).map(|at| (at, name.span().start))
            })
            .min();
        if let Some((_, offset)) = named {
            return offset;
        }
    }
    span.start
}

/// The first position of `word` in `text` as a whole word (not inside a longer name).
fn word_at(text: &str, word: &str) -> Option<usize> {
    let is_name = |c: char| c.is_alphanumeric() || c == '_';
    text.match_indices(word).map(|(at, _)| at).find(|&at| {
        let before = text.get(..at).and_then(|s| s.chars().next_back());
        let after = text.get(at + word.len()..).and_then(|s| s.chars().next());
        !before.is_some_and(is_name) && !after.is_some_and(is_name)
    })
}

/// 1-based line and column (in characters) of byte `offset` in `text`.
fn line_and_column(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before.get(line_start..).map_or(0, |s| s.chars().count()) + 1;
    (line, column)
}

/// Whether a database URL or key/value string carries a password.
fn url_has_password(url: &str) -> bool {
    if let Some((_, rest)) = url.split_once("://") {
        let authority = rest.split(['/', '?']).next().unwrap_or_default();
        let in_userinfo = authority
            .rsplit_once('@')
            .is_some_and(|(userinfo, _)| userinfo.contains(':'));
        return in_userinfo || rest.contains("password=");
    }
    url.split_whitespace().any(|kv| kv.starts_with("password"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_database_password_is_refused_in_the_config() {
        for url in [
            "postgres://latch:secret@db.example/latch",
            "postgres://latch@db.example/latch?password=secret",
            "host=db.example user=latch password=secret",
        ] {
            assert!(url_has_password(url), "{url}");
            let text = format!("[store]\nbackend = \"postgres\"\nurl = \"{url}\"\n");
            let err = DaemonConfig::from_toml(&text, Path::new("x.toml")).unwrap_err();
            assert!(err.to_string().contains("store.url"), "{err}");
        }
        for url in [
            "postgres://latch@db.example/latch",
            "postgres://db.example/latch?sslmode=require",
            "host=/run/postgresql user=latch dbname=latch",
        ] {
            assert!(!url_has_password(url), "{url}");
        }
        let missing = "[store]\nbackend = \"postgres\"\n";
        let err = DaemonConfig::from_toml(missing, Path::new("x.toml")).unwrap_err();
        assert!(err.to_string().contains("store.url"), "{err}");
        let ok = "[store]\nbackend = \"postgres\"\nurl = \"postgres://latch@127.0.0.1/latch\"\n";
        let config = DaemonConfig::from_toml(ok, Path::new("x.toml")).unwrap();
        assert_eq!(config.store.backend, StoreBackend::Postgres);
    }

    #[test]
    fn line_and_column_count_from_one() {
        let text = "a = 1\nbb = 2\n";
        assert_eq!(line_and_column(text, 0), (1, 1));
        assert_eq!(line_and_column(text, 6), (2, 1));
        assert_eq!(line_and_column(text, 8), (2, 3));
        assert_eq!(line_and_column(text, 999), (3, 1));
    }

    #[test]
    fn log_filter_field_values_are_literal_not_regexes() {
        // `(` is not a regex: accepted only because values are matched literally.
        let text = "log_level = \"latch_auth[{user=(}]=debug\"\n";
        assert!(DaemonConfig::from_toml(text, Path::new("x.toml")).is_ok());
        // Found by fuzzing: compiled as a regex, this value took half a minute.
        let slow = "log_level = \"tch[s{c$$$$=y4....```````````````............................................._ti.#$bypass_log--}$$,$$$$$$$$$)$$$:$$$$$B\u{706}et\"";
        let _ = DaemonConfig::from_toml(slow, Path::new("x.toml"));
    }

    #[test]
    fn empty_text_is_the_defaults() {
        let config = DaemonConfig::from_toml("", Path::new("x.toml")).unwrap();
        assert_eq!(
            format!("{config:?}"),
            format!("{:?}", DaemonConfig::default())
        );
    }
}
