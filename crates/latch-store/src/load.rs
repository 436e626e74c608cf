//! Reading the snapshot files, with Home Assistant's loading rules and soft migration
//! (reference §1.1 and §1.2).

use std::borrow::Cow;
use std::fmt;
use std::io;
use std::marker::PhantomData;
use std::path::{Path, PathBuf};
use std::thread;

use latch_models::{
    Credentials, GROUP_ID_ADMIN, GROUP_ID_READ_ONLY, GROUP_ID_USER, Group, GroupId, RefreshToken,
    Secret, TokenType, User, UserId, permissions::Policy, system_group,
};
use serde::de::value::MapAccessDeserializer;
use serde::de::{DeserializeOwned, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer};
use serde_json::error::Category;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::change::{HaUser, TotpState};
use crate::data::{AuthData, OrderedMap, UserSlot};
use crate::datetime::parse_datetime;
use crate::error::StoreError;
use crate::file::{STORAGE_VERSION, StoreFile};

/// SHA-256 of a file's bytes, to skip rewriting a file whose content did not change.
pub(crate) type FileDigest = [u8; 32];

pub(crate) fn file_digest(bytes: &[u8]) -> FileDigest {
    Sha256::digest(bytes).into()
}

/// Everything read from a `.storage` directory.
pub(crate) struct LoadedDir {
    pub(crate) data: AuthData,
    /// Digest of each file as found; `None` if it is missing.
    pub(crate) digests: [Option<FileDigest>; 4],
    /// Files Home Assistant would rewrite after loading them.
    pub(crate) rewrite: [bool; 4],
}

/// Reads all four snapshot files. Fails on the first bad one, changing nothing.
pub(crate) fn load_dir(dir: &Path) -> Result<LoadedDir, StoreError> {
    let mut files: [Option<Zeroizing<Vec<u8>>>; 4] = Default::default();
    for file in StoreFile::ALL {
        let path = dir.join(file.name());
        files[file.index()] = match read_nofollow(&path) {
            Ok(b) => Some(Zeroizing::new(b)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => return Err(StoreError::io("read", path, e)),
        };
    }
    load_files(dir, &files)
}

/// Parses the four snapshot files from their bytes (`None`: the file does not exist),
/// with the rules and migrations of [`load_dir`]; errors name `dir`/the file.
pub(crate) fn load_files(
    dir: &Path,
    files: &[Option<Zeroizing<Vec<u8>>>; 4],
) -> Result<LoadedDir, StoreError> {
    let (mut data, auth_digest, auth_rewrite) = read_auth(dir, files[0].as_deref())?;
    let provider = read_file::<RawProvider>(dir, StoreFile::HaProvider, files[1].as_deref())?;
    let totp = read_file::<RawTotp>(dir, StoreFile::Totp, files[2].as_deref())?;
    let latch_totp = read_file::<RawTotp>(dir, StoreFile::LatchTotp, files[3].as_deref())?;

    if let Some(raw) = provider.data {
        data.set_ha_users(
            raw.users
                .into_iter()
                .map(|u| HaUser {
                    username: u.username,
                    password: Secret::new(u.password),
                })
                .collect(),
        );
    }
    if let Some(raw) = totp.data {
        let path = dir.join(StoreFile::Totp.name());
        for (user, value) in raw.users {
            let Value::String(secret) = value else {
                return Err(StoreError::invalid(
                    path,
                    format!("the secret of user {user} is not a string"),
                ));
            };
            data.totp.insert(UserId::from(user), Secret::new(secret));
        }
    }
    if let Some(raw) = latch_totp.data {
        let path = dir.join(StoreFile::LatchTotp.name());
        for (user, value) in raw.users {
            let state: TotpState = serde_json::from_value(value).map_err(|e| {
                StoreError::invalid(&path, format!("the state of user {user}: {e}"))
            })?;
            data.totp_state.insert(UserId::from(user), state);
        }
    }

    Ok(LoadedDir {
        data,
        digests: [auth_digest, provider.digest, totp.digest, latch_totp.digest],
        // Home Assistant saves `auth` 300 s after every load, so a migrated file gets
        // rewritten (latch does it at the next compaction); any file whose minor version
        // differs is saved straight away.
        rewrite: [
            auth_rewrite,
            provider.rewrite,
            totp.rewrite,
            latch_totp.rewrite,
        ],
    })
}

/// `auth`, which may be large: parsed borrowing from the file's bytes while another
/// thread computes their digest.
/// Returns the data, the file's digest and whether it should be rewritten.
fn read_auth(
    dir: &Path,
    bytes: Option<&Vec<u8>>,
) -> Result<(AuthData, Option<FileDigest>, bool), StoreError> {
    let path = dir.join(StoreFile::Auth.name());
    let Some(bytes) = bytes else {
        return Ok((AuthData::new(), None, false));
    };
    let (digest, data) = thread::scope(|s| {
        let digest = s.spawn(|| file_digest(bytes));
        let data = parse_envelope::<RawAuth<'_>>(bytes, StoreFile::Auth, &path).and_then(
            |(raw, rewrite)| match raw {
                Some(raw) => build_auth(raw, &path).map(|(d, migrated)| (d, rewrite || migrated)),
                None => Ok((AuthData::new(), rewrite)),
            },
        );
        (digest.join(), data)
    });
    let digest = digest.unwrap_or_else(|_| file_digest(bytes));
    let (data, rewrite) = data?;
    Ok((data, Some(digest), rewrite))
}

