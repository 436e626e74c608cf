//! Home Assistant compatibility, both ways: files Home Assistant wrote load with every
//! field, and what latch writes is byte-for-byte what Home Assistant writes.
//! Fixtures: `tests/fixtures/ha/generate.py`.
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

mod common;

use std::fs;

use chrono::{DateTime, Utc};
use common::{copy_fixture, dir_with_auth, fixture_file, open, read, read_json};
use latch_models::{
    GROUP_ID_ADMIN, GROUP_ID_READ_ONLY, GROUP_ID_USER, Group, Secret, TokenType, User, UserId,
    permissions::Policy,
};
use latch_store::{Change, Store, StoreError, StoreFile, StoreOptions};
use serde_json::{Value, json};

const OWNER: &str = "72122ce96bfec66e2396d2e25225d70a";
const SUPERVISOR: &str = "09348c20a019be0318387c08df7a783d";
const CONTENT: &str = "9a0364b9e99bb480dd25e1f0284c8555";
const TABLET: &str = "c4e0ba5422383082417c5f96ab121575";
const GUEST: &str = "084e0343a0486ff05530df6c705c8bb4";
const CLOUD: &str = "a1234b3161b4fbfdfb96dd576b65bbea";
const JURGEN: &str = "92b420a596dac7f950d12aaafb65e155";
const LIGHTS: &str = "55f4eb321cc1b8cf0be2cb5c59fa1430";
const CRED_OWNER: &str = "c061234e9112980d713dde39235244b9";
const CRED_OWNER_CLI: &str = "a335394343d4652c798b0aa60b1c5523";
const CRED_TABLET: &str = "f307bc89c3b1bfd27915e3bd13c2f356";
const CRED_JURGEN: &str = "2dadfcf2275a52e0e14ceebdb90d74e6";
const REMOVED_USER: &str = "193055d5376f1b9b8e42f9fa23142651";
const T_BROWSER: &str = "a65bdaf74fe28390d317a12732204aef";
const T_GRAFANA: &str = "2b3581ee30c85e389bb708041d20af54";
const T_SUPERVISOR: &str = "53ff1651a30af106bc3a5ac7dbe80c9f";
const T_CONTENT: &str = "19e1cabccb9d63d5e8663a5e697c8eab";
const T_TABLET: &str = "376e635a5a41e922d1185db0415334bc";
const T_CLOUD: &str = "aac40c81fc6ea7cf40c37b35f534474f";
const T_JURGEN: &str = "9c8f03dbca36fdd05ee0a45430f233cc";
const BROWSER_TOKEN: &str = "90ac3a6f630fc47de9edc7dd7740703f4862d315d9bfd1989240b66db3dd4be1276360b34111e8b7a5adb0bad7ba9975ed4b670afba3dd52dd8f064f93834bb6";
const BROWSER_JWT_KEY: &str = "c3039212fa492deffda9a480ecff30be917339be32bc35e8bb1abb6b9c4a6e20c1df593bf60af91d09072568c4c8f66392178c9c2bbf2632b09fa3a633fd6557";

const HA_FILES: [StoreFile; 3] = [StoreFile::Auth, StoreFile::HaProvider, StoreFile::Totp];

fn utc(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().to_utc()
}

fn ids<'a>(it: impl IntoIterator<Item = &'a str>) -> Vec<String> {
    it.into_iter().map(str::to_owned).collect()
}

// ----- Home Assistant → latch -----

#[test]
fn full_fixture_users_and_groups_load_with_every_field() {
    let dir = copy_fixture("full");
    let store = open(dir.path());

    let users = store.users();
    assert_eq!(
        users.iter().map(|u| u.id.to_string()).collect::<Vec<_>>(),
        ids([OWNER, SUPERVISOR, CONTENT, TABLET, GUEST, CLOUD, JURGEN])
    );
    let user = |i: usize| -> &User { &users[i] };
    let owner = user(0);
    assert_eq!(owner.name.as_deref(), Some("Paulus"));
    assert!(owner.is_owner && owner.is_active && !owner.system_generated && !owner.local_only);
    assert_eq!(owner.group_ids, [GROUP_ID_ADMIN.into()]);
    assert!(owner.is_admin());
    let supervisor = user(1);
    assert!(supervisor.system_generated && !supervisor.is_owner && supervisor.is_active);
    assert_eq!(user(2).group_ids, [GROUP_ID_READ_ONLY.into()]);
    let tablet = user(3);
    assert!(tablet.local_only && !tablet.is_admin());
    assert_eq!(tablet.group_ids, [LIGHTS.into(), GROUP_ID_USER.into()]);
    let guest = user(4);
    assert_eq!(guest.name, None);
    assert!(!guest.is_active);
    assert!(user(5).local_only && user(5).system_generated);
    assert_eq!(user(6).name.as_deref(), Some("Jürgen «🏠»"));

    let groups = store.groups();
    assert_eq!(
        groups.iter().map(|g| g.id.to_string()).collect::<Vec<_>>(),
        ids([GROUP_ID_ADMIN, GROUP_ID_USER, GROUP_ID_READ_ONLY, LIGHTS])
    );
    assert_eq!(groups[0].policy, Policy::all_entities());
    assert_eq!(groups[1].policy, Policy::all_entities());
    assert_eq!(groups[2].policy, Policy::read_only());
    assert!(groups[..3].iter().all(|g| g.system_generated));
    let lights = &groups[3];
    assert_eq!(lights.name.as_deref(), Some("Lights only"));
    assert!(!lights.system_generated);
    assert_eq!(
        serde_json::to_value(&lights.policy).unwrap(),
        json!({"entities": {"domains": {"light": true}, "entity_ids": {"switch.kitchen": {"read": true}}}})
    );
}

