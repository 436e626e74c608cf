//! The provider's configuration and its validation (Home Assistant's `CONFIG_SCHEMA`).

use std::net::IpAddr;

use ipnet::IpNet;
use latch_models::{GroupId, User, UserId};
use serde::{Deserialize, Deserializer};
use serde_json::Value;

use crate::PROVIDER_TYPE;
use crate::net::canonical_net;

/// A configuration the provider refuses. Nothing is half-applied: the whole config is
/// refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The shape is wrong: an unknown key, a missing `trusted_networks`, a value of
    /// the wrong type.
    #[error("invalid trusted_networks provider config: {0}")]
    Malformed(String),
    /// `type` is present and is not `trusted_networks`.
    #[error("provider type {0:?} is not trusted_networks")]
    WrongType(String),
    /// A value that is neither a network (`192.168.0.0/24`) nor an address.
    #[error("{field}: {value} is not an ip network or address")]
    InvalidNetwork {
        /// The config key it was found under.
        field: &'static str,
        /// The value as written.
        value: String,
    },
    /// A network written with host bits set (`192.168.1.5/24`); refused, as Home
    /// Assistant does, because it is ambiguous.
    #[error("{field}: {value} has host bits set (the network is {network})")]
    HostBitsSet {
        /// The config key it was found under.
        field: &'static str,
        /// The value as written.
        value: String,
        /// The network the value lies in.
        network: IpNet,
    },
    /// `trusted_users` names one network twice (possibly written two ways, such as
    /// `::1` and `::1/128`), so which list applies would be ambiguous.
    #[error("trusted_users: network {network} is listed more than once")]
    DuplicateNetwork {
        /// The network, normalised.
        network: IpNet,
    },
    /// A `trusted_users` entry string that is not a uuid4 in hex.
    #[error(
        "trusted_users for {network}: {value:?} is not a valid user id \
         (expected a uuid4 written as 32 hex digits)"
    )]
    InvalidUserId {
        /// The network whose list holds it.
        network: IpNet,
        /// The value as written.
        value: String,
    },
    /// A `group` value that is not a non-empty group id or a non-empty list of them.
    #[error("trusted_users for {network}: group {value} is not a group id or a list of group ids")]
    InvalidGroup {
        /// The network whose list holds it.
        network: IpNet,
        /// The value, as JSON.
        value: String,
    },
    /// A `trusted_users` entry that is neither a string nor `{"group": ...}`.
    #[error(
        "trusted_users for {network}: {value} is neither a user id nor {{\"group\": <group id(s)>}}"
    )]
    InvalidEntry {
        /// The network whose list holds it.
        network: IpNet,
        /// The value, as JSON.
        value: String,
    },
    /// `allow_bypass_login` is not one of the boolean forms Home Assistant accepts.
    #[error(
        "allow_bypass_login: invalid boolean value {0} \
         (use true/false, 1/0, yes/no, on/off or enable/disable)"
    )]
    InvalidBoolean(String),
}

/// One entry of a `trusted_users` list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TrustedUser {
    /// This user (id normalised to lowercase hex).
    User(UserId),
    /// Every member of any of these groups.
    ///
    /// Written `{"group": "system-users"}` or `{"group": ["system-users", "x"]}`. A
    /// single string is **one** group id. (Home Assistant iterates the string character
    /// by character, so a string group never matched anybody there; latch fixes that.)
    Groups(Vec<GroupId>),
}

impl TrustedUser {
    /// True if `user` is this entry's user or belongs to one of its groups.
    #[must_use]
    pub fn matches(&self, user: &User) -> bool {
        match self {
            Self::User(id) => *id == user.id,
            Self::Groups(groups) => groups.iter().any(|g| user.group_ids.contains(g)),
        }
    }
}

/// The users a login from one network may choose from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustedUsersRule {
    /// Logins whose address is inside this network use this rule (the first rule in
    /// config order that contains the address wins; later ones are not consulted).
    pub network: IpNet,
    /// Who may be chosen. An empty list offers nobody.
    pub entries: Vec<TrustedUser>,
}