/// One file: `data` is `None` when Home Assistant would use its defaults.
struct Loaded<D> {
    data: Option<D>,
    digest: Option<FileDigest>,
    rewrite: bool,
}

fn read_file<D: DeserializeOwned>(
    dir: &Path,
    file: StoreFile,
    bytes: Option<&Vec<u8>>,
) -> Result<Loaded<D>, StoreError> {
    let path = dir.join(file.name());
    let Some(bytes) = bytes else {
        return Ok(Loaded {
            data: None,
            digest: None,
            rewrite: false,
        });
    };
    let digest = file_digest(bytes);
    let (data, rewrite) = parse_envelope::<D>(bytes, file, &path)?;
    Ok(Loaded {
        data,
        digest: Some(digest),
        rewrite,
    })
}

/// Parses Home Assistant's envelope (§1.1 steps 3–6) and the payload as `D`.
/// Returns the payload (`None` for defaults) and whether the file should be rewritten.
fn parse_envelope<'de, D: Deserialize<'de>>(
    bytes: &'de [u8],
    file: StoreFile,
    path: &Path,
) -> Result<(Option<D>, bool), StoreError> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let env = EnvelopeIn::<D>::deserialize(&mut de)
        .and_then(|env| de.end().map(|()| env))
        .map_err(|e| json_error(path, e))?;
    if env.keys == 0 {
        // Exactly `{}`: Home Assistant treats it as a missing file.
        return Ok((None, false));
    }
    let version = match &env.version {
        None => return Err(StoreError::invalid(path, "the envelope has no version")),
        Some(v) => v.as_u64().ok_or_else(|| {
            StoreError::invalid(path, format!("version {v} is not a whole number"))
        })?,
    };
    if version != STORAGE_VERSION {
        return Err(StoreError::UnsupportedVersion {
            path: path.to_owned(),
            found: version,
            supported: STORAGE_VERSION,
        });
    }
    let minor = match &env.minor_version {
        None => 1,
        Some(v) => v.as_u64().ok_or_else(|| {
            StoreError::invalid(path, format!("minor_version {v} is not a whole number"))
        })?,
    };
    if let Some(key) = env.key.as_ref().filter(|k| k.as_str() != Some(file.name())) {
        tracing::warn!(path = %path.display(), %key, "storage key does not match the file name; ignored as Home Assistant does");
    }
    let rewrite = minor != 1;
    match env.data {
        DataIn::Missing | DataIn::Skipped => {
            Err(StoreError::invalid(path, "the envelope has no data"))
        }
        DataIn::NotObject => Ok((None, rewrite)),
        DataIn::Object(d) => Ok((Some(d), rewrite)),
    }
}

