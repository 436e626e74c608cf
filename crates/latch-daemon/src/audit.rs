//! The audit log: every [`AuthEvent`] appended as one JSON object per line to
//! `<home>/audit.log`, with size-based rotation.
//!
//! - **Format.** `{"ts": "<RFC 3339 UTC>", "event": "<name>", ...}` followed by every
//!   field of the event, as the event serialises itself (see [`AuthEvent`]): ids, token
//!   type, client id and name, the username as typed (escaped, at most 255 bytes),
//!   provider type, source address, reason, lockout key and end, credential and module
//!   ids. Nothing is listed here by hand, so a new kind of event is logged whole. Events
//!   carry no secret, and nothing here adds one.
//! - **Never silently short.** The writer runs on a thread of its own ([`spawn`]), so
//!   its file IO never runs on (or waits for) a runtime worker and it keeps up with the
//!   event stream; if it still falls more than the event buffer behind, it writes
//!   `{"event": "audit_lagged", "missed": N, "missed_total": M}` with the exact number of
//!   events it lost, and logs a warning.
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
use tokio::sync::{broadcast, oneshot, watch};

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

/// The JSON record of `event` at `ts`: the time, then the event as it serialises
/// itself (its name under `"event"`, then each field). Events carry no secret.
pub(crate) fn record(event: &AuthEvent, ts: DateTime<Utc>) -> Value {
    let mut m = Map::new();
    m.insert("ts".into(), timestamp(ts).into());
    match serde_json::to_value(event) {
        Ok(Value::Object(fields)) => m.extend(fields),
        other => {
            // Not expected: every event serialises to an object. Keep the name.
            m.insert("event".into(), event.name().into());
            let why = match other {
                Err(e) => e.to_string(),
                Ok(_) => "not an object".to_owned(),
            };
            m.insert(
                "error".into(),
                format!("cannot serialise the event: {why}").into(),
            );
        }
    }
    Value::Object(m)
}

fn lagged(missed: u64, missed_total: u64, ts: DateTime<Utc>) -> Value {
    json!({"ts": timestamp(ts), "event": "audit_lagged", "missed": missed,
           "missed_total": missed_total})
}

/// The audit log's writer, running on its own thread.
#[derive(Debug)]
pub(crate) struct Auditor {
    done: oneshot::Receiver<()>,
}

impl Auditor {
    /// Waits until the writer has drained what was queued at `halt`, flushed and
    /// stopped.
    pub(crate) async fn finish(self) {
        let _ = self.done.await;
    }
}

/// Starts the writer on a thread of its own (`latch-audit`): it receives from `rx`,
/// writes, and stops at `halt` (after draining) or when the channel closes. Its file IO
/// never runs on a runtime worker. Must be called inside a Tokio runtime.
///
/// # Errors
/// The thread cannot be started.
pub(crate) fn spawn(
    log: AuditLog,
    rx: broadcast::Receiver<AuthEvent>,
    halt: watch::Receiver<bool>,
    now: impl Fn() -> DateTime<Utc> + Send + 'static,
) -> io::Result<Auditor> {
    let runtime = tokio::runtime::Handle::current();
    let (done, done_rx) = oneshot::channel();
    std::thread::Builder::new()
        .name("latch-audit".into())
        .spawn(move || {
            // Only channel receives are awaited here (no IO or timer driver is needed),
            // so this works beside either runtime flavour.
            runtime.block_on(run(log, rx, halt, now));
            let _ = done.send(());
        })?;
    Ok(Auditor { done: done_rx })
}

/// Writes what `rx` receives to `log` until `halt` turns true (then drains what is
/// queued) or the channel closes; flushes whenever the channel is empty. Blocking file
/// IO: run it where that blocks no runtime worker ([`spawn`]).
pub(crate) async fn run(
    mut log: AuditLog,
    mut rx: broadcast::Receiver<AuthEvent>,
    mut halt: watch::Receiver<bool>,
    now: impl Fn() -> DateTime<Utc> + Send,
) {
    let mut writer = Writer {
        log: &mut log,
        now: &now,
        missed_total: 0,
    };
    loop {
        let first = tokio::select! {
            biased;
            r = rx.recv() => r,
            _ = halt.wait_for(|h| *h) => {
                writer.drain(&mut rx);
                writer.flush();
                return;
            }
        };
        let closed = matches!(first, Err(broadcast::error::RecvError::Closed));
        if !closed {
            writer.write(first);
            writer.drain(&mut rx);
        }
        writer.flush();
        if closed {
            return;
        }
    }
}