#[test]
fn full_fixture_credentials_load_with_every_field() {
    let dir = copy_fixture("full");
    let store = open(dir.path());
    let creds = store.credentials();
    assert_eq!(
        creds.iter().map(|c| c.id.to_string()).collect::<Vec<_>>(),
        ids([CRED_OWNER, CRED_OWNER_CLI, CRED_TABLET, CRED_JURGEN])
    );
    let c = &creds[1];
    assert_eq!(c.user_id, Some(OWNER.into()));
    assert_eq!(c.auth_provider_type, "command_line");
    assert_eq!(c.auth_provider_id.as_deref(), Some("cli"));
    assert_eq!(c.data_str("username"), Some("paulus"));
    assert!(
        creds.iter().all(|c| !c.is_new),
        "loaded credentials are not new"
    );
    assert_eq!(creds[0].auth_provider_id, None);
    assert_eq!(creds[2].data_str("user_id"), Some(TABLET));
    assert_eq!(creds[3].data_str("username"), Some("jürgen"));
    assert_eq!(
        store
            .credentials_of(OWNER)
            .iter()
            .map(|c| c.id.to_string())
            .collect::<Vec<_>>(),
        ids([CRED_OWNER, CRED_OWNER_CLI])
    );
    assert!(store.credentials_of(GUEST).is_empty());
}

#[test]
fn full_fixture_refresh_tokens_load_with_every_field() {
    let dir = copy_fixture("full");
    let store = open(dir.path());
    let all: Vec<_> = store.read(|d| d.refresh_tokens().map(|t| t.id.to_string()).collect());
    assert_eq!(
        all,
        ids([
            T_BROWSER,
            T_GRAFANA,
            T_SUPERVISOR,
            T_CONTENT,
            T_TABLET,
            T_CLOUD,
            T_JURGEN
        ])
    );

    let t = store.refresh_token(T_BROWSER).unwrap();
    assert_eq!(t.user_id, OWNER.into());
    assert_eq!(t.client_id.as_deref(), Some("http://localhost:8123/"));
    assert_eq!(
        (t.client_name.as_deref(), t.client_icon.as_deref()),
        (None, None)
    );
    assert_eq!(t.token_type, TokenType::Normal);
    assert_eq!(t.created_at, utc("2024-05-01T10:00:00.123456Z"));
    assert_eq!(t.access_token_expiration, 1800.0);
    assert_eq!(t.token, Secret::new(BROWSER_TOKEN));
    assert_eq!(t.jwt_key, Secret::new(BROWSER_JWT_KEY));
    assert_eq!(t.last_used_at, Some(utc("2024-05-02T11:00:00.000001Z")));
    assert_eq!(t.last_used_ip.as_deref(), Some("192.168.1.5"));
    assert_eq!(t.expire_at, Some(1_722_333_333.123_456));
    assert_eq!(t.credential_id, Some(CRED_OWNER.into()));
    assert_eq!(t.version.as_deref(), Some("2026.11.0"));

    let g = store.refresh_token(T_GRAFANA).unwrap();
    assert_eq!(g.token_type, TokenType::LongLivedAccessToken);
    assert_eq!(g.client_id, None);
    assert_eq!(g.client_name.as_deref(), Some("Grafana"));
    assert_eq!(g.client_icon.as_deref(), Some("mdi:chart-line"));
    assert_eq!(g.access_token_expiration, 31_536_000.0);
    assert_eq!(g.created_at, utc("2024-06-01T00:00:00Z"));
    assert_eq!((g.last_used_at, g.expire_at), (None, None));
    assert_eq!(g.credential_id, None);
    assert_eq!(g.version.as_deref(), Some("2025.4.4"));

    let s = store.refresh_token(T_SUPERVISOR).unwrap();
    assert_eq!(s.token_type, TokenType::System);
    assert_eq!(s.created_at, utc("2023-01-15T08:30:00.5Z"));
    assert_eq!(s.last_used_at, Some(utc("2024-05-03T00:00:00Z")));
    assert_eq!(store.refresh_token(T_CONTENT).unwrap().version, None);
    let tab = store.refresh_token(T_TABLET).unwrap();
    assert_eq!(tab.last_used_ip.as_deref(), Some("fd00::1"));
    assert_eq!(tab.expire_at, Some(1_730_000_000.0));
    assert_eq!(tab.credential_id, Some(CRED_TABLET.into()));
    let j = store.refresh_token(T_JURGEN).unwrap();
    assert_eq!(j.access_token_expiration, 600.0);
    assert_eq!(j.created_at, utc("2025-01-02T03:04:05.06Z"));

    // Both indexes answer.
    let by_value = store.refresh_token_by_value(BROWSER_TOKEN).unwrap();
    assert_eq!(by_value.id, T_BROWSER.into());
    assert!(store.refresh_token_by_value(&BROWSER_TOKEN[1..]).is_none());
    let user_name = store.with_refresh_token(T_TABLET, |t, u| {
        assert_eq!(t.user_id, u.id);
        u.name.clone()
    });
    assert_eq!(user_name, Some(Some("Kitchen Tablet".to_owned())));
    assert_eq!(
        store
            .refresh_tokens_of(OWNER)
            .iter()
            .map(|t| t.id.to_string())
            .collect::<Vec<_>>(),
        ids([T_BROWSER, T_GRAFANA])
    );
}

