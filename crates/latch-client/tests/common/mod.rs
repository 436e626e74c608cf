//! A real latchd, run in-process from latch-daemon's library in a temporary home.
#![allow(dead_code, unreachable_pub)]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use latch_client::{Client, ClientOptions};
use latch_daemon::{DaemonConfig, DaemonHandle, DaemonOptions};

/// A daemon in its own temporary home (removed on drop).
pub struct TestDaemon {
    pub handle: Option<DaemonHandle>,
    pub home: tempfile::TempDir,
}

impl TestDaemon {
    pub async fn start() -> Self {
        let home = tempfile::tempdir().unwrap();
        let handle = start_in(home.path()).await;
        Self {
            handle: Some(handle),
            home,
        }
    }

    pub fn home(&self) -> &Path {
        self.home.path()
    }

    pub fn options(&self) -> ClientOptions {
        ClientOptions::for_home(self.home())
    }

    pub async fn client(&self) -> Client {
        Client::connect_with(self.options()).await.unwrap()
    }

    /// Stops the daemon and waits until it has stopped.
    pub async fn stop(&mut self) {
        if let Some(handle) = self.handle.take() {
            handle.shutdown().await.unwrap();
        }
    }

    /// Starts a new daemon in the same home (after [`TestDaemon::stop`]).
    pub async fn restart(&mut self) {
        self.stop().await;
        self.handle = Some(start_in(self.home.path()).await);
    }
}

pub async fn start_in(home: &Path) -> DaemonHandle {
    let config = DaemonConfig {
        shutdown_grace_secs: 2,
        ..DaemonConfig::default()
    };
    latch_daemon::start(DaemonOptions::new(home, config))
        .await
        .unwrap()
}

/// Polls `check` until it returns `Some`, failing after `within`.
pub async fn eventually<T, F, Fut>(within: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + within;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::task::yield_now().await;
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

pub fn token_path(home: &Path) -> PathBuf {
    home.join("session-token")
}
