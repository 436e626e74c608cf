//! The daemon's configuration: `<home>/latch.toml`, or the file `--config` names.
//!
//! Every key is optional and the daemon runs on the defaults with no file at all. The
//! documented example, `latch.toml.example` in this crate, holds exactly the defaults
//! (a test parses it and compares), and `latchd --print-default-config` prints it.

use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use latch_auth::{AuthConfig, MfaConfig, ProviderConfig, ThrottleConfig};
use serde::{Deserialize, Serialize};

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
    /// A value parses but is out of range.
    #[error("invalid configuration{}: {key} {reason}", source_suffix(path.as_deref()))]
    Invalid {
        /// The file, if the configuration came from one.
        path: Option<PathBuf>,
        /// The key, e.g. `socket.handshake_timeout_secs`.
        key: &'static str,
        /// What is wrong with its value.
        reason: String,
    },
}

fn source_suffix(path: Option<&Path>) -> String {
    path.map(|p| format!(" in {}", p.display()))
        .unwrap_or_default()
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
}

impl Default for SocketConfig {
    fn default() -> Self {
        Self {
            allowed_uids: Vec::new(),
            handshake_timeout_secs: 5,
            max_unauthenticated: 64,
            max_connections: 16_384,
            max_in_flight_per_connection: 256,
        }
    }
}

/// `[store]`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StoreConfig {
    /// Rewrite the snapshot files and empty the journal once the journal holds this many
    /// bytes. Default `8388608` (8 MiB). The store also compacts at every clean shutdown.
    pub compact_after_bytes: u64,
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            compact_after_bytes: 8 * 1024 * 1024,
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

impl DaemonConfig {
    /// Parses and validates a configuration from TOML text; `path` names it in errors.
    ///
    /// # Errors
    /// [`ConfigError::Parse`] with the line and column of the problem;
    /// [`ConfigError::Invalid`] for an out-of-range value.
    pub fn from_toml(text: &str, path: &Path) -> Result<Self, ConfigError> {
        let config: Self = toml::from_str(text).map_err(|e| {
            let (line, column) = e
                .span()
                .map_or((1, 1), |span| line_and_column(text, span.start));
            ConfigError::Parse {
                path: path.to_path_buf(),
                line,
                column,
                message: e.message().trim_end().to_owned(),
            }
        })?;
        config.validate().map_err(|e| match e {
            ConfigError::Invalid { key, reason, .. } => ConfigError::Invalid {
                path: Some(path.to_path_buf()),
                key,
                reason,
            },
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

    /// Checks the values serde cannot: ranges and the log filter's syntax.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] naming the first bad key (without a path).
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |key, reason: &str| {
            Err(ConfigError::Invalid {
                path: None,
                key,
                reason: reason.to_owned(),
            })
        };
        // Field values are matched literally: a regex could take unbounded time and memory
        // to compile (fuzzing found a 130-byte one that took half a minute).
        if let Err(e) = tracing_subscriber::EnvFilter::builder()
            .with_regex(false)
            .parse(&self.log_level)
        {
            return Err(ConfigError::Invalid {
                path: None,
                key: "log_level",
                reason: format!("is not a log filter: {e}"),
            });
        }
        if self.tokens.access_token_lifetime_secs == 0 {
            return invalid("tokens.access_token_lifetime_secs", "must be at least 1");
        }
        // Keeps the f64 the store writes exact and `exp` far from overflow.
        if self.tokens.access_token_lifetime_secs > 10 * 365 * 24 * 3600 {
            return invalid(
                "tokens.access_token_lifetime_secs",
                "must be at most 315360000 (ten years)",
            );
        }
        if self.socket.handshake_timeout_secs == 0 {
            return invalid("socket.handshake_timeout_secs", "must be at least 1");
        }
        if self.socket.max_unauthenticated == 0 {
            return invalid("socket.max_unauthenticated", "must be at least 1");
        }
        if self.socket.max_connections == 0 {
            return invalid("socket.max_connections", "must be at least 1");
        }
        if self.socket.max_in_flight_per_connection == 0 {
            return invalid("socket.max_in_flight_per_connection", "must be at least 1");
        }
        if self.store.compact_after_bytes == 0 {
            return invalid("store.compact_after_bytes", "must be at least 1");
        }
        if self.audit.max_bytes < 1024 {
            return invalid("audit.max_bytes", "must be at least 1024");
        }
        if self.audit.keep > 1000 {
            return invalid("audit.keep", "must be at most 1000");
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

    /// The shutdown grace period.
    #[must_use]
    pub fn shutdown_grace(&self) -> Duration {
        Duration::from_secs(self.shutdown_grace_secs)
    }
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

#[cfg(test)]
mod tests {
    use super::*;

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