fn json_error(path: &Path, e: serde_json::Error) -> StoreError {
    match e.classify() {
        Category::Data => StoreError::invalid(path, e.to_string()),
        Category::Io | Category::Syntax | Category::Eof => StoreError::Parse {
            path: path.to_owned(),
            source: e,
        },
    }
}

struct EnvelopeIn<D> {
    keys: usize,
    version: Option<Value>,
    minor_version: Option<Value>,
    key: Option<Value>,
    data: DataIn<D>,
}

enum DataIn<D> {
    Missing,
    /// `data` is null or not an object: defaults.
    NotObject,
    Object(D),
    /// Not read because the version is unsupported.
    Skipped,
}

impl<'de, D: Deserialize<'de>> Deserialize<'de> for EnvelopeIn<D> {
    fn deserialize<De: Deserializer<'de>>(d: De) -> Result<Self, De::Error> {
        struct V<D>(PhantomData<D>);
        impl<'de, D: Deserialize<'de>> Visitor<'de> for V<D> {
            type Value = EnvelopeIn<D>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a storage envelope (a json object)")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut env = EnvelopeIn {
                    keys: 0,
                    version: None,
                    minor_version: None,
                    key: None,
                    data: DataIn::Missing,
                };
                while let Some(k) = map.next_key::<String>()? {
                    env.keys += 1;
                    match k.as_str() {
                        "version" => env.version = Some(map.next_value()?),
                        "minor_version" => env.minor_version = Some(map.next_value()?),
                        "key" => env.key = Some(map.next_value()?),
                        "data" => {
                            let unsupported = env
                                .version
                                .as_ref()
                                .is_some_and(|v| v.as_u64() != Some(STORAGE_VERSION));
                            env.data = if unsupported {
                                map.next_value::<IgnoredAny>()?;
                                DataIn::Skipped
                            } else {
                                map.next_value::<DataIn<D>>()?
                            };
                        }
                        _ => {
                            map.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                Ok(env)
            }
        }
        d.deserialize_map(V(PhantomData))
    }
}

impl<'de, D: Deserialize<'de>> Deserialize<'de> for DataIn<D> {
    fn deserialize<De: Deserializer<'de>>(d: De) -> Result<Self, De::Error> {
        struct V<D>(PhantomData<D>);
        impl<'de, D: Deserialize<'de>> Visitor<'de> for V<D> {
            type Value = DataIn<D>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any json value")
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                D::deserialize(MapAccessDeserializer::new(map)).map(DataIn::Object)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(DataIn::NotObject)
            }
            fn visit_unit<E>(self) -> Result<Self::Value, E> {
                Ok(DataIn::NotObject)
            }
            fn visit_none<E>(self) -> Result<Self::Value, E> {
                Ok(DataIn::NotObject)
            }
            fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
                Ok(DataIn::NotObject)
            }
            fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
                Ok(DataIn::NotObject)
            }
            fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
                Ok(DataIn::NotObject)
            }
            fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
                Ok(DataIn::NotObject)
            }
            fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
                Ok(DataIn::NotObject)
            }
        }
        d.deserialize_any(V(PhantomData))
    }
}

/// A required key whose value may be null.
fn nullable<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<T>, D::Error> {
    Option::<T>::deserialize(d)
}

/// An optional key whose value may be null: `None` when missing, `Some(None)` when null.
fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<T>, D::Error> {
    T::deserialize(d).map(Some)
}

#[derive(Deserialize)]
struct RawAuth<'a> {
    #[serde(default)]
    groups: Vec<RawGroup>,
    users: Vec<RawUser>,
    credentials: Vec<RawCredential>,
    #[serde(borrow)]
    refresh_tokens: Vec<RawToken<'a>>,
}

