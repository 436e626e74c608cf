//! Home Assistant's entity, device and area registries, for permission checks.
//!
//! Policies can grant by `device_ids` and `area_ids`; answering them needs to know which
//! device an entity belongs to and which area a device is in. Home Assistant keeps that
//! in `.storage/core.entity_registry`, `.storage/core.device_registry` and
//! `.storage/core.area_registry`. When the home holds them (a Home Assistant
//! configuration directory), latchd reads them:
//!
//! - **read-only**: never written, never locked, never created;
//! - **never through a symlink** (`O_NOFOLLOW`, and the open file must be a regular
//!   file), and at most [`MAX_REGISTRY_BYTES`] each;
//! - **kept current**: every [`POLL_INTERVAL`] the files' identity (device, inode, size,
//!   modification time) is compared with the one last read, and a changed file is read
//!   again; Home Assistant replaces them through a temp file and a rename;
//! - **never fatal**: a file that cannot be read or does not parse is logged with its
//!   path and the error, and the state read from it before is kept; a file that is gone
//!   counts as empty.
//!
//! The permission engine asks the registries what Home Assistant's `PermissionLookup`
//! asks: an entity's device, a device's area, a device's parent (`via_device_id`). As in
//! Home Assistant, an `area_ids` rule looks at the entity's device's area (or its
//! parent's): the entity's own `area_id` is read but not consulted.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{self, Read as _};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, SystemTime};

use latch_models::permissions::{DeviceEntry, EntityEntry, EntityLookup, InMemoryRegistry};
use serde::Deserialize;
use tokio::sync::watch;

/// File name of Home Assistant's entity registry in `.storage`.
pub const ENTITY_REGISTRY: &str = "core.entity_registry";
/// File name of Home Assistant's device registry in `.storage`.
pub const DEVICE_REGISTRY: &str = "core.device_registry";
/// File name of Home Assistant's area registry in `.storage`.
pub const AREA_REGISTRY: &str = "core.area_registry";
/// Largest registry file read (a large installation's entity registry is a few MiB).
pub const MAX_REGISTRY_BYTES: u64 = 64 * 1024 * 1024;
/// How often the files are checked for changes.
pub const POLL_INTERVAL: Duration = Duration::from_secs(2);

/// What the three files hold, as the permission engine needs it. Cheap to share.
#[derive(Debug, Default)]
pub struct RegistrySnapshot {
    registry: InMemoryRegistry,
    entities: usize,
    devices: usize,
    areas: HashMap<String, Option<String>>,
}

impl RegistrySnapshot {
    /// How many entities, devices and areas are known.
    #[must_use]
    pub fn counts(&self) -> (usize, usize, usize) {
        (self.entities, self.devices, self.areas.len())
    }

    /// The name of an area, when the area registry knows it.
    #[must_use]
    pub fn area_name(&self, area_id: &str) -> Option<&str> {
        self.areas.get(area_id)?.as_deref()
    }

    /// The entity registry's entry of `entity_id`.
    #[must_use]
    pub fn entity(&self, entity_id: &str) -> Option<&EntityEntry> {
        self.registry.entity(entity_id)
    }
}

impl EntityLookup for RegistrySnapshot {
    fn entity_device(&self, entity_id: &str) -> Option<&str> {
        self.registry.entity_device(entity_id)
    }

    fn device_area(&self, device_id: &str) -> Option<&str> {
        self.registry.device_area(device_id)
    }

    fn device_parent(&self, device_id: &str) -> Option<&str> {
        self.registry.device_parent(device_id)
    }
}

/// Why a registry file was not read.
#[derive(Debug, thiserror::Error)]
enum ReadError {
    #[error("{0}")]
    Io(#[from] io::Error),
    #[error("it is a symlink; latchd never reads a registry through one")]
    Symlink,
    #[error("it is not a regular file")]
    NotAFile,
    #[error("it is larger than {0} bytes")]
    TooLarge(u64),
    #[error("it is not a registry in Home Assistant's format: {0}")]
    Parse(#[from] serde_json::Error),
}

/// Which file changed, and how it is identified.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Identity {
    dev: u64,
    ino: u64,
    len: u64,
    modified: Option<SystemTime>,
}

impl Identity {
    #[cfg(unix)]
    fn of(metadata: &std::fs::Metadata) -> Self {
        use std::os::unix::fs::MetadataExt;
        Self {
            dev: metadata.dev(),
            ino: metadata.ino(),
            len: metadata.len(),
            modified: metadata.modified().ok(),
        }
    }

    #[cfg(not(unix))]
    fn of(metadata: &std::fs::Metadata) -> Self {
        Self {
            dev: 0,
            ino: 0,
            len: metadata.len(),
            modified: metadata.modified().ok(),
        }
    }
}

/// What was last seen at one file's path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Seen {
    Missing,
    File(Identity),
    /// A link, or something that could not be inspected: not read.
    Unreadable,
}