#[test]
fn full_fixture_provider_and_totp_load() {
    let dir = copy_fixture("full");
    let store = open(dir.path());
    let ha = store.ha_users();
    assert_eq!(
        ha.iter().map(|h| h.username.as_str()).collect::<Vec<_>>(),
        ["paulus", "jürgen"]
    );
    assert_eq!(
        ha[0].password,
        Secret::new(
            "JDJiJDEyJENaMU9zemtCcDVqbjNUbFdWUG1WM3VvdnhOclNCZVFsNDg2aHhCOXI1WEpMbjJ1bXh5SUlD"
        )
    );
    assert_eq!(store.ha_user("jürgen").unwrap().username, "jürgen");
    assert!(store.ha_user("Paulus").is_none(), "lookups are exact");
    assert_eq!(
        store
            .totp_users()
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>(),
        ids([OWNER, REMOVED_USER])
    );
    assert_eq!(
        store.totp_secret(OWNER),
        Some(Secret::new("JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"))
    );
    assert_eq!(store.totp_state(OWNER), None);
}

// ----- latch → Home Assistant -----

#[test]
fn encoding_the_loaded_fixture_reproduces_every_byte() {
    let dir = copy_fixture("full");
    let store = open(dir.path());
    for file in HA_FILES {
        let ours = store.read(|d| d.encode(file)).unwrap();
        assert_eq!(
            String::from_utf8(ours).unwrap(),
            String::from_utf8(fixture_file("full", file)).unwrap(),
            "{file}"
        );
    }
}

/// The fixture's state rebuilt through commits on an empty directory.
fn rebuild_through_commits(store: &Store) {
    let source = copy_fixture("full");
    let data = open(source.path()).snapshot();
    let groups: Vec<Change> = data
        .groups()
        .filter(|g| !g.system_generated)
        .cloned()
        .map(Change::PutGroup)
        .collect();
    store.commit_blocking(groups).unwrap();
    store
        .commit_blocking(data.users().cloned().map(Change::PutUser).collect())
        .unwrap();
    for c in data.credentials() {
        let mut c = c.clone();
        c.is_new = true; // as a provider hands it over; stored as not new
        store
            .commit_blocking(vec![Change::PutCredential(c)])
            .unwrap();
    }
    store
        .commit_blocking(
            data.refresh_tokens()
                .cloned()
                .map(Change::PutRefreshToken)
                .collect(),
        )
        .unwrap();
    for h in data.ha_users() {
        store
            .commit_blocking(vec![Change::PutHaUser {
                username: h.username.clone(),
                password: h.password.clone(),
            }])
            .unwrap();
    }
    // The orphaned TOTP secret: Home Assistant keeps secrets of removed users.
    let mut gone = User::new(Some("gone".into()));
    gone.id = UserId::from(REMOVED_USER);
    let mut batch = vec![Change::PutUser(gone)];
    for (user, secret) in data.totp_users() {
        batch.push(Change::PutTotpSecret {
            user_id: user.clone(),
            secret: secret.clone(),
        });
    }
    batch.push(Change::RemoveUser(UserId::from(REMOVED_USER)));
    store.commit_blocking(batch).unwrap();
}

