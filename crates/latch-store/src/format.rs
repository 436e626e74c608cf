//! Writing the snapshot files byte-for-byte as Home Assistant does.
//!
//! Home Assistant writes `orjson.dumps(envelope, option=OPT_INDENT_2 | OPT_NON_STR_KEYS)`
//! with no trailing newline. orjson's pretty printer is an adaptation of serde_json's
//! (`"key": value`, `,\n` between items, two spaces per level, `[]` and `{}` for empty
//! containers, UTF-8 left unescaped) and it prints floats with ryu, as serde_json does,
//! so serde_json's `PrettyFormatter` with a two-space indent yields the same bytes.

use latch_models::{Credentials, Group, RefreshToken, Secret, TokenType, User, UserId};
use serde::ser::{SerializeMap, SerializeStruct};
use serde::{Deserialize, Serialize, Serializer};
use serde_json::ser::PrettyFormatter;

use crate::change::{HaUser, TotpState};
use crate::data::FileSnapshot;
use crate::datetime::format_datetime;
use crate::error::StoreError;
use crate::file::{STORAGE_MINOR_VERSION, STORAGE_VERSION, StoreFile};

/// Encodes a captured file.
pub(crate) fn encode(snapshot: &FileSnapshot) -> Result<Vec<u8>, StoreError> {
    match snapshot {
        FileSnapshot::Auth {
            users,
            groups,
            credentials,
            tokens,
        } => {
            let data = AuthOut {
                users: users.iter().map(|u| UserOut(u)).collect(),
                groups: groups.iter().map(GroupOut).collect(),
                credentials: credentials.iter().map(|c| CredentialOut(c)).collect(),
                refresh_tokens: tokens.iter().map(|t| TokenOut(t)).collect(),
            };
            envelope(StoreFile::Auth, &data)
        }
        FileSnapshot::HaProvider(users) => envelope(
            StoreFile::HaProvider,
            &UsersOut {
                users: HaUsersOut(users),
            },
        ),
        FileSnapshot::Totp(users) => envelope(
            StoreFile::Totp,
            &UsersOut {
                users: TotpOut(users),
            },
        ),
        FileSnapshot::LatchTotp(users) => envelope(
            StoreFile::LatchTotp,
            &UsersOut {
                users: TotpStateOut(users),
            },
        ),
    }
}

fn envelope<T: Serialize>(file: StoreFile, data: &T) -> Result<Vec<u8>, StoreError> {
    #[derive(Serialize)]
    struct Envelope<'a, T> {
        version: u64,
        minor_version: u64,
        key: &'a str,
        data: &'a T,
    }
    let mut out = Vec::new();
    let mut ser =
        serde_json::Serializer::with_formatter(&mut out, PrettyFormatter::with_indent(b"  "));
    Envelope {
        version: STORAGE_VERSION,
        minor_version: STORAGE_MINOR_VERSION,
        key: file.name(),
        data,
    }
    .serialize(&mut ser)
    .map_err(|source| StoreError::Encode {
        what: file.name(),
        source,
    })?;
    Ok(out)
}

#[derive(Serialize)]
struct AuthOut<'a> {
    users: Vec<UserOut<'a>>,
    groups: Vec<GroupOut<'a>>,
    credentials: Vec<CredentialOut<'a>>,
    refresh_tokens: Vec<TokenOut<'a>>,
}

struct UserOut<'a>(&'a User);

impl Serialize for UserOut<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let u = self.0;
        let mut st = s.serialize_struct("User", 7)?;
        st.serialize_field("id", &u.id)?;
        st.serialize_field("group_ids", &u.group_ids)?;
        st.serialize_field("is_owner", &u.is_owner)?;
        st.serialize_field("is_active", &u.is_active)?;
        st.serialize_field("name", &u.name)?;
        st.serialize_field("system_generated", &u.system_generated)?;
        st.serialize_field("local_only", &u.local_only)?;
        st.end()
    }
}

struct GroupOut<'a>(&'a Group);

impl Serialize for GroupOut<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let g = self.0;
        // Home Assistant keeps `name` of system groups for backward compatibility and
        // never stores their policy.
        let system = g.is_system();
        let mut st = s.serialize_struct("Group", if system { 2 } else { 3 })?;
        st.serialize_field("id", &g.id)?;
        st.serialize_field("name", &g.name)?;
        if !system {
            st.serialize_field("policy", &g.policy)?;
        }
        st.end()
    }
}

struct CredentialOut<'a>(&'a Credentials);