struct Writer<'a, F> {
    log: &'a mut AuditLog,
    now: &'a F,
    missed_total: u64,
}

impl<F: Fn() -> DateTime<Utc>> Writer<'_, F> {
    fn drain(&mut self, rx: &mut broadcast::Receiver<AuthEvent>) {
        loop {
            match rx.try_recv() {
                Ok(event) => self.write(Ok(event)),
                Err(broadcast::error::TryRecvError::Lagged(n)) => {
                    self.write(Err(broadcast::error::RecvError::Lagged(n)));
                }
                Err(_) => return,
            }
        }
    }

    fn write(&mut self, received: Result<AuthEvent, broadcast::error::RecvError>) {
        let record = match received {
            Ok(event) => record(&event, (self.now)()),
            Err(broadcast::error::RecvError::Lagged(n)) => {
                self.missed_total = self.missed_total.saturating_add(n);
                tracing::warn!(
                    missed = n,
                    missed_total = self.missed_total,
                    "the audit log fell behind the events; the count is in the log"
                );
                lagged(n, self.missed_total, (self.now)())
            }
            Err(broadcast::error::RecvError::Closed) => return,
        };
        if let Err(e) = self.log.append(&record) {
            tracing::error!(path = %self.log.path().display(), %e, "cannot write the audit log");
        }
    }

    fn flush(&mut self) {
        if let Err(e) = self.log.flush() {
            tracing::error!(path = %self.log.path().display(), %e, "cannot write the audit log");
        }
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
        assert_eq!(got[0]["missed_total"], 2);
    }

    /// Every kind of event is logged with every field it has, as it serialises itself:
    /// a kind added later needs no change here.
    #[test]
    fn every_field_of_every_kind_is_logged() {
        let uid = user();
        let events = [
            AuthEvent::PasswordChanged {
                user_id: uid.clone(),
                credential_id: "c1".into(),
                source: Some("10.0.0.7".parse().unwrap()),
            },
            AuthEvent::PasswordSet {
                user_id: uid.clone(),
                credential_id: "c1".into(),
            },
            AuthEvent::UsernameChanged {
                user_id: uid.clone(),
                credential_id: "c1".into(),
                username: "annie".into(),
            },
            AuthEvent::CredentialRemoved {
                user_id: Some(uid.clone()),
                credential_id: "c1".into(),
                provider_type: "homeassistant".into(),
            },
            AuthEvent::MfaEnabled {
                user_id: uid.clone(),
                module_id: "totp".into(),
            },
            AuthEvent::MfaDisabled {
                user_id: uid.clone(),
                module_id: "totp".into(),
            },
            AuthEvent::RecoveryCodesRegenerated {
                user_id: uid.clone(),
                module_id: "totp".into(),
            },
        ];
        for event in &events {
            let r = record(event, ts());
            let mut expected = Map::new();
            expected.insert("ts".into(), "2026-01-02T03:04:05.000Z".into());
            let Value::Object(fields) = serde_json::to_value(event).unwrap() else {
                panic!()
            };
            expected.extend(fields);
            assert_eq!(r, Value::Object(expected));
            assert_eq!(r["event"], event.name());
            assert_eq!(r["user_id"], uid.to_string(), "{r}");
        }
        let r = record(&events[0], ts());
        assert_eq!(r["credential_id"], "c1");
        assert_eq!(r["source"], "10.0.0.7");
        assert_eq!(record(&events[4], ts())["module_id"], "totp");
    }

    /// The writer runs on its own thread: it writes while the runtime's only thread is
    /// blocked, which a task on that runtime could not.
    #[test]
    fn the_writer_does_not_need_a_runtime_worker() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(AUDIT_FILE);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        runtime.block_on(async {
            let log = AuditLog::open(dir.path(), &config(1 << 20, 1)).unwrap();
            let (tx, rx) = broadcast::channel(16);
            let (halt, halt_rx) = watch::channel(false);
            let auditor = spawn(log, rx, halt_rx, ts).unwrap();
            tx.send(AuthEvent::UserAdded { user_id: user() }).unwrap();
            // Block the runtime's only thread until the line is in the file.
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
            while lines(&path).is_empty() {
                assert!(
                    std::time::Instant::now() < deadline,
                    "the writer made no progress while the runtime was blocked"
                );
                std::thread::sleep(std::time::Duration::from_millis(2));
            }
            tx.send(AuthEvent::UserAdded { user_id: user() }).unwrap();
            halt.send_replace(true);
            auditor.finish().await;
        });
        assert_eq!(
            lines(&path).len(),
            2,
            "the event queued at halt was drained"
        );
    }
}