#[test]
fn latch_writes_exactly_what_home_assistant_writes() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    rebuild_through_commits(&store);
    store.close_blocking().unwrap();
    for file in HA_FILES {
        assert_eq!(
            String::from_utf8(read(dir.path(), file)).unwrap(),
            String::from_utf8(fixture_file("full", file)).unwrap(),
            "{file}"
        );
    }
    assert!(
        !dir.path()
            .join(".storage")
            .join(StoreFile::LatchTotp.name())
            .exists(),
        "no latch TOTP state, no file"
    );
    assert_eq!(
        fs::metadata(dir.path().join(".storage/latch.journal"))
            .unwrap()
            .len(),
        0,
        "close empties the journal"
    );
}

#[test]
fn rebuilt_state_equals_loaded_state() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    rebuild_through_commits(&store);
    let fixture = copy_fixture("full");
    assert_eq!(store.snapshot(), open(fixture.path()).snapshot());
}

#[test]
fn load_then_close_leaves_home_assistant_files_byte_identical() {
    let dir = copy_fixture("full");
    let store = open(dir.path());
    let before = store.snapshot();
    store.close_blocking().unwrap();
    assert_eq!(
        store.stats().snapshot_writes,
        0,
        "nothing changed, nothing written"
    );
    for file in HA_FILES {
        assert_eq!(read(dir.path(), file), fixture_file("full", file), "{file}");
    }
    drop(store);
    assert_eq!(open(dir.path()).snapshot(), before, "load → save → load");
}

#[test]
fn changes_written_by_latch_load_back_equal() {
    let dir = copy_fixture("full");
    let store = open(dir.path());
    store
        .commit_blocking(vec![
            Change::RemoveRefreshToken(T_GRAFANA.into()),
            Change::SetTokenExpiry {
                id: T_TABLET.into(),
                expire_at: Some(1_800_000_000.25),
            },
            Change::RemoveUser(GUEST.into()),
        ])
        .unwrap();
    let expected = store.snapshot();
    store.close_blocking().unwrap();
    drop(store);
    let reopened = open(dir.path());
    assert_eq!(reopened.snapshot(), expected);
    let auth = read_json(dir.path(), StoreFile::Auth);
    let tokens = auth["data"]["refresh_tokens"].as_array().unwrap();
    assert!(tokens.iter().all(|t| t["id"] != T_GRAFANA));
    let tab = tokens.iter().find(|t| t["id"] == T_TABLET).unwrap();
    assert_eq!(tab["expire_at"], json!(1_800_000_000.25));
}

/// A Python-free check of what latch writes: layout, key order, types, encodings.
#[test]
fn structure_of_written_files() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    rebuild_through_commits(&store);
    store.close_blocking().unwrap();

    for file in HA_FILES {
        let bytes = read(dir.path(), file);
        let text = std::str::from_utf8(&bytes).unwrap();
        assert!(text.starts_with("{\n  \"version\": 1,\n  \"minor_version\": 1,\n"));
        assert!(text.ends_with('}'), "no trailing newline in {file}");
        for line in text.lines() {
            let indent = line.len() - line.trim_start_matches(' ').len();
            assert_eq!(indent % 2, 0, "two-space indentation: {line:?}");
            assert!(!line.ends_with(' '), "no trailing spaces: {line:?}");
        }
        let v: Value = serde_json::from_str(text).unwrap();
        let keys: Vec<_> = v.as_object().unwrap().keys().cloned().collect();
        assert_eq!(keys, ["version", "minor_version", "key", "data"]);
        assert_eq!(v["key"], file.name());
    }

    let auth = read_json(dir.path(), StoreFile::Auth);
    let data = auth["data"].as_object().unwrap();
    assert_eq!(
        data.keys().collect::<Vec<_>>(),
        ["users", "groups", "credentials", "refresh_tokens"]
    );
    let keys_of = |v: &Value| v.as_object().unwrap().keys().cloned().collect::<Vec<_>>();
    for u in data["users"].as_array().unwrap() {
        assert_eq!(
            keys_of(u),
            [
                "id",
                "group_ids",
                "is_owner",
                "is_active",
                "name",
                "system_generated",
                "local_only"
            ]
        );
        assert!(u["group_ids"].is_array() && u["is_owner"].is_boolean());
    }
    for g in data["groups"].as_array().unwrap() {
        let system = g["id"].as_str().unwrap().starts_with("system-");
        let expected: &[&str] = if system {
            &["id", "name"]
        } else {
            &["id", "name", "policy"]
        };
        assert_eq!(keys_of(g), expected);
    }
    for c in data["credentials"].as_array().unwrap() {
        assert_eq!(
            keys_of(c),
            [
                "id",
                "user_id",
                "auth_provider_type",
                "auth_provider_id",
                "data"
            ]
        );
    }
    for t in data["refresh_tokens"].as_array().unwrap() {
        assert_eq!(
            keys_of(t),
            [
                "id",
                "user_id",
                "client_id",
                "client_name",
                "client_icon",
                "token_type",
                "created_at",
                "access_token_expiration",
                "token",
                "jwt_key",
                "last_used_at",
                "last_used_ip",
                "expire_at",
                "credential_id",
                "version"
            ]
        );
        assert!(t["access_token_expiration"].is_f64());
        assert_eq!(t["token"].as_str().unwrap().len(), 128);
        for field in ["created_at", "last_used_at"] {
            if let Some(s) = t[field].as_str() {
                assert!(s.ends_with("+00:00"), "{s}");
                let parsed = latch_store::parse_datetime(s).unwrap();
                assert_eq!(latch_store::format_datetime(&parsed), s);
            }
        }
    }
    let text = String::from_utf8(read(dir.path(), StoreFile::Auth)).unwrap();
    assert!(text.contains("\"access_token_expiration\": 1800.0,"));
    assert!(text.contains("\"expire_at\": 1730000000.0,"));
    assert!(text.contains("\"created_at\": \"2024-06-01T00:00:00+00:00\","));
    assert!(text.contains("Jürgen «🏠»"), "UTF-8 is not escaped");
    assert!(text.contains("\"group_ids\": [\n          \"system-admin\"\n        ],"));
}