#[derive(Deserialize)]
struct RawGroup {
    id: String,
    #[serde(default, deserialize_with = "present")]
    name: Option<Option<String>>,
    #[serde(default)]
    policy: Option<Value>,
}

#[derive(Deserialize)]
struct RawUser {
    id: String,
    #[serde(default)]
    group_ids: Vec<String>,
    is_owner: bool,
    is_active: bool,
    #[serde(deserialize_with = "nullable")]
    name: Option<String>,
    system_generated: bool,
    #[serde(default)]
    local_only: Option<bool>,
}

#[derive(Deserialize)]
struct RawCredential {
    id: String,
    user_id: String,
    auth_provider_type: String,
    #[serde(deserialize_with = "nullable")]
    auth_provider_id: Option<String>,
    data: Map<String, Value>,
}

/// Strings only parsed are borrowed from the file where they have no escapes.
#[derive(Deserialize)]
struct RawToken<'a> {
    id: String,
    user_id: String,
    #[serde(deserialize_with = "nullable")]
    client_id: Option<String>,
    #[serde(default)]
    client_name: Option<String>,
    #[serde(default)]
    client_icon: Option<String>,
    #[serde(default, borrow)]
    token_type: Option<Cow<'a, str>>,
    #[serde(borrow)]
    created_at: Cow<'a, str>,
    access_token_expiration: f64,
    token: String,
    #[serde(default, deserialize_with = "present")]
    jwt_key: Option<Option<String>>,
    #[serde(default, borrow)]
    last_used_at: Option<Cow<'a, str>>,
    #[serde(default)]
    last_used_ip: Option<String>,
    #[serde(default)]
    expire_at: Option<f64>,
    #[serde(default)]
    credential_id: Option<String>,
    #[serde(default)]
    version: Option<String>,
}

#[derive(Deserialize)]
struct RawProvider {
    users: Vec<RawHaUser>,
}

#[derive(Deserialize)]
struct RawHaUser {
    username: String,
    password: String,
}

/// `auth_module.totp` and `latch.auth_module.totp`: `{"users": {<user id>: ...}}`.
#[derive(Deserialize)]
struct RawTotp {
    #[serde(default)]
    users: Map<String, Value>,
}