impl TrustedUsersRule {
    /// True if any entry matches `user`.
    #[must_use]
    pub fn allows(&self, user: &User) -> bool {
        self.entries.iter().any(|e| e.matches(user))
    }

    /// True if `ip` (already canonical) is inside this rule's network.
    pub(crate) fn contains(&self, ip: IpAddr) -> bool {
        self.network.contains(&ip)
    }
}

/// The `trusted_networks` provider's configuration.
///
/// Deserialise it from the provider's TOML table or JSON object (unknown keys are
/// refused); `type`, if present, must be `trusted_networks`:
///
/// ```
/// use latch_provider_trusted_networks::TrustedNetworksConfig;
///
/// let config: TrustedNetworksConfig = serde_json::from_str(r#"{
///     "trusted_networks": ["192.168.0.0/24", "fd00::/8"],
///     "trusted_users": {"192.168.0.10": ["a1ab982744b64757bf80515589258924"],
///                       "192.168.0.0/24": [{"group": "system-users"}]},
///     "allow_bypass_login": "yes",
///     "trusted_proxies": "192.168.0.1"
/// }"#).unwrap();
/// assert!(config.allow_bypass_login);
/// assert_eq!(config.trusted_users.len(), 2);
/// assert_eq!(config.trusted_proxies.len(), 1);
/// ```
///
/// Networks may be written as a bare address (a /32 or /128), and a key holding a
/// list also accepts a single value. IPv4-mapped IPv6 networks (`::ffff:a.b.c.d/n`,
/// n ≥ 96) are stored as the IPv4 networks they map, because clients are matched by
/// their IPv4 form (see the crate docs).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedNetworksConfig {
    /// Display name; `None` means "Trusted Networks".
    pub name: Option<String>,
    /// Instance id; `None` for the default instance.
    pub id: Option<String>,
    /// Where logins are allowed from. Empty means "not configured": every login is
    /// refused.
    pub trusted_networks: Vec<IpNet>,
    /// Per-network user lists, in config order (first match wins). A network that no
    /// rule contains offers every active, non-system user.
    ///
    /// A `group` given as a single string is a one-item list. (Home Assistant splits
    /// the string into characters, so `{"group": "system-users"}` never matched there.)
    ///
    /// Order matters, so whatever reads the config must keep the map's order: JSON
    /// through `serde_json` with `preserve_order`, TOML through `toml` with
    /// `preserve_order` (without it `toml` sorts the keys).
    pub trusted_users: Vec<TrustedUsersRule>,
    /// Log in without a choice when exactly one user is available.
    pub allow_bypass_login: bool,
    /// Reverse proxies in front of the calling service. A login from a proxy's own
    /// address is refused even inside a trusted network: a proxy forwards everybody.
    /// (Home Assistant takes these from its `http` component; here they are part of
    /// this provider's config.)
    pub trusted_proxies: Vec<IpNet>,
}

impl TrustedNetworksConfig {
    /// Validates a config given as a JSON value.
    ///
    /// # Errors
    /// A [`ConfigError`] naming the first problem found.
    pub fn from_value(value: Value) -> Result<Self, ConfigError> {
        let raw =
            RawConfig::deserialize(value).map_err(|e| ConfigError::Malformed(e.to_string()))?;
        Self::from_raw(raw)
    }

    /// Display name: `name`, or "Trusted Networks".
    #[must_use]
    pub fn display_name(&self) -> &str {
        self.name.as_deref().unwrap_or(crate::DEFAULT_NAME)
    }

    /// The same config with every network in canonical form (mapped IPv6 as IPv4), so
    /// that configs built in code match exactly as parsed ones do.
    pub(crate) fn canonicalized(mut self) -> Self {
        for n in self
            .trusted_networks
            .iter_mut()
            .chain(self.trusted_proxies.iter_mut())
        {
            *n = canonical_net(*n);
        }
        for rule in &mut self.trusted_users {
            rule.network = canonical_net(rule.network);
        }
        self
    }

