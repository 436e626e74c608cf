//! latch-provider-trusted-networks: the `trusted_networks` auth provider, Home
//! Assistant's passwordless login for callers inside configured networks.
//!
//! Its one job is to decide, from the caller's address alone, whether a login may
//! happen and as whom: a caller inside `trusted_networks` (and not itself a trusted
//! proxy) picks a user from a list, and every later access-token mint re-checks the
//! caller's address. It implements [`latch_provider::AuthProvider`] and sees users
//! only through the read-only [`latch_provider::Directory`]. It must not create,
//! change or store users, credentials or tokens (the manager does that), it never
//! offers MFA, and it does no IO.
//!
//! # Rules
//!
//! - **Access** ([`TrustedNetworksProvider::validate_access`]), refused in this order:
//!   no trusted network configured; address outside every trusted network; address
//!   inside a trusted proxy network. Home Assistant's "not via Home Assistant Cloud"
//!   check has no counterpart here.
//! - **Who may be chosen** ([`TrustedNetworksProvider::available_users`]): active,
//!   non-system users, in store order, filtered by the first `trusted_users` network
//!   that contains the address (later networks are not consulted; no match means
//!   everybody; a match with an empty list means nobody, shown as an empty select).
//! - **Login** (step `init`): abort `not_allowed` when access is refused; a posted
//!   `{"user": id}` among the offered users finishes with `{"user": id}`; with
//!   `allow_bypass_login` and exactly one user offered, finish at once; otherwise a
//!   form with one select field `user` of `(id, name)` (the id stands in for a null
//!   name). A posted id that is not offered gets the form again, never a login.
//! - **Credentials**: `{"user_id": id}`, reused if stored, otherwise returned already
//!   linked (`is_new == false`). `user_meta` is unsupported: this provider never
//!   creates users.
//! - **Refresh**: every access-token mint needs a caller address that passes the access
//!   check; no address is refused.
//!
//! # Deliberate differences from Home Assistant
//!
//! - **`{"group": "system-users"}` works.** A group given as one string is a one-item
//!   list. Home Assistant iterates the string character by character, so a string
//!   group (the only form its schema allows) never matched anybody. A list of group
//!   ids is accepted too.
//! - **IPv4-mapped IPv6 addresses are matched as IPv4.** A dual-stack socket reports
//!   an IPv4 client as `::ffff:192.168.0.1`, which Home Assistant compares with IPv4
//!   networks and never finds, silently refusing real LAN clients. latch unwraps the
//!   mapped address before matching trusted networks, `trusted_users` networks and
//!   trusted proxies, and for trusted proxies also checks the address as given, so a
//!   proxy is refused in either notation. Networks written in mapped form
//!   (`::ffff:192.168.0.0/120`) are stored as the IPv4 networks they map; a wide IPv6
//!   network such as `::/0` therefore no longer matches IPv4 clients.
//! - **`trusted_proxies` is part of this provider's config** (Home Assistant reads it
//!   from its `http` component).
//! - The user list is computed at each step rather than once when the flow starts,
//!   so a user deactivated meanwhile cannot be chosen.
//!
//! # Example
//!
//! ```
//! use latch_provider::AuthProvider;
//! use latch_provider_trusted_networks::{AccessDenied, TrustedNetworksConfig, TrustedNetworksProvider};
//!
//! let config: TrustedNetworksConfig = serde_json::from_value(serde_json::json!({
//!     "type": "trusted_networks",
//!     "trusted_networks": ["192.168.0.0/24", "::1"],
//!     "trusted_proxies": ["192.168.0.1"],
//! })).unwrap();
//! let provider = TrustedNetworksProvider::new(config);
//!
//! assert_eq!(provider.provider_type(), "trusted_networks");
//! assert!(provider.validate_access("192.168.0.20".parse().unwrap()).is_ok());
//! assert!(provider.validate_access("::ffff:192.168.0.20".parse().unwrap()).is_ok());
//! assert_eq!(
//!     provider.validate_access("192.168.0.1".parse().unwrap()),
//!     Err(AccessDenied::FromProxy)
//! );
//! assert_eq!(
//!     provider.validate_access("10.0.0.1".parse().unwrap()).unwrap_err().to_string(),
//!     "Not in trusted_networks"
//! );
//! ```

mod config;
mod net;
mod provider;

pub use config::{ConfigError, TrustedNetworksConfig, TrustedUser, TrustedUsersRule, uuid4_hex};
pub use provider::{
    AccessDenied, DATA_USER_ID, DEFAULT_NAME, FIELD_USER, PROVIDER_TYPE, STEP_INIT,
    TrustedNetworksProvider,
};