// ----- soft migration (test_auth_store.py) -----

fn assert_migrated_groups_and_users(store: &Store) {
    let groups = store.groups();
    assert_eq!(
        groups.iter().map(|g| g.id.to_string()).collect::<Vec<_>>(),
        ids([GROUP_ID_ADMIN, GROUP_ID_READ_ONLY, GROUP_ID_USER]),
        "missing system groups are added admin, read-only, users"
    );
    assert_eq!(
        groups
            .iter()
            .map(|g| g.name.clone().unwrap())
            .collect::<Vec<_>>(),
        ["Administrators", "Read Only", "Users"]
    );
    assert!(groups.iter().all(|g| g.system_generated));

    let users = store.users();
    assert_eq!(users.len(), 2);
    let (owner, system) = (&users[0], &users[1]);
    assert!(!owner.system_generated);
    assert_eq!(owner.group_ids, [GROUP_ID_ADMIN.into()]);
    let owner_tokens = store.refresh_tokens_of("user-id");
    assert_eq!(
        owner_tokens.len(),
        1,
        "the token without jwt_key is dropped"
    );
    assert_eq!(owner_tokens[0].id, "user-token-id".into());
    assert_eq!(owner_tokens[0].version.as_deref(), Some("1.2.3"));
    assert_eq!(owner_tokens[0].token_type, TokenType::Normal);
    assert!(system.system_generated);
    assert!(system.group_ids.is_empty(), "system users keep no groups");
    let system_tokens = store.refresh_tokens_of("system-id");
    assert_eq!(system_tokens.len(), 1);
    assert_eq!(system_tokens[0].id, "system-token-id".into());
    assert_eq!(system_tokens[0].version, None);
    assert_eq!(
        system_tokens[0].token_type,
        TokenType::System,
        "no token_type and no client_id: system"
    );
    assert!(store.refresh_token("hidden-because-no-jwt-id").is_none());
}

#[test]
fn loading_with_no_groups_makes_users_admins() {
    let dir = copy_fixture("migrate_no_groups");
    assert_migrated_groups_and_users(&open(dir.path()));
}

#[test]
fn loading_an_all_access_group_without_policy() {
    let dir = copy_fixture("migrate_all_access");
    let store = open(dir.path());
    assert_migrated_groups_and_users(&store);
    assert!(store.group("abcd-all-access").is_none());
}

#[test]
fn a_migrated_file_is_rewritten_in_the_current_format() {
    let dir = copy_fixture("migrate_no_groups");
    let store = open(dir.path());
    store.close_blocking().unwrap();
    let auth = read_json(dir.path(), StoreFile::Auth);
    assert_eq!(auth["minor_version"], 1);
    assert_eq!(
        auth["data"]["groups"],
        json!([
            {"id": "system-admin", "name": "Administrators"},
            {"id": "system-read-only", "name": "Read Only"},
            {"id": "system-users", "name": "Users"},
        ])
    );
    assert_eq!(auth["data"]["refresh_tokens"].as_array().unwrap().len(), 2);
    drop(store);
    assert_migrated_groups_and_users(&open(dir.path()));
}