    fn from_raw(raw: RawConfig) -> Result<Self, ConfigError> {
        if let Some(t) = raw.provider_type
            && t != PROVIDER_TYPE
        {
            return Err(ConfigError::WrongType(t));
        }
        let trusted_networks = parse_networks("trusted_networks", raw.trusted_networks)?;
        let trusted_proxies = parse_networks(
            "trusted_proxies",
            raw.trusted_proxies.unwrap_or(Value::Null),
        )?;
        let trusted_users = match raw.trusted_users {
            None => Vec::new(),
            Some(v) => parse_trusted_users(v)?,
        };
        let allow_bypass_login = match raw.allow_bypass_login {
            None => false,
            Some(v) => coerce_bool(&v)?,
        };
        Ok(Self {
            name: raw.name,
            id: raw.id,
            trusted_networks,
            trusted_users,
            allow_bypass_login,
            trusted_proxies,
        })
    }
}

impl<'de> Deserialize<'de> for TrustedNetworksConfig {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = RawConfig::deserialize(deserializer)?;
        Self::from_raw(raw).map_err(serde::de::Error::custom)
    }
}

/// The config as written, before validation. The flexible keys are kept as JSON values
/// so every refusal gets this crate's own message.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(rename = "type", default)]
    provider_type: Option<String>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    id: Option<String>,
    trusted_networks: Value,
    #[serde(default, deserialize_with = "present")]
    trusted_users: Option<Value>,
    #[serde(default, deserialize_with = "present")]
    allow_bypass_login: Option<Value>,
    #[serde(default, deserialize_with = "present")]
    trusted_proxies: Option<Value>,
}

/// `Some(value)` for a key that is present, even when its value is null; absent keys
/// get `None` from `#[serde(default)]`.
fn present<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Value>, D::Error> {
    Value::deserialize(deserializer).map(Some)
}

/// Home Assistant's `cv.ensure_list`: null is empty, a list is itself, anything else
/// is a one-item list.
fn ensure_list(value: Value) -> Vec<Value> {
    match value {
        Value::Null => Vec::new(),
        Value::Array(items) => items,
        other => vec![other],
    }
}

fn json_text(value: &Value) -> String {
    value.to_string()
}

fn parse_networks(field: &'static str, value: Value) -> Result<Vec<IpNet>, ConfigError> {
    ensure_list(value)
        .into_iter()
        .map(|item| match item {
            Value::String(s) => parse_network(field, &s),
            other => Err(ConfigError::InvalidNetwork {
                field,
                value: json_text(&other),
            }),
        })
        .collect()
}

/// One network: `a.b.c.d/n`, `x::y/n`, or a bare address (a /32 or /128). Host bits
/// must be clear, as with Python's `ip_network`. Mapped IPv6 networks are stored as
/// IPv4.
pub(crate) fn parse_network(field: &'static str, s: &str) -> Result<IpNet, ConfigError> {
    let parsed = if s.contains('/') {
        s.parse::<IpNet>().ok()
    } else {
        s.parse::<IpAddr>().ok().map(IpNet::from)
    };
    let net = parsed.ok_or_else(|| ConfigError::InvalidNetwork {
        field,
        value: s.to_owned(),
    })?;
    if net.trunc() != net {
        return Err(ConfigError::HostBitsSet {
            field,
            value: s.to_owned(),
            network: net.trunc(),
        });
    }
    Ok(canonical_net(net))
}

fn parse_trusted_users(value: Value) -> Result<Vec<TrustedUsersRule>, ConfigError> {
    let Value::Object(map) = value else {
        return Err(ConfigError::Malformed(format!(
            "trusted_users must be a map from network to a list of user ids and groups, \
             not {}",
            json_text(&value)
        )));
    };
    let mut rules: Vec<TrustedUsersRule> = Vec::with_capacity(map.len());
    for (key, list) in map {
        let network = parse_network("trusted_users", &key)?;
        if rules.iter().any(|r| r.network == network) {
            return Err(ConfigError::DuplicateNetwork { network });
        }
        let entries = ensure_list(list)
            .into_iter()
            .map(|entry| parse_entry(network, entry))
            .collect::<Result<_, _>>()?;
        rules.push(TrustedUsersRule { network, entries });
    }
    Ok(rules)
}

