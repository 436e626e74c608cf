//! The audit log: what the daemon writes to `<home>/audit.log`, its mode, and a symlink
//! planted at its path.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{Client, OWNER_PASSWORD, config, home, start};
use latch_daemon::{AUDIT_FILE, DaemonError, DaemonOptions};
use serde_json::Value;

fn audit_lines(home: &std::path::Path) -> Vec<Value> {
    std::fs::read_to_string(home.join(AUDIT_FILE))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logins_and_user_changes_are_audited_without_secrets() {
    let home = home();
    let daemon = start(home.path(), config(4, "")).await;
    let mut client = Client::to(&daemon).await;
    let owner = client.onboard("owner", OWNER_PASSWORD).await;
    let flow = client.login_start().await;
    client
        .ok(Client::login_continue(&flow, "Owner", "wrong password"))
        .await;
    let tokens = client.login("owner", OWNER_PASSWORD).await;
    let created = client.create_user("Robot").await;
    daemon.shutdown().await.unwrap();

    let text = std::fs::read_to_string(home.path().join(AUDIT_FILE)).unwrap();
    assert!(!text.contains(OWNER_PASSWORD), "{text}");
    assert!(!text.contains("wrong password"), "{text}");
    assert!(!text.contains(tokens.refresh_token.expose()), "{text}");
    assert!(!text.contains(tokens.access_token.expose()), "{text}");

    let lines = audit_lines(home.path());
    for line in &lines {
        let ts = line["ts"].as_str().unwrap();
        assert!(
            chrono::DateTime::parse_from_rfc3339(ts).is_ok() && ts.ends_with('Z'),
            "{line}"
        );
    }
    let find = |event: &str| {
        lines
            .iter()
            .filter(|l| l["event"] == event)
            .cloned()
            .collect::<Vec<_>>()
    };
    let failed = find("login_failed");
    assert_eq!(failed.len(), 1, "{lines:?}");
    assert_eq!(failed[0]["username"], "Owner");
    assert_eq!(failed[0]["reason"], "invalid_auth");
    assert_eq!(failed[0]["provider_type"], "homeassistant");
    assert_eq!(failed[0]["source"], "127.0.0.1");
    let succeeded = find("login_succeeded");
    assert_eq!(succeeded.len(), 1, "{lines:?}");
    assert_eq!(succeeded[0]["user_id"], owner.id.as_str());
    let added: Vec<_> = find("user_added")
        .into_iter()
        .map(|l| l["user_id"].as_str().unwrap().to_owned())
        .collect();
    assert!(added.contains(&owner.id), "{lines:?}");
    assert!(added.contains(&created.id), "{lines:?}");
    assert!(
        find("refresh_token_created")
            .iter()
            .any(|l| l["user_id"] == owner.id.as_str()
                && l["refresh_token_id"] == tokens.refresh_token_id.as_str()
                && l["token_type"] == "normal"),
        "{lines:?}"
    );

    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(home.path().join(AUDIT_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disabled_audit_writes_nothing() {
    let home = home();
    let daemon = start(home.path(), config(4, "[audit]\nenabled = false\n")).await;
    let mut client = Client::to(&daemon).await;
    client.onboard("owner", OWNER_PASSWORD).await;
    daemon.shutdown().await.unwrap();
    assert!(!home.path().join(AUDIT_FILE).exists());
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_symlink_at_the_audit_log_stops_the_start() {
    let home = home();
    let elsewhere = tempfile::tempdir().unwrap();
    let target = elsewhere.path().join("victim");
    std::fs::write(&target, "untouched").unwrap();
    std::os::unix::fs::symlink(&target, home.path().join(AUDIT_FILE)).unwrap();

    let err = latch_daemon::start(DaemonOptions::new(home.path(), config(4, "")))
        .await
        .unwrap_err();
    assert!(matches!(err, DaemonError::Audit { .. }), "{err:?}");
    let message = err.to_string();
    assert!(
        message.contains("audit.log") && message.contains("symlink"),
        "{message}"
    );
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "untouched");
    // Nothing is left running: the home can be used once the symlink is gone.
    std::fs::remove_file(home.path().join(AUDIT_FILE)).unwrap();
    let daemon = start(home.path(), config(4, "")).await;
    daemon.shutdown().await.unwrap();
}