#[test]
fn an_empty_store_has_admin_users_read_only_and_writes_nothing_until_changed() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    assert_eq!(
        store
            .groups()
            .iter()
            .map(|g| g.id.to_string())
            .collect::<Vec<_>>(),
        ids([GROUP_ID_ADMIN, GROUP_ID_USER, GROUP_ID_READ_ONLY])
    );
    assert!(store.users().is_empty());
    store.close_blocking().unwrap();
    drop(store);
    for file in StoreFile::ALL {
        assert!(
            !dir.path().join(".storage").join(file.name()).exists(),
            "{file} written without a change"
        );
    }
    let store = open(dir.path());
    store
        .commit_blocking(vec![Change::PutUser(User::new(Some("x".into())))])
        .unwrap();
    store.close_blocking().unwrap();
    assert!(dir.path().join(".storage/auth").exists());
    assert!(
        !dir.path()
            .join(".storage/auth_provider.homeassistant")
            .exists()
    );
}

#[test]
fn system_groups_store_only_id_and_name() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let custom = Group::new_custom(Some("Custom".into()), Policy::read_only());
    store
        .commit_blocking(vec![Change::PutGroup(custom.clone())])
        .unwrap();
    store.close_blocking().unwrap();
    let auth = read_json(dir.path(), StoreFile::Auth);
    assert_eq!(auth["data"]["users"], json!([]));
    assert_eq!(
        auth["data"]["groups"],
        json!([
            {"id": "system-admin", "name": "Administrators"},
            {"id": "system-users", "name": "Users"},
            {"id": "system-read-only", "name": "Read Only"},
            {"id": custom.id.as_str(), "name": "Custom", "policy": {"entities": {"all": {"read": true}}}},
        ])
    );
}

#[test]
fn stored_system_group_names_and_policies_are_ignored() {
    let dir = dir_with_auth(&json!({
        "version": 1, "minor_version": 1, "key": "auth",
        "data": {
            "users": [], "credentials": [], "refresh_tokens": [],
            "groups": [
                {"id": "system-read-only", "name": "Everything!", "policy": {"entities": true}},
                {"id": "system-admin", "name": "Admins"},
                {"id": "system-users", "name": "Users"},
            ]
        }
    }));
    let store = open(dir.path());
    let groups = store.groups();
    assert_eq!(groups[0].name.as_deref(), Some("Read Only"));
    assert_eq!(groups[0].policy, Policy::read_only());
    assert_eq!(groups[1].name.as_deref(), Some("Administrators"));
    assert_eq!(groups.len(), 3);
}

#[test]
fn expire_at_is_not_changed_on_load() {
    let dir = copy_fixture("expire_at");
    let store = open(dir.path());
    let tokens = store.refresh_tokens_of("user-id");
    assert_eq!(tokens.len(), 2);
    assert_eq!(tokens[0].expire_at, None);
    assert_eq!(
        tokens[0].last_used_at,
        Some(utc("2024-08-20T06:02:51.079745Z")),
        "str(now) has a space instead of T"
    );
    assert_eq!(tokens[1].expire_at, Some(1_724_133_771.079_745));
    assert_eq!(tokens[1].last_used_at, None);
}

#[tokio::test]
async fn removing_a_user_removes_its_tokens_from_both_indexes() {
    let dir = copy_fixture("full");
    let store = open(dir.path());
    assert!(store.refresh_token(T_BROWSER).is_some());
    assert!(store.refresh_token_by_value(BROWSER_TOKEN).is_some());
    store
        .commit(vec![Change::RemoveUser(OWNER.into())])
        .await
        .unwrap();
    assert!(store.refresh_token(T_BROWSER).is_none());
    assert!(store.refresh_token(T_GRAFANA).is_none());
    assert!(store.refresh_token_by_value(BROWSER_TOKEN).is_none());
    assert!(store.credential(CRED_OWNER).is_none());
    assert!(store.credential(CRED_OWNER_CLI).is_none());
    assert!(
        store.totp_secret(OWNER).is_some(),
        "like Home Assistant, TOTP secrets stay"
    );
}

#[tokio::test]
async fn set_expiry_none_saves_null_and_some_saves_it_again() {
    let dir = copy_fixture("expire_at");
    let store = open(dir.path());
    store
        .commit(vec![Change::SetTokenExpiry {
            id: "user-token-id2".into(),
            expire_at: None,
        }])
        .await
        .unwrap();
    store.compact().await.unwrap();
    let auth = read_json(dir.path(), StoreFile::Auth);
    assert_eq!(auth["data"]["refresh_tokens"][1]["expire_at"], Value::Null);
    store
        .commit(vec![Change::SetTokenExpiry {
            id: "user-token-id2".into(),
            expire_at: Some(1_731_909_771.079_745),
        }])
        .await
        .unwrap();
    store.close().await.unwrap();
    let auth = read_json(dir.path(), StoreFile::Auth);
    assert_eq!(
        auth["data"]["refresh_tokens"][1]["expire_at"],
        json!(1_731_909_771.079_745)
    );
}