fn parse_entry(network: IpNet, entry: Value) -> Result<TrustedUser, ConfigError> {
    match entry {
        Value::String(s) => match uuid4_hex(&s) {
            Some(id) => Ok(TrustedUser::User(UserId::from(id))),
            None => Err(ConfigError::InvalidUserId { network, value: s }),
        },
        Value::Object(ref map) if map.len() == 1 && map.contains_key("group") => {
            let group = &map["group"];
            let ids = match group {
                Value::String(s) => vec![s.as_str()],
                Value::Array(items) => items.iter().filter_map(Value::as_str).collect(),
                _ => Vec::new(),
            };
            let complete = match group {
                Value::Array(items) => ids.len() == items.len(),
                _ => true,
            };
            if ids.is_empty() || !complete || ids.iter().any(|s| s.is_empty()) {
                return Err(ConfigError::InvalidGroup {
                    network,
                    value: json_text(group),
                });
            }
            Ok(TrustedUser::Groups(
                ids.into_iter().map(GroupId::from).collect(),
            ))
        }
        other => Err(ConfigError::InvalidEntry {
            network,
            value: json_text(&other),
        }),
    }
}

/// Home Assistant's `cv.uuid4_hex`: 32 hex digits (either case) whose 13th digit is `4`
/// (version 4) and 17th one of `89ab` (the RFC 4122 variant). Returns the id in
/// lowercase, as Home Assistant does; hyphenated forms are refused.
#[must_use]
pub fn uuid4_hex(s: &str) -> Option<String> {
    let lower = s.to_ascii_lowercase();
    let b = lower.as_bytes();
    let ok = b.len() == 32
        && b.iter().all(u8::is_ascii_hexdigit)
        && b[12] == b'4'
        && matches!(b[16], b'8' | b'9' | b'a' | b'b');
    ok.then_some(lower)
}