/// The parsed content of each file, kept per file so that one bad file keeps its own
/// previous state and not the others'.
#[derive(Debug, Default)]
struct Parts {
    entities: Vec<(String, EntityEntry)>,
    devices: Vec<(String, DeviceEntry)>,
    areas: Vec<(String, Option<String>)>,
}

#[derive(Debug)]
struct State {
    seen: [Seen; 3],
    parts: Parts,
}

/// The registries of one home, reloaded when their files change.
#[derive(Debug)]
pub struct Registries {
    storage: PathBuf,
    current: RwLock<Arc<RegistrySnapshot>>,
    state: Mutex<State>,
}

/// The three files, in the order of [`State::seen`].
const FILES: [&str; 3] = [ENTITY_REGISTRY, DEVICE_REGISTRY, AREA_REGISTRY];

impl Registries {
    /// The registries of the home at `home` (its `.storage` directory), not read yet.
    #[must_use]
    pub fn new(home: &Path) -> Self {
        Self {
            storage: home.join(".storage"),
            current: RwLock::new(Arc::new(RegistrySnapshot::default())),
            state: Mutex::new(State {
                seen: [Seen::Missing; 3],
                parts: Parts::default(),
            }),
        }
    }

    /// The registries as last read.
    #[must_use]
    pub fn snapshot(&self) -> Arc<RegistrySnapshot> {
        Arc::clone(&self.current.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// Reads every file that changed since the last call (blocking file IO). Returns
    /// whether the registries changed.
    pub fn reload(&self) -> bool {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let mut changed = false;
        for (index, name) in FILES.iter().enumerate() {
            let path = self.storage.join(name);
            let seen = look(&path);
            if seen == state.seen[index] {
                continue;
            }
            state.seen[index] = seen;
            match seen {
                Seen::Missing => {
                    if clear(&mut state.parts, index) {
                        tracing::info!(path = %path.display(), "registry gone: read as empty");
                        changed = true;
                    }
                }
                Seen::Unreadable | Seen::File(_) => match read_file(&path, MAX_REGISTRY_BYTES) {
                    Ok((identity, content)) => {
                        // The identity of what was read (the path may have changed since).
                        state.seen[index] = Seen::File(identity);
                        set(&mut state.parts, content);
                        changed = true;
                    }
                    Err(e) => {
                        tracing::warn!(
                            path = %path.display(),
                            error = %e,
                            "cannot read a Home Assistant registry; keeping what was read before"
                        );
                    }
                },
            }
        }
        if changed {
            let snapshot = build(&state.parts);
            let (entities, devices, areas) = snapshot.counts();
            tracing::info!(entities, devices, areas, "Home Assistant registries loaded");
            *self.current.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(snapshot);
        }
        changed
    }
}

/// Reloads `registries` every [`POLL_INTERVAL`] until `stop` turns true.
pub(crate) async fn watch(registries: Arc<Registries>, mut stop: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            _ = stop.wait_for(|stopped| *stopped) => return,
            () = tokio::time::sleep(POLL_INTERVAL) => {}
        }
        let registries = Arc::clone(&registries);
        if tokio::task::spawn_blocking(move || registries.reload())
            .await
            .is_err()
        {
            tracing::error!("reloading the Home Assistant registries failed");
        }
    }
}

/// What is at `path` now, without following a link.
fn look(path: &Path) -> Seen {
    match std::fs::symlink_metadata(path) {
        Ok(metadata) if metadata.file_type().is_file() => Seen::File(Identity::of(&metadata)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Seen::Missing,
        // A link, a directory, or an error: read (and refused) once, until it changes.
        Ok(_) | Err(_) => Seen::Unreadable,
    }
}

fn open_nofollow(path: &Path) -> Result<File, ReadError> {
    let mut options = OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        let flags = rustix::fs::OFlags::NOFOLLOW | rustix::fs::OFlags::CLOEXEC;
        options.custom_flags(flags.bits().cast_signed());
    }
    options.open(path).map_err(|e| {
        let is_link = std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink());
        if is_link {
            ReadError::Symlink
        } else {
            ReadError::Io(e)
        }
    })
}

/// The parsed content of one file.
enum Content {
    Entities(Vec<(String, EntityEntry)>),
    Devices(Vec<(String, DeviceEntry)>),
    Areas(Vec<(String, Option<String>)>),
}