// ----- loading rules of §1.1 / §1.2 -----

fn minimal(data: &Value) -> Value {
    json!({"version": 1, "minor_version": 1, "key": "auth", "data": data})
}

fn user_json(id: &str, groups: &Value) -> Value {
    json!({"id": id, "group_ids": groups, "is_owner": false, "is_active": true,
           "name": "n", "system_generated": false})
}

fn token_json(id: &str, user: &str) -> Value {
    json!({"id": id, "user_id": user, "client_id": "c", "created_at": "2024-01-01T00:00:00+00:00",
           "access_token_expiration": 1800, "token": format!("tok-{id}"), "jwt_key": "k"})
}

fn open_err(dir: &tempfile::TempDir) -> StoreError {
    Store::open(dir.path(), StoreOptions::default()).unwrap_err()
}

#[test]
fn empty_object_and_non_object_data_mean_defaults() {
    for content in [
        json!({}),
        json!({"version": 1, "key": "auth", "data": null}),
        json!({"version": 1, "key": "auth", "data": [1]}),
    ] {
        let dir = dir_with_auth(&content);
        let store = open(dir.path());
        assert_eq!(store.groups().len(), 3, "{content}");
        assert!(store.users().is_empty());
    }
}

#[test]
fn optional_fields_take_home_assistant_defaults() {
    let dir = dir_with_auth(&minimal(&json!({
        "groups": [],
        "users": [
            {"id": "u", "is_owner": false, "is_active": true, "name": null, "system_generated": true},
        ],
        "credentials": [
            {"id": "c", "user_id": "u", "auth_provider_type": "t", "auth_provider_id": null, "data": {}},
        ],
        "refresh_tokens": [
            {"id": "a", "user_id": "u", "client_id": null, "created_at": "2024-01-01T00:00:00Z",
             "access_token_expiration": 1800, "token": "x", "jwt_key": "k",
             "credential_id": "no-such-credential", "last_used_at": "garbage"},
            {"id": "b", "user_id": "u", "client_id": "cid", "created_at": "2024-01-01T00:00:00.5+01:00",
             "access_token_expiration": 60.5, "token": "y", "jwt_key": "k", "credential_id": "c",
             "token_type": "long_lived_access_token", "client_name": "n", "client_icon": "i",
             "last_used_ip": "::1", "expire_at": 5, "version": "v"},
            {"id": "skipped", "user_id": "u", "client_id": null, "created_at": "not a date",
             "access_token_expiration": 1800, "token": "z", "jwt_key": "k"},
        ],
    })));
    let store = open(dir.path());
    let u = store.user("u").unwrap();
    assert!(!u.local_only && u.group_ids.is_empty() && u.name.is_none());
    let a = store.refresh_token("a").unwrap();
    assert_eq!(a.token_type, TokenType::System);
    assert_eq!(a.credential_id, None, "unknown credential ids become null");
    assert_eq!(a.last_used_at, None, "an unparseable last_used_at is null");
    assert_eq!(a.access_token_expiration, 1800.0);
    assert_eq!(
        (a.client_name.clone(), a.version.clone(), a.expire_at),
        (None, None, None)
    );
    let b = store.refresh_token("b").unwrap();
    assert_eq!(b.token_type, TokenType::LongLivedAccessToken);
    assert_eq!(
        b.created_at,
        utc("2023-12-31T23:00:00.5Z"),
        "converted to UTC"
    );
    assert_eq!(b.credential_id, Some("c".into()));
    assert_eq!(b.expire_at, Some(5.0));
    assert!(
        store.refresh_token("skipped").is_none(),
        "bad created_at: skipped"
    );
}