impl Serialize for CredentialOut<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let c = self.0;
        let mut st = s.serialize_struct("Credentials", 5)?;
        st.serialize_field("id", &c.id)?;
        st.serialize_field("user_id", &c.user_id)?;
        st.serialize_field("auth_provider_type", &c.auth_provider_type)?;
        st.serialize_field("auth_provider_id", &c.auth_provider_id)?;
        st.serialize_field("data", &c.data)?;
        st.end()
    }
}

/// A refresh token in Home Assistant's field order and encodings.
pub(crate) struct TokenOut<'a>(pub(crate) &'a RefreshToken);

impl Serialize for TokenOut<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let t = self.0;
        let mut st = s.serialize_struct("RefreshToken", 15)?;
        st.serialize_field("id", &t.id)?;
        st.serialize_field("user_id", &t.user_id)?;
        st.serialize_field("client_id", &t.client_id)?;
        st.serialize_field("client_name", &t.client_name)?;
        st.serialize_field("client_icon", &t.client_icon)?;
        st.serialize_field("token_type", t.token_type.as_str())?;
        st.serialize_field("created_at", &format_datetime(&t.created_at))?;
        st.serialize_field("access_token_expiration", &t.access_token_expiration)?;
        st.serialize_field("token", t.token.expose())?;
        st.serialize_field("jwt_key", t.jwt_key.expose())?;
        st.serialize_field(
            "last_used_at",
            &t.last_used_at.as_ref().map(format_datetime),
        )?;
        st.serialize_field("last_used_ip", &t.last_used_ip)?;
        st.serialize_field("expire_at", &t.expire_at)?;
        st.serialize_field("credential_id", &t.credential_id)?;
        st.serialize_field("version", &t.version)?;
        st.end()
    }
}

#[derive(Serialize)]
struct UsersOut<T> {
    users: T,
}

struct HaUsersOut<'a>(&'a [HaUser]);

impl Serialize for HaUsersOut<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Entry<'a> {
            username: &'a str,
            password: &'a str,
        }
        s.collect_seq(self.0.iter().map(|h| Entry {
            username: &h.username,
            password: h.password.expose(),
        }))
    }
}

struct TotpOut<'a>(&'a [(UserId, Secret)]);

impl Serialize for TotpOut<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(self.0.len()))?;
        for (user, secret) in self.0 {
            m.serialize_entry(user.as_str(), secret.expose())?;
        }
        m.end()
    }
}

struct TotpStateOut<'a>(&'a [(UserId, TotpState)]);

impl Serialize for TotpStateOut<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(self.0.len()))?;
        for (user, state) in self.0 {
            m.serialize_entry(user.as_str(), state)?;
        }
        m.end()
    }
}

/// A refresh token as read back from the journal: every field present, strictly typed.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenIn {
    id: String,
    user_id: String,
    client_id: Option<String>,
    client_name: Option<String>,
    client_icon: Option<String>,
    token_type: TokenType,
    created_at: String,
    access_token_expiration: f64,
    token: String,
    jwt_key: String,
    last_used_at: Option<String>,
    last_used_ip: Option<String>,
    expire_at: Option<f64>,
    credential_id: Option<String>,
    version: Option<String>,
}

/// `serde(with)` for [`RefreshToken`] inside a journal [`Change`](crate::Change): the
/// same object Home Assistant's file holds.
pub(crate) mod token_wire {
    use latch_models::{RefreshToken, Secret};
    use serde::de::Error;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    use super::{TokenIn, TokenOut};
    use crate::datetime::parse_datetime;

    pub(crate) fn serialize<S: Serializer>(t: &RefreshToken, s: S) -> Result<S::Ok, S::Error> {
        TokenOut(t).serialize(s)
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<RefreshToken, D::Error> {
        let w = TokenIn::deserialize(d)?;
        let created_at = parse_datetime(&w.created_at)
            .ok_or_else(|| D::Error::custom(format!("invalid created_at {:?}", w.created_at)))?;
        let last_used_at = match &w.last_used_at {
            None => None,
            Some(s) => Some(
                parse_datetime(s)
                    .ok_or_else(|| D::Error::custom(format!("invalid last_used_at {s:?}")))?,
            ),
        };
        Ok(RefreshToken {
            id: w.id.into(),
            user_id: w.user_id.into(),
            client_id: w.client_id,
            client_name: w.client_name,
            client_icon: w.client_icon,
            token_type: w.token_type,
            created_at,
            access_token_expiration: w.access_token_expiration,
            token: Secret::new(w.token),
            jwt_key: Secret::new(w.jwt_key),
            last_used_at,
            last_used_ip: w.last_used_ip,
            expire_at: w.expire_at,
            credential_id: w.credential_id.map(Into::into),
            version: w.version,
        })
    }
}
