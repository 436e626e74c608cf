//! Home Assistant's entity, device and area registries answer `device_ids` and
//! `area_ids` policies through the daemon, and a changed registry takes effect without a
//! restart. The fixtures in `tests/fixtures/registries` are in Home Assistant's own
//! layout (as 2024.x writes them, every field).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use latch_protocol::{PermissionKey, Request, Response, Subject};

use common::{Client, config, home, start};

const KIM: &str = "5f1c2b7e9a0d4e3b8c6a1f2e3d4c5b6a";
const LAMP_PLUG: &str = "9e8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b";
const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/registries");
const REGISTRIES: [&str; 3] = [
    "core.entity_registry",
    "core.device_registry",
    "core.area_registry",
];

/// Home Assistant's `auth` file with one user, Kim, in a group whose policy grants
/// control of the bedside lamp's plug (by device) and reading everything in the
/// kitchen (by area).
fn write_auth(storage: &Path) {
    let auth = serde_json::json!({
        "version": 1,
        "minor_version": 1,
        "key": "auth",
        "data": {
            "users": [{
                "id": KIM,
                "group_ids": ["kitchen-crew"],
                "is_owner": false,
                "is_active": true,
                "name": "Kim",
                "system_generated": false,
                "local_only": false
            }],
            "groups": [
                {"id": "system-admin", "name": "Administrators"},
                {"id": "system-users", "name": "Users"},
                {"id": "system-read-only", "name": "Read Only"},
                {
                    "id": "kitchen-crew",
                    "name": "Kitchen crew",
                    "policy": {"entities": {
                        "device_ids": {LAMP_PLUG: {"control": true}},
                        "area_ids": {"kitchen": {"read": true}}
                    }}
                }
            ],
            "credentials": [],
            "refresh_tokens": []
        }
    });
    std::fs::write(
        storage.join("auth"),
        serde_json::to_vec_pretty(&auth).unwrap(),
    )
    .unwrap();
}

fn storage_of(home: &Path) -> std::path::PathBuf {
    let storage = home.join(".storage");
    std::fs::create_dir_all(&storage).unwrap();
    write_auth(&storage);
    storage
}

fn copy_registries(storage: &Path) {
    for name in REGISTRIES {
        std::fs::copy(Path::new(FIXTURES).join(name), storage.join(name)).unwrap();
    }
}

/// Replaces `path` as Home Assistant does: a temp file, then a rename.
fn replace(path: &Path, contents: &[u8]) {
    let temp = path.with_extension("tmp");
    std::fs::write(&temp, contents).unwrap();
    std::fs::rename(&temp, path).unwrap();
}

async fn may(client: &mut Client, entity_id: &str, key: PermissionKey) -> bool {
    let answer = client
        .ok(Request::CheckPermission {
            subject: Subject::User(KIM.to_owned()),
            entity_id: entity_id.to_owned(),
            key,
        })
        .await;
    match answer {
        Response::Permission { allowed } => allowed,
        other => panic!("unexpected answer {other:?}"),
    }
}

