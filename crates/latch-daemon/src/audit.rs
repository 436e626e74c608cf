//! The audit log: every [`AuthEvent`] appended as one JSON object per line to
//! `<home>/audit.log`, with size-based rotation.
//!
//! - **Format.** `{"ts": "<RFC 3339 UTC>", "event": "<name>", ...}` with the event's ids,
//!   token type, client id and name, the username as typed, provider type, source
//!   address, reason, lockout key and end. Events carry no secret, and nothing here adds
//!   one. A broadcast receiver that fell behind writes `{"event": "audit_lagged",
//!   "missed": N}`.
//! - **File.** Created mode 0600 with `O_APPEND | O_NOFOLLOW`: a symlink at the path is
//!   refused (the daemon does not start) and the file is never written through one. An
//!   existing file with wider permissions is narrowed to 0600.
//! - **Durability.** Lines are buffered and flushed to the OS whenever the event channel
//!   is drained, and at shutdown; there is no fsync, so unlike the store the audit log is
//!   best-effort on a crash or power loss (the last lines may be lost).
//! - **Rotation.** Once the file holds more than `max_bytes`, it is renamed to
//!   `audit.log.1` (`.1` → `.2` … up to `keep` files, the oldest removed) and a new one
//!   is started.

use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use chrono::{DateTime, SecondsFormat, Utc};
use latch_auth::AuthEvent;
use serde_json::{Map, Value, json};
use tokio::sync::{broadcast, watch};

use crate::config::AuditConfig;

/// File name of the audit log inside the latch home.
pub const AUDIT_FILE: &str = "audit.log";

/// An open audit log.
#[derive(Debug)]
pub(crate) struct AuditLog {
    path: PathBuf,
    file: BufWriter<File>,
    size: u64,
    max_bytes: u64,
    keep: usize,
}

/// Opens `path` for appending: created 0600, never through a symlink, a regular file.
fn open_file(path: &Path) -> io::Result<(File, u64)> {
    let mut options = OpenOptions::new();
    options.append(true).create(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        let flags = rustix::fs::OFlags::NOFOLLOW | rustix::fs::OFlags::CLOEXEC;
        options.mode(0o600).custom_flags(flags.bits().cast_signed());
    }
    let file = options.open(path).map_err(|e| {
        if path
            .symlink_metadata()
            .is_ok_and(|m| m.file_type().is_symlink())
        {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                "it is a symlink; latchd never writes the audit log through one",
            )
        } else {
            e
        }
    })?;
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "it is not a regular file",
        ));
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if meta.permissions().mode() & 0o077 != 0 {
            file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
        }
    }
    Ok((file, meta.len()))
}

impl AuditLog {
    /// Opens (or creates) `<dir>/audit.log`.
    pub(crate) fn open(dir: &Path, config: &AuditConfig) -> io::Result<Self> {
        let path = dir.join(AUDIT_FILE);
        let (file, size) = open_file(&path)?;
        Ok(Self {
            path,
            file: BufWriter::new(file),
            size,
            max_bytes: config.max_bytes,
            keep: config.keep,
        })
    }

    /// The log's path.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Appends one record as a line, rotating first if the file is already too large.
    pub(crate) fn append(&mut self, record: &Value) -> io::Result<()> {
        if self.size > self.max_bytes {
            self.rotate()?;
        }
        let mut line = serde_json::to_vec(record).map_err(io::Error::other)?;
        line.push(b'\n');
        self.file.write_all(&line)?;
        self.size += line.len() as u64;
        Ok(())
    }

    /// Hands the buffered lines to the OS (no fsync), rotating if the file grew too big.
    pub(crate) fn flush(&mut self) -> io::Result<()> {
        self.file.flush()?;
        if self.size > self.max_bytes {
            self.rotate()?;
        }
        Ok(())
    }

    fn rotated(&self, n: usize) -> PathBuf {
        let mut name = self.path.clone().into_os_string();
        name.push(format!(".{n}"));
        PathBuf::from(name)
    }

    /// `audit.log.{keep-1}` → `.{keep}` … `audit.log` → `.1`, the oldest removed; then a
    /// new, empty `audit.log`.
    fn rotate(&mut self) -> io::Result<()> {
        self.file.flush()?;
        if self.keep == 0 {
            remove_if_present(&self.path)?;
        } else {
            remove_if_present(&self.rotated(self.keep))?;
            for n in (1..self.keep).rev() {
                match std::fs::rename(self.rotated(n), self.rotated(n + 1)) {
                    Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                    _ => {}
                }
            }
            std::fs::rename(&self.path, self.rotated(1))?;
        }
        let (file, size) = open_file(&self.path)?;
        self.file = BufWriter::new(file);
        self.size = size;
        Ok(())
    }
}

fn remove_if_present(path: &Path) -> io::Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