/// Reads and parses one registry file of at most `cap` bytes.
fn read_file(path: &Path, cap: u64) -> Result<(Identity, Content), ReadError> {
    let file = open_nofollow(path)?;
    let metadata = file.metadata()?;
    if !metadata.is_file() {
        return Err(ReadError::NotAFile);
    }
    if metadata.len() > cap {
        return Err(ReadError::TooLarge(cap));
    }
    let identity = Identity::of(&metadata);
    let mut bytes = Vec::new();
    // The file may grow between the check and the read.
    file.take(cap.saturating_add(1)).read_to_end(&mut bytes)?;
    if u64::try_from(bytes.len()).unwrap_or(u64::MAX) > cap {
        return Err(ReadError::TooLarge(cap));
    }
    let content = match path.file_name().and_then(|n| n.to_str()) {
        Some(DEVICE_REGISTRY) => Content::Devices(parse_devices(&bytes)?),
        Some(AREA_REGISTRY) => Content::Areas(parse_areas(&bytes)?),
        _ => Content::Entities(parse_entities(&bytes)?),
    };
    Ok((identity, content))
}

fn set(parts: &mut Parts, content: Content) {
    match content {
        Content::Entities(entities) => parts.entities = entities,
        Content::Devices(devices) => parts.devices = devices,
        Content::Areas(areas) => parts.areas = areas,
    }
}

/// Empties the part of file `index`; whether it held anything.
fn clear(parts: &mut Parts, index: usize) -> bool {
    match index {
        0 => !std::mem::take(&mut parts.entities).is_empty(),
        1 => !std::mem::take(&mut parts.devices).is_empty(),
        _ => !std::mem::take(&mut parts.areas).is_empty(),
    }
}

fn build(parts: &Parts) -> RegistrySnapshot {
    let mut registry = InMemoryRegistry::new();
    for (entity_id, entry) in &parts.entities {
        registry.insert_entity(entity_id, entry.clone());
    }
    for (device_id, entry) in &parts.devices {
        registry.insert_device(device_id, entry.clone());
    }
    RegistrySnapshot {
        registry,
        entities: parts.entities.len(),
        devices: parts.devices.len(),
        areas: parts.areas.iter().cloned().collect(),
    }
}

// ---- Home Assistant's layout ----------------------------------------------------------
//
// `{"version": 1, "minor_version": N, "key": "core.entity_registry", "data": {"entities":
// [{"entity_id": …, "device_id": …, "area_id": …, …}], "deleted_entities": […]}}`, and
// alike for `devices` (`id`, `area_id`, `via_device_id`) and `areas` (`id`, `name`).
// Only the fields permissions need are read; the rest, and unknown ones, are ignored.

#[derive(Deserialize)]
struct Envelope<T> {
    data: Option<T>,
}

#[derive(Default, Deserialize)]
struct EntityData {
    #[serde(default)]
    entities: Vec<RawEntity>,
}

#[derive(Deserialize)]
struct RawEntity {
    entity_id: String,
    #[serde(default)]
    device_id: Option<String>,
    #[serde(default)]
    area_id: Option<String>,
}

#[derive(Default, Deserialize)]
struct DeviceData {
    #[serde(default)]
    devices: Vec<RawDevice>,
}

#[derive(Deserialize)]
struct RawDevice {
    id: String,
    #[serde(default)]
    area_id: Option<String>,
    #[serde(default)]
    via_device_id: Option<String>,
}

#[derive(Default, Deserialize)]
struct AreaData {
    #[serde(default)]
    areas: Vec<RawArea>,
}

#[derive(Deserialize)]
struct RawArea {
    id: String,
    #[serde(default)]
    name: Option<String>,
}

fn parse_entities(bytes: &[u8]) -> Result<Vec<(String, EntityEntry)>, serde_json::Error> {
    let envelope: Envelope<EntityData> = serde_json::from_slice(bytes)?;
    Ok(envelope
        .data
        .unwrap_or_default()
        .entities
        .into_iter()
        .map(|e| {
            let entry = EntityEntry {
                device_id: e.device_id,
                area_id: e.area_id,
            };
            (e.entity_id, entry)
        })
        .collect())
}

fn parse_devices(bytes: &[u8]) -> Result<Vec<(String, DeviceEntry)>, serde_json::Error> {
    let envelope: Envelope<DeviceData> = serde_json::from_slice(bytes)?;
    Ok(envelope
        .data
        .unwrap_or_default()
        .devices
        .into_iter()
        .map(|d| {
            let entry = DeviceEntry {
                area_id: d.area_id,
                via_device_id: d.via_device_id,
            };
            (d.id, entry)
        })
        .collect())
}