/// Asks until the answer is `wanted`, failing after 20 s (the daemon polls every 2 s).
async fn until(client: &mut Client, entity_id: &str, key: PermissionKey, wanted: bool) {
    let start = Instant::now();
    while may(client, entity_id, key).await != wanted {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "{entity_id} {key:?} never became {wanted}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policies_by_device_and_by_area_allow_and_deny_through_the_daemon() {
    use PermissionKey::{Control, Read};
    let home = home();
    let storage = storage_of(home.path());
    copy_registries(&storage);
    let daemon = start(home.path(), config(4, "")).await;
    let mut client = Client::to(&daemon).await;

    // By area: the ceiling light's device is in the kitchen.
    assert!(may(&mut client, "light.kitchen_ceiling", Read).await);
    assert!(!may(&mut client, "light.kitchen_ceiling", Control).await);
    // A device with no area of its own takes its hub's (via_device_id), as Home
    // Assistant 2026 does.
    assert!(may(&mut client, "binary_sensor.counter_motion", Read).await);
    // By device: the plug's entities may be controlled, wherever they are.
    assert!(may(&mut client, "switch.bedside_lamp", Control).await);
    assert!(may(&mut client, "sensor.bedside_lamp_power", Control).await);
    // The plug is in the bedroom: reading is not granted there.
    assert!(!may(&mut client, "switch.bedside_lamp", Read).await);
    // As in Home Assistant, area rules look at the device's area: the entity's own
    // area override (kitchen) does not count, nor does an area on an entity without a
    // device.
    assert!(!may(&mut client, "sensor.bedside_lamp_power", Read).await);
    assert!(!may(&mut client, "input_boolean.kitchen_guest_mode", Read).await);
    // Unknown to the registry: no rule matches.
    assert!(!may(&mut client, "light.old_lamp", Read).await);
    assert!(!may(&mut client, "light.nowhere", Read).await);
    daemon.shutdown().await.unwrap();

    // The registry files were only read.
    for name in REGISTRIES {
        assert_eq!(
            std::fs::read(storage.join(name)).unwrap(),
            std::fs::read(Path::new(FIXTURES).join(name)).unwrap(),
            "{name} was changed"
        );
    }

    // Without the registries the same policy matches nothing.
    for name in REGISTRIES {
        std::fs::remove_file(storage.join(name)).unwrap();
    }
    let daemon = start(home.path(), config(4, "")).await;
    let mut client = Client::to(&daemon).await;
    assert!(!may(&mut client, "light.kitchen_ceiling", Read).await);
    assert!(!may(&mut client, "switch.bedside_lamp", Control).await);
    daemon.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_registry_takes_effect_without_a_restart_and_a_bad_one_changes_nothing() {
    use PermissionKey::{Control, Read};
    let home = home();
    let storage = storage_of(home.path());
    copy_registries(&storage);
    let daemon = start(home.path(), config(4, "")).await;
    let mut client = Client::to(&daemon).await;
    assert!(!may(&mut client, "switch.bedside_lamp", Read).await);

    // The plug moves to the kitchen.
    let devices_path = storage.join("core.device_registry");
    let mut devices: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&devices_path).unwrap()).unwrap();
    for device in devices["data"]["devices"].as_array_mut().unwrap() {
        if device["id"] == LAMP_PLUG {
            device["area_id"] = "kitchen".into();
        }
    }
    replace(&devices_path, &serde_json::to_vec(&devices).unwrap());
    until(&mut client, "switch.bedside_lamp", Read, true).await;

    // A device registry that does not parse: logged, the last good one kept.
    replace(&devices_path, b"{\"version\": 1, \"data\": {\"devices\": [");
    // A symlink planted at the area registry: never followed.
    let areas_path = storage.join("core.area_registry");
    let elsewhere = home.path().join("areas-elsewhere.json");
    std::fs::write(&elsewhere, b"{\"data\": {\"areas\": []}}").unwrap();
    std::fs::remove_file(&areas_path).unwrap();
    #[cfg(unix)]
    std::os::unix::fs::symlink(&elsewhere, &areas_path).unwrap();
    // The entity registry loses the ceiling light: it must stop matching, which also
    // shows the poller went past the broken files.
    let entities_path = storage.join("core.entity_registry");
    let mut entities: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&entities_path).unwrap()).unwrap();
    entities["data"]["entities"]
        .as_array_mut()
        .unwrap()
        .retain(|e| e["entity_id"] != "light.kitchen_ceiling");
    replace(&entities_path, &serde_json::to_vec(&entities).unwrap());
    until(&mut client, "light.kitchen_ceiling", Read, false).await;
    assert!(may(&mut client, "switch.bedside_lamp", Read).await);
    assert!(may(&mut client, "switch.bedside_lamp", Control).await);

    // A removed registry counts as empty: no device has an area any more (a device
    // rule needs only the entity registry).
    std::fs::remove_file(&devices_path).unwrap();
    until(&mut client, "switch.bedside_lamp", Read, false).await;
    assert!(may(&mut client, "switch.bedside_lamp", Control).await);
    daemon.shutdown().await.unwrap();
}