/// Home Assistant's `cv.boolean`: booleans; numbers (non-zero is true); strings
/// `1/true/yes/on/enable` and `0/false/no/off/disable`, any case, surrounding
/// whitespace ignored.
fn coerce_bool(value: &Value) -> Result<bool, ConfigError> {
    match value {
        Value::Bool(b) => Ok(*b),
        Value::Number(n) => Ok(n.as_f64().is_some_and(|f| f != 0.0)),
        Value::String(s) => match s.trim().to_lowercase().as_str() {
            "1" | "true" | "yes" | "on" | "enable" => Ok(true),
            "0" | "false" | "no" | "off" | "disable" => Ok(false),
            _ => Err(ConfigError::InvalidBoolean(json_text(value))),
        },
        _ => Err(ConfigError::InvalidBoolean(json_text(value))),
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde_json::json;

    use super::*;

    fn parse(v: Value) -> Result<TrustedNetworksConfig, ConfigError> {
        TrustedNetworksConfig::from_value(v)
    }

    #[test]
    fn uuid4_hex_follows_home_assistant() {
        assert_eq!(
            uuid4_hex("a1ab982744b64757bf80515589258924").as_deref(),
            Some("a1ab982744b64757bf80515589258924")
        );
        assert_eq!(
            uuid4_hex("A1AB982744B64757BF80515589258924").as_deref(),
            Some("a1ab982744b64757bf80515589258924"),
            "uppercase is accepted and lowercased, as uuid4_hex does"
        );
        for bad in [
            "abcde",
            "",
            "a1ab982744b61757bf80515589258924",  // version 1
            "a1ab982744b64757cf80515589258924",  // variant c
            "a1ab982744b64757bf8051558925892",   // 31 digits
            "a1ab982744b64757bf805155892589240", // 33 digits
            "a1ab9827-44b6-4757-bf80-515589258924",
            "g1ab982744b64757bf80515589258924",
            "a1ab982744b64757bf8051558925892é",
        ] {
            assert_eq!(uuid4_hex(bad), None, "{bad} must be refused");
        }
    }

    #[test]
    fn booleans_are_coerced_like_cv_boolean() {
        for (v, want) in [
            (json!(true), true),
            (json!(false), false),
            (json!(1), true),
            (json!(0), false),
            (json!(2.5), true),
            (json!(0.0), false),
            (json!("Yes"), true),
            (json!(" on "), true),
            (json!("ENABLE"), true),
            (json!("1"), true),
            (json!("true"), true),
            (json!("no"), false),
            (json!("off"), false),
            (json!("disable"), false),
            (json!("0"), false),
            (json!("False"), false),
        ] {
            assert_eq!(coerce_bool(&v), Ok(want), "{v}");
        }
        for v in [json!("maybe"), json!(""), json!(null), json!([true])] {
            assert!(
                matches!(coerce_bool(&v), Err(ConfigError::InvalidBoolean(_))),
                "{v} must be refused"
            );
        }
    }

    #[test]
    fn networks_accept_bare_addresses_and_refuse_host_bits() {
        assert_eq!(
            parse_network("trusted_networks", "192.168.0.1").unwrap(),
            "192.168.0.1/32".parse::<IpNet>().unwrap()
        );
        assert_eq!(
            parse_network("trusted_networks", "::1").unwrap(),
            "::1/128".parse::<IpNet>().unwrap()
        );
        let err = parse_network("trusted_networks", "192.168.1.5/24").unwrap_err();
        assert_eq!(
            err.to_string(),
            "trusted_networks: 192.168.1.5/24 has host bits set (the network is 192.168.1.0/24)"
        );
        for bad in [
            "",
            "nope",
            "192.168.0.256",
            "10.0.0.0/33",
            " 10.0.0.1",
            "10.0.0.0/",
        ] {
            assert!(
                matches!(
                    parse_network("trusted_networks", bad),
                    Err(ConfigError::InvalidNetwork { .. })
                ),
                "{bad:?} must be refused"
            );
        }
    }

    #[test]
    fn a_single_value_is_a_one_item_list_and_null_is_empty() {
        let c = parse(json!({
            "trusted_networks": "10.0.0.0/8",
            "trusted_proxies": null,
            "trusted_users": {"10.0.0.1": "a1ab982744b64757bf80515589258924"},
        }))
        .unwrap();
        assert_eq!(
            c.trusted_networks,
            vec!["10.0.0.0/8".parse::<IpNet>().unwrap()]
        );
        assert!(c.trusted_proxies.is_empty());
        assert_eq!(c.trusted_users[0].entries.len(), 1);
        let c = parse(json!({"trusted_networks": null})).unwrap();
        assert!(c.trusted_networks.is_empty());
    }

    #[test]
    fn shape_errors_are_refused_with_clear_messages() {
        let cases = [
            (json!({}), "missing field `trusted_networks`"),
            (
                json!({"trusted_networks": [], "extra": 1}),
                "unknown field `extra`",
            ),
            (
                json!({"trusted_networks": [], "type": "homeassistant"}),
                "provider type \"homeassistant\" is not trusted_networks",
            ),
            (
                json!({"trusted_networks": [5]}),
                "trusted_networks: 5 is not an ip network or address",
            ),
            (
                json!({"trusted_networks": [], "trusted_users": ["10.0.0.1"]}),
                "trusted_users must be a map",
            ),
            (
                json!({"trusted_networks": [], "trusted_users": null}),
                "trusted_users must be a map",
            ),
            (
                json!({"trusted_networks": [], "trusted_users": {"::1": [], "::1/128": []}}),
                "network ::1/128 is listed more than once",
            ),
            (
                json!({"trusted_networks": [], "trusted_users": {"10.0.0.1": [{"group": ""}]}}),
                "group \"\" is not a group id",
            ),
            (
                json!({"trusted_networks": [], "trusted_users": {"10.0.0.1": [{"group": []}]}}),
                "group [] is not a group id",
            ),
            (
                json!({"trusted_networks": [], "trusted_users": {"10.0.0.1": [{"group": ["a", 1]}]}}),
                "group [\"a\",1] is not a group id",
            ),
            (
                json!({"trusted_networks": [], "trusted_users": {"10.0.0.1": [{"group": "a", "x": 1}]}}),
                "is neither a user id nor {\"group\": <group id(s)>}",
            ),
            (
                json!({"trusted_networks": [], "trusted_users": {"10.0.0.1": [7]}}),
                "7 is neither a user id",
            ),
            (
                json!({"trusted_networks": [], "allow_bypass_login": null}),
                "allow_bypass_login: invalid boolean value null",
            ),
        ];
        for (config, want) in cases {
            let err = parse(config.clone()).unwrap_err().to_string();
            assert!(err.contains(want), "{config}: got {err:?}, want {want:?}");
        }
    }

    #[test]
    fn mapped_ipv6_networks_are_stored_as_ipv4() {
        let c = parse(json!({
            "trusted_networks": ["::ffff:192.168.0.0/120"],
            "trusted_proxies": ["::ffff:192.168.0.1"],
            "trusted_users": {"::ffff:192.168.0.0/120": []},
        }))
        .unwrap();
        let v4: IpNet = "192.168.0.0/24".parse().unwrap();
        assert_eq!(c.trusted_networks, vec![v4]);
        assert_eq!(c.trusted_users[0].network, v4);
        assert_eq!(
            c.trusted_proxies,
            vec!["192.168.0.1/32".parse::<IpNet>().unwrap()]
        );
    }

    #[test]
    fn display_name_defaults_to_trusted_networks() {
        assert_eq!(
            TrustedNetworksConfig::default().display_name(),
            "Trusted Networks"
        );
        let c = parse(json!({"trusted_networks": [], "name": "LAN"})).unwrap();
        assert_eq!(c.display_name(), "LAN");
    }

    proptest! {
        #[test]
        fn every_uuid4_is_accepted(bytes in any::<[u8; 16]>()) {
            let id = uuid::Builder::from_random_bytes(bytes).into_uuid().simple().to_string();
            prop_assert_eq!(uuid4_hex(&id), Some(id.clone()));
            prop_assert_eq!(uuid4_hex(&id.to_ascii_uppercase()), Some(id));
        }

        #[test]
        fn a_wrong_version_digit_is_refused(bytes in any::<[u8; 16]>(), digit in "[0-35-9a-f]") {
            let mut id = uuid::Builder::from_random_bytes(bytes).into_uuid().simple().to_string();
            id.replace_range(12..13, &digit);
            prop_assert_eq!(uuid4_hex(&id), None);
        }

        #[test]
        fn a_wrong_variant_digit_is_refused(bytes in any::<[u8; 16]>(), digit in "[0-7c-f]") {
            let mut id = uuid::Builder::from_random_bytes(bytes).into_uuid().simple().to_string();
            id.replace_range(16..17, &digit);
            prop_assert_eq!(uuid4_hex(&id), None);
        }

        #[test]
        fn any_written_network_parses_back_to_itself(net in any_net()) {
            let parsed = parse_network("trusted_networks", &net.to_string()).unwrap();
            prop_assert_eq!(parsed, canonical_net(net));
        }

        #[test]
        fn the_parser_never_panics(s in "\\PC{0,48}") {
            let _ = parse_network("trusted_networks", &s);
            let _ = uuid4_hex(&s);
        }
    }

    fn any_net() -> impl Strategy<Value = IpNet> {
        prop_oneof![
            (any::<u32>(), 0u8..=32)
                .prop_map(|(a, p)| IpNet::V4(ipnet::Ipv4Net::new(a.into(), p).unwrap().trunc())),
            (any::<u128>(), 0u8..=128)
                .prop_map(|(a, p)| IpNet::V6(ipnet::Ipv6Net::new(a.into(), p).unwrap().trunc())),
        ]
    }
}