fn parse_areas(bytes: &[u8]) -> Result<Vec<(String, Option<String>)>, serde_json::Error> {
    let envelope: Envelope<AreaData> = serde_json::from_slice(bytes)?;
    Ok(envelope
        .data
        .unwrap_or_default()
        .areas
        .into_iter()
        .map(|a| (a.id, a.name))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/registries");

    fn fixture(name: &str) -> Vec<u8> {
        std::fs::read(Path::new(FIXTURES).join(name)).unwrap()
    }

    #[test]
    fn home_assistants_files_are_read_as_its_permission_lookup_sees_them() {
        let entities = parse_entities(&fixture(ENTITY_REGISTRY)).unwrap();
        let devices = parse_devices(&fixture(DEVICE_REGISTRY)).unwrap();
        let areas = parse_areas(&fixture(AREA_REGISTRY)).unwrap();
        assert_eq!((entities.len(), devices.len(), areas.len()), (5, 4, 2));
        let snapshot = build(&Parts {
            entities,
            devices,
            areas,
        });
        assert_eq!(snapshot.counts(), (5, 4, 2));
        assert_eq!(
            snapshot.entity_device("light.kitchen_ceiling"),
            Some("2c1a8f1e3d0b4c7a9e6f5d4c3b2a1908")
        );
        assert_eq!(
            snapshot.device_area("2c1a8f1e3d0b4c7a9e6f5d4c3b2a1908"),
            Some("kitchen")
        );
        assert_eq!(
            snapshot.device_parent("5b4a39281706f5e4d3c2b1a09f8e7d6c"),
            Some("7d6e5f4a3b2c1d0e9f8a7b6c5d4e3f2a")
        );
        assert_eq!(
            snapshot.device_area("5b4a39281706f5e4d3c2b1a09f8e7d6c"),
            None
        );
        // Deleted entries are not entries.
        assert_eq!(snapshot.entity_device("light.old_lamp"), None);
        assert_eq!(
            snapshot
                .entity("sensor.bedside_lamp_power")
                .and_then(|e| e.area_id.as_deref()),
            Some("kitchen")
        );
        assert_eq!(snapshot.area_name("bedroom"), Some("Bedroom"));
        // No data, or an empty file of the right shape, is an empty registry.
        assert!(parse_entities(b"{\"version\": 1}").unwrap().is_empty());
        assert!(parse_devices(b"{\"data\": {}}").unwrap().is_empty());
        // A wrong shape is an error, not an empty registry.
        assert!(parse_entities(b"{\"data\": {\"entities\": {}}}").is_err());
        assert!(parse_devices(b"{\"data\": {\"devices\": [{\"area_id\": \"x\"}]}}").is_err());
    }

    #[test]
    fn oversized_linked_and_odd_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(ENTITY_REGISTRY);
        std::fs::write(&path, fixture(ENTITY_REGISTRY)).unwrap();
        assert!(read_file(&path, MAX_REGISTRY_BYTES).is_ok());
        let err = read_file(&path, 100).err().unwrap();
        assert!(matches!(err, ReadError::TooLarge(100)), "{err}");

        let dir_path = dir.path().join(DEVICE_REGISTRY);
        std::fs::create_dir(&dir_path).unwrap();
        assert!(read_file(&dir_path, MAX_REGISTRY_BYTES).is_err());
        assert_eq!(look(&dir_path), Seen::Unreadable);

        #[cfg(unix)]
        {
            let link = dir.path().join(AREA_REGISTRY);
            let target = dir.path().join("target");
            std::fs::write(&target, fixture(AREA_REGISTRY)).unwrap();
            std::os::unix::fs::symlink(&target, &link).unwrap();
            let err = read_file(&link, MAX_REGISTRY_BYTES).err().unwrap();
            assert!(matches!(err, ReadError::Symlink), "{err}");
            assert_eq!(look(&link), Seen::Unreadable);
        }
    }

    #[test]
    fn reload_reads_only_changes_and_keeps_the_last_good_state() {
        let home = tempfile::tempdir().unwrap();
        let storage = home.path().join(".storage");
        std::fs::create_dir(&storage).unwrap();
        let registries = Registries::new(home.path());
        // Nothing there: nothing changes.
        assert!(!registries.reload());
        assert_eq!(registries.snapshot().counts(), (0, 0, 0));

        for name in FILES {
            std::fs::write(storage.join(name), fixture(name)).unwrap();
        }
        assert!(registries.reload());
        assert_eq!(registries.snapshot().counts(), (5, 4, 2));
        assert!(!registries.reload(), "an unchanged file is not read again");

        // A broken file keeps what was read from it before.
        let devices = storage.join(DEVICE_REGISTRY);
        std::fs::write(&devices, b"{\"data\": {\"devices\": [").unwrap();
        assert!(!registries.reload());
        assert_eq!(registries.snapshot().counts(), (5, 4, 2));
        // Gone: empty.
        std::fs::remove_file(&devices).unwrap();
        assert!(registries.reload());
        assert_eq!(registries.snapshot().counts(), (5, 0, 2));
    }
}
