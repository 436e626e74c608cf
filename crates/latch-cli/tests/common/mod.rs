//! The built `latch` binary against a real daemon, run in-process from latch-daemon's
//! library in a temporary home.
#![allow(dead_code, unreachable_pub)]

use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{SystemTime, UNIX_EPOCH};

use latch_daemon::{DaemonConfig, DaemonHandle, DaemonOptions};

pub const LATCH: &str = env!("CARGO_BIN_EXE_latch");

/// A daemon on its own runtime, in its own temporary home; stopped and removed on drop.
pub struct Daemon {
    runtime: tokio::runtime::Runtime,
    handle: Option<DaemonHandle>,
    home: tempfile::TempDir,
}

impl Daemon {
    pub fn start() -> Self {
        Self::start_with(DaemonConfig {
            shutdown_grace_secs: 2,
            ..DaemonConfig::default()
        })
    }

    /// A daemon configured by `latch.toml` text.
    pub fn start_with_toml(text: &str) -> Self {
        let config = DaemonConfig::from_toml(text, Path::new("latch.toml")).unwrap();
        Self::start_with(config)
    }

    pub fn start_with(config: DaemonConfig) -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let home = tempfile::tempdir().unwrap();
        let handle = runtime
            .block_on(latch_daemon::start(DaemonOptions::new(home.path(), config)))
            .unwrap();
        Self {
            runtime,
            handle: Some(handle),
            home,
        }
    }

    pub fn home(&self) -> &Path {
        self.home.path()
    }

    /// `latch --home <home> ARGS…`, with the client variables cleared.
    pub fn latch(&self, args: &[&str]) -> Command {
        latch_in(self.home(), args)
    }

    /// Runs `latch ARGS…` with `stdin` piped in.
    pub fn run(&self, args: &[&str], stdin: &str) -> Run {
        run(self.latch(args), stdin)
    }

    /// Onboards the owner `paulus` with password `correct horse battery`.
    pub fn onboard(&self) {
        let run = self.run(
            &["onboard", "--name", "Paulus", "--username", "paulus"],
            "correct horse battery\ncorrect horse battery\n",
        );
        run.assert_code(0);
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(handle) = self.handle.take() {
            let _ = self.runtime.block_on(handle.shutdown());
        }
    }
}

/// `latch --home <home> ARGS…` without a daemon fixture.
pub fn latch_in(home: &Path, args: &[&str]) -> Command {
    let mut command = Command::new(LATCH);
    command
        .arg("--home")
        .arg(home)
        .args(args)
        .env_remove("LATCH_HOME")
        .env_remove("LATCH_SOCKET")
        .env_remove("LATCH_TOKEN_FILE")
        .env_remove("RUST_LOG");
    command
}

/// What a run of `latch` produced.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    #[track_caller]
    pub fn assert_code(&self, code: i32) -> &Self {
        assert_eq!(
            self.code, code,
            "exit code\n--- stdout\n{}\n--- stderr\n{}",
            self.stdout, self.stderr
        );
        self
    }

    #[track_caller]
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}):\n{}", self.stdout))
    }
}

pub fn run(mut command: Command, stdin: &str) -> Run {
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The child may exit before reading everything (e.g. on a usage error).
    let _ = child.stdin.take().unwrap().write_all(stdin.as_bytes());
    from_output(child.wait_with_output().unwrap())
}

pub fn from_output(output: Output) -> Run {
    Run {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8(output.stdout).unwrap(),
        stderr: String::from_utf8(output.stderr).unwrap(),
    }
}

/// The TOTP code of a base32 secret at a Unix time (RFC 6238, computed by totp-rs).
pub fn totp_at(secret: &str, unix: u64) -> String {
    let key = totp_rs::Secret::try_from_base32(secret).unwrap();
    let totp = totp_rs::Builder::new().with_secret(key).build().unwrap();
    totp.generate(unix).to_string()
}

pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// The `secret=` parameter of an `otpauth://` URI somewhere in `text`.
pub fn otpauth_secret(text: &str) -> Option<String> {
    let uri = &text[text.find("otpauth://")?..];
    let query = &uri[uri.find('?')? + 1..];
    query
        .split(['&', ' ', '\n'])
        .find_map(|pair| pair.strip_prefix("secret="))
        .map(str::to_owned)
}