#[test]
fn bad_auth_content_fails_with_the_path_and_changes_nothing() {
    let cases = [
        (
            minimal(
                &json!({"users": [user_json("u", &json!(["nope"]))], "credentials": [], "refresh_tokens": []}),
            ),
            "unknown group nope",
        ),
        (
            minimal(&json!({"users": [], "credentials": [
                {"id": "c", "user_id": "ghost", "auth_provider_type": "t", "auth_provider_id": null, "data": {}}
            ], "refresh_tokens": []})),
            "unknown user ghost",
        ),
        (
            minimal(
                &json!({"users": [], "credentials": [], "refresh_tokens": [token_json("t", "ghost")]}),
            ),
            "unknown user ghost",
        ),
        (
            minimal(
                &json!({"users": [user_json("u", &json!([]))], "credentials": [],
                           "refresh_tokens": [{"id": "t", "user_id": "u", "client_id": null,
                           "created_at": "2024-01-01T00:00:00Z", "access_token_expiration": 1.0,
                           "token": "x", "jwt_key": "k", "token_type": "bogus"}]}),
            ),
            "unknown token type",
        ),
        (
            minimal(
                &json!({"users": [{"id": "u", "is_owner": false, "name": "n", "system_generated": false}],
                           "credentials": [], "refresh_tokens": []}),
            ),
            "missing field `is_active`",
        ),
        (
            minimal(&json!({"users": []})),
            "missing field `credentials`",
        ),
        (
            minimal(
                &json!({"groups": [{"id": "custom", "policy": {}}], "users": [], "credentials": [], "refresh_tokens": []}),
            ),
            "group custom has no name",
        ),
        (json!({"version": 1, "key": "auth"}), "no data"),
    ];
    for (content, expected) in cases {
        let dir = dir_with_auth(&content);
        let before = read(dir.path(), StoreFile::Auth);
        let e = open_err(&dir);
        let msg = e.to_string();
        assert!(matches!(e, StoreError::Invalid { .. }), "{msg}");
        assert!(msg.contains(expected), "{msg} lacks {expected}");
        assert!(msg.contains(".storage/auth"), "{msg}");
        assert_eq!(read(dir.path(), StoreFile::Auth), before);
    }
}

#[test]
fn a_newer_major_version_is_refused() {
    let dir = dir_with_auth(
        &json!({"version": 2, "minor_version": 1, "key": "auth", "data": {"anything": 1}}),
    );
    let before = read(dir.path(), StoreFile::Auth);
    let e = open_err(&dir);
    assert!(
        matches!(
            e,
            StoreError::UnsupportedVersion {
                found: 2,
                supported: 1,
                ..
            }
        ),
        "{e}"
    );
    assert!(e.to_string().contains(".storage/auth"));
    assert_eq!(read(dir.path(), StoreFile::Auth), before);
}

#[test]
fn another_minor_version_loads_and_is_rewritten_as_minor_1() {
    let dir = tempfile::tempdir().unwrap();
    fs::create_dir(dir.path().join(".storage")).unwrap();
    let provider = json!({"version": 1, "minor_version": 2, "key": "auth_provider.homeassistant",
                          "data": {"users": [{"username": "a", "password": "cA=="}]}});
    fs::write(
        dir.path().join(".storage/auth_provider.homeassistant"),
        serde_json::to_vec(&provider).unwrap(),
    )
    .unwrap();
    let store = open(dir.path());
    assert_eq!(store.ha_users().len(), 1);
    store.close_blocking().unwrap();
    let v = read_json(dir.path(), StoreFile::HaProvider);
    assert_eq!(v["minor_version"], 1);
    assert_eq!(v["data"]["users"][0]["username"], "a");
}

#[test]
fn provider_and_totp_files_missing_or_empty_mean_defaults() {
    let dir = tempfile::tempdir().unwrap();
    fs::create_dir(dir.path().join(".storage")).unwrap();
    fs::write(
        dir.path().join(".storage/auth_provider.homeassistant"),
        "{}",
    )
    .unwrap();
    fs::write(
        dir.path().join(".storage/auth_module.totp"),
        r#"{"version": 1, "key": "auth_module.totp", "data": {}}"#,
    )
    .unwrap();
    let store = open(dir.path());
    assert!(store.ha_users().is_empty());
    assert!(store.totp_users().is_empty());
}

#[test]
fn latch_totp_state_lives_in_its_own_file() {
    let dir = copy_fixture("full");
    let store = open(dir.path());
    store
        .commit_blocking(vec![Change::PutTotpState {
            user_id: OWNER.into(),
            last_step: Some(57_000_000),
            recovery_codes: vec![Secret::new("h1"), Secret::new("h2")],
        }])
        .unwrap();
    store.close_blocking().unwrap();
    assert_eq!(
        read(dir.path(), StoreFile::Totp),
        fixture_file("full", StoreFile::Totp),
        "Home Assistant's TOTP file is untouched"
    );
    let v = read_json(dir.path(), StoreFile::LatchTotp);
    assert_eq!(v["key"], "latch.auth_module.totp");
    assert_eq!(
        v["data"],
        json!({"users": {OWNER: {"last_step": 57_000_000, "recovery_codes": ["h1", "h2"]}}})
    );
    drop(store);
    let state = open(dir.path()).totp_state(OWNER).unwrap();
    assert_eq!(state.last_step, Some(57_000_000));
    assert_eq!(state.recovery_codes.len(), 2);
}