/// Home Assistant's `AuthStore._async_load_task`, step by step (§1.2). Also tells
/// whether the migration dropped or added anything.
fn build_auth(raw: RawAuth<'_>, path: &Path) -> Result<(AuthData, bool), StoreError> {
    let path: PathBuf = path.to_owned();
    let mut migrated = false;

    // 1. Groups.
    let mut groups: OrderedMap<GroupId, Group> = OrderedMap::new();
    let (mut has_admin, mut has_user, mut has_read_only) = (false, false, false);
    let mut group_without_policy: Option<String> = None;
    for g in raw.groups {
        let group = if let Some(system) = system_group(&g.id) {
            match g.id.as_str() {
                GROUP_ID_ADMIN => has_admin = true,
                GROUP_ID_USER => has_user = true,
                _ => has_read_only = true,
            }
            system
        } else {
            let Some(name) = g.name else {
                return Err(StoreError::invalid(
                    &path,
                    format!("group {} has no name", g.id),
                ));
            };
            let policy = match g.policy {
                None | Some(Value::Null) => {
                    // A custom group without a policy is dropped (migration from state 1).
                    group_without_policy = Some(g.id);
                    migrated = true;
                    continue;
                }
                Some(v) => serde_json::from_value::<Policy>(v).map_err(|e| {
                    StoreError::invalid(&path, format!("policy of group {}: {e}", g.id))
                })?,
            };
            Group {
                id: GroupId::from(g.id),
                name,
                policy,
                system_generated: false,
            }
        };
        groups.insert(group.id.clone(), group);
    }

    // 2. and 3.
    let migrate_users_to_admin_group = groups.len() == 0 && group_without_policy.is_none();
    if groups.len() > 0 && group_without_policy.is_some() {
        group_without_policy = None;
    }

    // 4. Missing system groups: admin, then read-only, then users.
    for (present, id) in [
        (has_admin, GROUP_ID_ADMIN),
        (has_read_only, GROUP_ID_READ_ONLY),
        (has_user, GROUP_ID_USER),
    ] {
        if let Some(g) = system_group(id).filter(|_| !present) {
            groups.insert(g.id.clone(), g);
            migrated = true;
        }
    }

    let mut data = AuthData::with_groups(groups);
    data.reserve(
        raw.users.len(),
        raw.credentials.len(),
        raw.refresh_tokens.len(),
    );

    // 5. Users.
    for u in raw.users {
        let mut group_ids = Vec::with_capacity(u.group_ids.len() + 1);
        for gid in u.group_ids {
            let gid = if group_without_policy.as_deref() == Some(gid.as_str()) {
                GROUP_ID_ADMIN.to_owned()
            } else {
                gid
            };
            if !data.groups.contains(&gid) {
                return Err(StoreError::invalid(
                    &path,
                    format!("user {} is in unknown group {gid}", u.id),
                ));
            }
            group_ids.push(GroupId::from(gid));
        }
        if !u.system_generated && migrate_users_to_admin_group {
            group_ids.push(GroupId::from(GROUP_ID_ADMIN));
        }
        let user = User {
            id: UserId::from(u.id),
            name: u.name,
            is_owner: u.is_owner,
            is_active: u.is_active,
            system_generated: u.system_generated,
            local_only: u.local_only.unwrap_or(false),
            group_ids,
        };
        // A repeated id replaces the earlier user in place, as a Python dict does.
        if let Some(slot) = data.users.get_mut(user.id.as_str()) {
            *slot = UserSlot {
                user: user.into(),
                credentials: Vec::new(),
                tokens: Vec::new(),
            };
        } else {
            data.put_user(user);
        }
    }

    // 6. Credentials.
    for c in raw.credentials {
        if !data.users.contains(&c.user_id) {
            return Err(StoreError::invalid(
                &path,
                format!("credential {} belongs to unknown user {}", c.id, c.user_id),
            ));
        }
        data.put_credential(Credentials {
            id: c.id.into(),
            user_id: Some(c.user_id.into()),
            auth_provider_type: c.auth_provider_type,
            auth_provider_id: c.auth_provider_id,
            data: c.data,
            is_new: false,
        });
    }

    // 7. Refresh tokens.
    for t in raw.refresh_tokens {
        let jwt_key = match t.jwt_key {
            // Pre-0.76 tokens have no jwt_key: skipped silently.
            None => {
                migrated = true;
                continue;
            }
            Some(None) => {
                return Err(StoreError::invalid(
                    &path,
                    format!("refresh token {} has a null jwt_key", t.id),
                ));
            }
            Some(Some(k)) => k,
        };
        let Some(created_at) = parse_datetime(&t.created_at) else {
            tracing::error!(
                id = %t.id,
                user_id = %t.user_id,
                created_at = %t.created_at,
                path = %path.display(),
                "ignoring refresh token with invalid created_at"
            );
            migrated = true;
            continue;
        };
        let token_type = match t.token_type {
            Some(s) => s
                .parse::<TokenType>()
                .map_err(|e| StoreError::invalid(&path, format!("refresh token {}: {e}", t.id)))?,
            None if t.client_id.is_none() => TokenType::System,
            None => TokenType::Normal,
        };
        if !data.users.contains(&t.user_id) {
            return Err(StoreError::invalid(
                &path,
                format!(
                    "refresh token {} belongs to unknown user {}",
                    t.id, t.user_id
                ),
            ));
        }
        let last_used_at = t
            .last_used_at
            .as_deref()
            .filter(|s| !s.is_empty())
            .and_then(parse_datetime);
        let credential_id = t.credential_id.and_then(|c| {
            let known = data.credentials.contains_key(c.as_str());
            migrated |= !known;
            known.then(|| c.into())
        });
        data.put_token(RefreshToken {
            id: t.id.into(),
            user_id: t.user_id.into(),
            client_id: t.client_id,
            client_name: t.client_name,
            client_icon: t.client_icon,
            token_type,
            created_at,
            access_token_expiration: t.access_token_expiration,
            token: Secret::new(t.token),
            jwt_key: Secret::new(jwt_key),
            last_used_at,
            last_used_ip: t.last_used_ip,
            expire_at: t.expire_at,
            credential_id,
            version: t.version,
        });
    }
    Ok((data, migrated))
}