fn timestamp(ts: DateTime<Utc>) -> String {
    ts.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// The JSON record of `event` at `ts`. Only ids, names, addresses and reasons: events
/// carry no secret.
pub(crate) fn record(event: &AuthEvent, ts: DateTime<Utc>) -> Value {
    let mut m = Map::new();
    m.insert("ts".into(), timestamp(ts).into());
    m.insert("event".into(), event.name().into());
    let mut put = |k: &str, v: Value| {
        m.insert(k.to_owned(), v);
    };
    match event {
        AuthEvent::UserAdded { user_id }
        | AuthEvent::UserUpdated { user_id }
        | AuthEvent::UserRemoved { user_id } => put("user_id", user_id.to_string().into()),
        AuthEvent::RefreshTokenCreated {
            user_id,
            refresh_token_id,
            token_type,
            client_id,
            client_name,
        } => {
            put("user_id", user_id.to_string().into());
            put("refresh_token_id", refresh_token_id.to_string().into());
            put("token_type", token_type.to_string().into());
            put("client_id", json!(client_id));
            put("client_name", json!(client_name));
        }
        AuthEvent::RefreshTokenRevoked {
            user_id,
            refresh_token_id,
        } => {
            put("user_id", user_id.to_string().into());
            put("refresh_token_id", refresh_token_id.to_string().into());
        }
        AuthEvent::LoginFailed {
            username,
            provider_type,
            source,
            reason,
        } => {
            put("username", json!(username));
            put("provider_type", provider_type.as_str().into());
            put("source", json!(source.map(|s| s.to_string())));
            put("reason", reason.as_str().into());
        }
        AuthEvent::LoginSucceeded {
            user_id,
            provider_type,
            source,
        } => {
            put("user_id", user_id.to_string().into());
            put("provider_type", provider_type.as_str().into());
            put("source", json!(source.map(|s| s.to_string())));
        }
        AuthEvent::LockoutStarted { key, until } => {
            put("key", key.to_string().into());
            put("until", timestamp(*until).into());
        }
        AuthEvent::LockoutCleared { key } => put("key", key.to_string().into()),
        // A newer event kind: its name only, until it is mapped here.
        _ => {}
    }
    Value::Object(m)
}

fn lagged(missed: u64, ts: DateTime<Utc>) -> Value {
    json!({"ts": timestamp(ts), "event": "audit_lagged", "missed": missed})
}

/// Writes what `rx` receives to `log` until `halt` turns true (then drains what is
/// queued) or the channel closes; flushes whenever the channel is empty.
pub(crate) async fn run(
    mut log: AuditLog,
    mut rx: broadcast::Receiver<AuthEvent>,
    mut halt: watch::Receiver<bool>,
    now: impl Fn() -> DateTime<Utc> + Send,
) {
    loop {
        let first = tokio::select! {
            biased;
            r = rx.recv() => r,
            _ = halt.wait_for(|h| *h) => {
                drain(&mut log, &mut rx, &now);
                flush(&mut log);
                return;
            }
        };
        let closed = matches!(first, Err(broadcast::error::RecvError::Closed));
        if !closed {
            write(&mut log, first, &now);
            drain(&mut log, &mut rx, &now);
        }
        flush(&mut log);
        if closed {
            return;
        }
    }
}

fn drain(
    log: &mut AuditLog,
    rx: &mut broadcast::Receiver<AuthEvent>,
    now: &impl Fn() -> DateTime<Utc>,
) {
    loop {
        match rx.try_recv() {
            Ok(event) => write(log, Ok(event), now),
            Err(broadcast::error::TryRecvError::Lagged(n)) => {
                write(log, Err(broadcast::error::RecvError::Lagged(n)), now);
            }
            Err(_) => return,
        }
    }
}

fn write(
    log: &mut AuditLog,
    received: Result<AuthEvent, broadcast::error::RecvError>,
    now: &impl Fn() -> DateTime<Utc>,
) {
    let record = match received {
        Ok(event) => record(&event, now()),
        Err(broadcast::error::RecvError::Lagged(n)) => lagged(n, now()),
        Err(broadcast::error::RecvError::Closed) => return,
    };
    if let Err(e) = log.append(&record) {
        tracing::error!(path = %log.path().display(), %e, "cannot write the audit log");
    }
}

fn flush(log: &mut AuditLog) {
    if let Err(e) = log.flush() {
        tracing::error!(path = %log.path().display(), %e, "cannot write the audit log");
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use latch_auth::ThrottleKey;
    use latch_models::{RefreshTokenId, TokenType, UserId};

    use super::*;

    fn ts() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 5).unwrap()
    }

    fn config(max_bytes: u64, keep: usize) -> AuditConfig {
        AuditConfig {
            enabled: true,
            max_bytes,
            keep,
        }
    }

    fn user() -> UserId {
        UserId::random()
    }

    #[test]
    fn records_have_the_documented_shape_and_no_secret() {
        let uid = user();
        let tid = RefreshTokenId::random();
        let r = record(
            &AuthEvent::RefreshTokenCreated {
                user_id: uid.clone(),
                refresh_token_id: tid.clone(),
                token_type: TokenType::LongLivedAccessToken,
                client_id: None,
                client_name: Some("ci".into()),
            },
            ts(),
        );
        let keys: Vec<&str> = r.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            [
                "ts",
                "event",
                "user_id",
                "refresh_token_id",
                "token_type",
                "client_id",
                "client_name",
            ]
        );
        assert_eq!(r["ts"], "2026-01-02T03:04:05.000Z");
        assert_eq!(r["event"], "refresh_token_created");
        assert_eq!(r["user_id"], uid.to_string());
        assert_eq!(r["refresh_token_id"], tid.to_string());
        assert_eq!(r["client_name"], "ci");

        let r = record(
            &AuthEvent::LoginFailed {
                username: Some("Bob".into()),
                provider_type: "homeassistant".into(),
                source: Some("10.0.0.1".parse().unwrap()),
                reason: "invalid_auth".into(),
            },
            ts(),
        );
        assert_eq!(
            r,
            json!({"ts": "2026-01-02T03:04:05.000Z", "event": "login_failed", "username": "Bob",
                   "provider_type": "homeassistant", "source": "10.0.0.1", "reason": "invalid_auth"})
        );
        let r = record(
            &AuthEvent::LockoutStarted {
                key: ThrottleKey::username("Bob"),
                until: ts(),
            },
            ts(),
        );
        assert_eq!(r["key"], "username:bob");
        assert_eq!(r["until"], "2026-01-02T03:04:05.000Z");
        for event in [
            AuthEvent::UserAdded { user_id: user() },
            AuthEvent::LoginSucceeded {
                user_id: user(),
                provider_type: "homeassistant".into(),
                source: None,
            },
        ] {
            let text = record(&event, ts()).to_string();
            for secret in ["password", "token\"", "secret", "code", "hash", "jwt"] {
                assert!(!text.contains(secret), "{text}");
            }
        }
    }

    fn lines(path: &Path) -> Vec<Value> {
        std::fs::read_to_string(path)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    #[test]
    fn rotation_shifts_files_and_keeps_at_most_keep() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = AuditLog::open(dir.path(), &config(200, 2)).unwrap();
        for i in 0..40 {
            log.append(&json!({"event": "n", "i": i})).unwrap();
            log.flush().unwrap();
        }
        let base = dir.path().join(AUDIT_FILE);
        let one = dir.path().join("audit.log.1");
        let two = dir.path().join("audit.log.2");
        assert!(!dir.path().join("audit.log.3").exists());
        for p in [&base, &one, &two] {
            assert!(
                std::fs::metadata(p).unwrap().len() <= 250,
                "{}",
                p.display()
            );
        }
        // Newest in audit.log, older in .1, oldest kept in .2, in order, none repeated.
        let all: Vec<i64> = [&two, &one, &base]
            .into_iter()
            .flat_map(|p| lines(p))
            .map(|v| v["i"].as_i64().unwrap())
            .collect();
        assert_eq!(*all.last().unwrap(), 39);
        assert!(all.windows(2).all(|w| w[1] == w[0] + 1), "{all:?}");
        assert!(all[0] > 0, "the oldest lines were removed");
    }

    #[test]
    fn keep_zero_discards_the_full_file() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = AuditLog::open(dir.path(), &config(10, 0)).unwrap();
        log.append(&json!({"i": 1, "pad": "xxxxxxxxxxxx"})).unwrap();
        log.flush().unwrap();
        log.append(&json!({"i": 2})).unwrap();
        log.flush().unwrap();
        assert!(!dir.path().join("audit.log.1").exists());
        assert!(dir.path().join(AUDIT_FILE).exists());
    }

    #[cfg(unix)]
    #[test]
    fn the_file_is_private_and_a_symlink_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let log = AuditLog::open(dir.path(), &config(100, 1)).unwrap();
        let mode = std::fs::metadata(log.path()).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        drop(log);

        let other = tempfile::tempdir().unwrap();
        let target = other.path().join("target");
        std::fs::write(&target, "").unwrap();
        std::fs::remove_file(dir.path().join(AUDIT_FILE)).unwrap();
        std::os::unix::fs::symlink(&target, dir.path().join(AUDIT_FILE)).unwrap();
        let err = AuditLog::open(dir.path(), &config(100, 1)).unwrap_err();
        assert!(err.to_string().contains("symlink"), "{err}");
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "");
    }

    #[tokio::test]
    async fn the_task_writes_lagged_and_drains_at_halt() {
        let dir = tempfile::tempdir().unwrap();
        let log = AuditLog::open(dir.path(), &config(1 << 20, 1)).unwrap();
        let (tx, rx) = broadcast::channel(2);
        for _ in 0..4 {
            tx.send(AuthEvent::UserAdded { user_id: user() }).unwrap();
        }
        let (halt, halt_rx) = watch::channel(true);
        run(log, rx, halt_rx, ts).await;
        drop(halt);
        let got = lines(&dir.path().join(AUDIT_FILE));
        let names: Vec<&str> = got.iter().map(|v| v["event"].as_str().unwrap()).collect();
        assert_eq!(names, ["audit_lagged", "user_added", "user_added"]);
        assert_eq!(got[0]["missed"], 2);
    }
}
