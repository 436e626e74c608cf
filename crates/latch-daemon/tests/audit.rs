//! The audit log: what the daemon writes to `<home>/audit.log`, its mode, and a symlink
//! planted at its path.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;

use chrono::{DateTime, TimeZone, Utc};
use common::{Client, OWNER_PASSWORD, config, home, start};
use latch_daemon::{AUDIT_FILE, DaemonError, DaemonOptions};
use latch_models::FixedClock;
use latch_protocol::{ErrorCode, Request, Response, Sensitive, SetupFlowState};
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

fn totp_code(secret: &str, at: DateTime<Utc>) -> String {
    let key = totp_rs::Secret::try_from_base32(secret).unwrap();
    let totp = totp_rs::Builder::new().with_secret(key).build().unwrap();
    totp.generate(u64::try_from(at.timestamp()).unwrap())
        .to_string()
}

/// Password set and changed, username changed, credential added and removed, MFA
/// enabled and disabled, recovery codes regenerated, and a wrong current password all
/// reach the audit log with their fields, and no secret does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn account_changes_are_audited_with_their_fields() {
    let home = home();
    let t0 = Utc.with_ymd_and_hms(2030, 5, 1, 12, 0, 0).unwrap();
    let mut options = DaemonOptions::new(home.path(), config(4, ""));
    options.clock = Some(Arc::new(FixedClock::new(t0)));
    let daemon = latch_daemon::start(options).await.unwrap();
    let mut client = Client::to(&daemon).await;
    client.onboard("owner", OWNER_PASSWORD).await;
    let anne = client.create_user("Anne").await;
    client.add_password(&anne.id, "anne", "anne's first").await;
    client
        .ok(Request::ChangePassword {
            user_id: anne.id.clone(),
            new_password: Sensitive::from("set by the operator"),
        })
        .await;
    let tokens = client.login("anne", "set by the operator").await;
    let from: std::net::IpAddr = "192.168.7.8".parse().unwrap();
    let wrong = client
        .call(Request::ChangeOwnPasswordFrom {
            access_token: tokens.access_token.clone(),
            current_password: Sensitive::from("a wrong guess"),
            new_password: Sensitive::from("anne's own"),
            remote_ip: Some(from),
        })
        .await
        .unwrap_err();
    assert_eq!(wrong.code, ErrorCode::InvalidAuth);
    client
        .ok(Request::ChangeOwnPasswordFrom {
            access_token: tokens.access_token.clone(),
            current_password: Sensitive::from("set by the operator"),
            new_password: Sensitive::from("anne's own"),
            remote_ip: Some(from),
        })
        .await;
    client
        .ok(Request::ChangeUsername {
            user_id: anne.id.clone(),
            username: "annie".into(),
        })
        .await;
    let Response::SetupFlow(SetupFlowState::Form(form)) = client
        .ok(Request::MfaSetupStart {
            user_id: anne.id.clone(),
            module_id: "totp".into(),
        })
        .await
    else {
        panic!("no setup form")
    };
    let secret = form.placeholder("code").unwrap().expose().to_owned();
    client
        .ok(Request::MfaSetupContinue {
            flow_id: form.flow_id.clone(),
            input: vec![("code".into(), Sensitive::new(totp_code(&secret, t0)))],
        })
        .await;
    let Response::RecoveryCodes(codes) = client
        .ok(Request::RegenerateRecoveryCodes {
            user_id: anne.id.clone(),
            module_id: "totp".into(),
        })
        .await
    else {
        panic!("no codes")
    };
    client
        .ok(Request::MfaDisable {
            user_id: anne.id.clone(),
            module_id: "totp".into(),
        })
        .await;
    let credential = match client
        .ok(Request::GetUser {
            user_id: anne.id.clone(),
        })
        .await
    {
        Response::User(u) => u.credentials[0].id.clone(),
        other => panic!("{other:?}"),
    };
    client
        .ok(Request::RemoveCredential {
            credential_id: credential.clone(),
        })
        .await;
    daemon.shutdown().await.unwrap();

    let text = std::fs::read_to_string(home.path().join(AUDIT_FILE)).unwrap();
    for secret in [
        "anne's first",
        "set by the operator",
        "anne's own",
        "a wrong guess",
        secret.as_str(),
        codes[0].expose(),
        tokens.access_token.expose(),
    ] {
        assert!(!text.contains(secret), "{secret} in {text}");
    }
    let lines = audit_lines(home.path());
    let uid = anne.id.as_str();
    // Anne's one line of this kind (the owner's onboarding adds a credential too).
    let one = |event: &str| {
        let found: Vec<&Value> = lines
            .iter()
            .filter(|l| l["event"] == event && (l["user_id"].is_null() || l["user_id"] == uid))
            .collect();
        assert_eq!(found.len(), 1, "{event}: {lines:#?}");
        found[0].clone()
    };
    let cid = credential.as_str();
    let added = one("credential_added");
    assert_eq!(
        (
            &added["user_id"],
            &added["credential_id"],
            &added["provider_type"]
        ),
        (
            &Value::from(uid),
            &Value::from(cid),
            &Value::from("homeassistant")
        )
    );
    let set = one("password_set");
    assert_eq!(
        (&set["user_id"], &set["credential_id"]),
        (&Value::from(uid), &Value::from(cid))
    );
    let changed = one("password_changed");
    assert_eq!(changed["user_id"], uid);
    assert_eq!(changed["credential_id"], cid);
    assert_eq!(changed["source"], "192.168.7.8");
    let failed = one("login_failed");
    assert_eq!(failed["username"], "anne");
    assert_eq!(failed["reason"], "invalid_auth");
    assert_eq!(failed["source"], "192.168.7.8");
    let renamed = one("username_changed");
    assert_eq!(renamed["username"], "annie");
    assert_eq!(renamed["credential_id"], cid);
    for event in ["mfa_enabled", "recovery_codes_regenerated", "mfa_disabled"] {
        let line = one(event);
        assert_eq!(
            (&line["user_id"], &line["module_id"]),
            (&Value::from(uid), &Value::from("totp"))
        );
    }
    let removed = one("credential_removed");
    assert_eq!(removed["credential_id"], cid);
    assert_eq!(removed["user_id"], uid);
    assert!(lines.iter().all(|l| l["event"] != "audit_lagged"));
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