/// Reads a snapshot file without following a symlink at its path (`O_NOFOLLOW`): the
/// compaction replaces such a link with a real file, and nothing is ever read or written
/// through one.
fn read_nofollow(path: &Path) -> io::Result<Vec<u8>> {
    use std::io::Read;
    let mut options = std::fs::OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        let flags = rustix::fs::OFlags::NOFOLLOW | rustix::fs::OFlags::CLOEXEC;
        options.custom_flags(flags.bits().cast_signed());
    }
    let mut file = options.open(path).map_err(crate::store::refuse_link)?;
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)?;
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (has data, rewrite)
    fn parse(json: &str) -> Result<(bool, bool), StoreError> {
        parse_envelope::<RawAuth<'_>>(json.as_bytes(), StoreFile::Auth, Path::new("/x/auth"))
            .map(|(d, rewrite)| (d.is_some(), rewrite))
    }

    #[test]
    fn empty_object_and_non_object_data_mean_defaults() {
        assert!(!parse("{}").unwrap().0);
        assert!(!parse(r#"{"version":1,"data":null}"#).unwrap().0);
        assert!(!parse(r#"{"version":1,"data":[1,2]}"#).unwrap().0);
        assert!(!parse(r#"{"version":1,"data":"x"}"#).unwrap().0);
    }

    #[test]
    fn versions() {
        let e = parse(r#"{"version":2,"data":{"whatever":[]}}"#).unwrap_err();
        assert!(
            matches!(e, StoreError::UnsupportedVersion { found: 2, .. }),
            "{e}"
        );
        let e = parse(r#"{"version":0,"data":{}}"#).unwrap_err();
        assert!(
            matches!(e, StoreError::UnsupportedVersion { found: 0, .. }),
            "{e}"
        );
        let e = parse(r#"{"data":{"users":[],"credentials":[],"refresh_tokens":[]},"key":"auth"}"#)
            .unwrap_err();
        assert!(e.to_string().contains("no version"), "{e}");
        let (_, rewrite) =
            parse(r#"{"version":1,"data":{"users":[],"credentials":[],"refresh_tokens":[]}}"#)
                .unwrap();
        assert!(!rewrite, "a missing minor version is 1");
        let (_, rewrite) = parse(
            r#"{"version":1,"minor_version":3,"data":{"users":[],"credentials":[],"refresh_tokens":[]}}"#,
        )
        .unwrap();
        assert!(rewrite, "another minor version is rewritten");
    }

    #[test]
    fn syntax_errors_and_data_errors_are_told_apart() {
        let e = parse(r#"{"version":1,"data":{"users":[}"#).unwrap_err();
        assert!(matches!(e, StoreError::Parse { .. }), "{e}");
        assert!(e.to_string().contains("/x/auth"), "{e}");
        let e = parse("").unwrap_err();
        assert!(matches!(e, StoreError::Parse { .. }), "{e}");
        let e = parse("[]").unwrap_err();
        assert!(matches!(e, StoreError::Invalid { .. }), "{e}");
        let e = parse(
            r#"{"version":1,"data":{"users":[{"id":"u","is_owner":true,"is_active":true,"system_generated":false}],"credentials":[],"refresh_tokens":[]}}"#,
        )
        .unwrap_err();
        assert!(e.to_string().contains("missing field `name`"), "{e}");
    }
}
