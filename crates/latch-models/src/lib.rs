//! latch-models: the data model of latch, shared by every other crate.
//!
//! Users, groups, credentials and refresh tokens with exactly the fields and defaults of
//! Home Assistant's auth models; the three built-in groups; the owner, admin, system and
//! local-only rules; the permission policy engine (policies, merging, compiled
//! checkers); Home Assistant's username normalisation ([`normalize_username`], shared by
//! the provider that compares usernames and the store that indexes them); and
//! [`limits`], the one table of length caps and content rules for every string latch
//! takes from outside, with the checks and the [`limits::echo`] that makes input safe to
//! repeat in events and logs. This crate is pure data and logic: it does no IO, spawns
//! nothing and has no async code. Persistence lives in `latch-store`, token cryptography in `latch-token`.
//!
//! Time is never read here implicitly: constructors that need "now" take it as an
//! argument, and [`Clock`] is the seam the other crates use to inject it.
//!
//! ```
//! use latch_models::{User, GROUP_ID_ADMIN, GroupId};
//!
//! let mut user = User::new(Some("Paulus".into()));
//! user.is_active = true;
//! user.group_ids.push(GroupId::from(GROUP_ID_ADMIN));
//! assert!(user.is_admin());
//! ```

mod clock;
mod credentials;
mod group;
mod ids;
pub mod limits;
mod local;
pub mod permissions;
mod refresh_token;
mod secret;
mod user;
mod username;

pub use clock::{Clock, FixedClock, SystemClock, now_micros, truncate_to_micros};
pub use credentials::{Credentials, UserMeta};
pub use group::{
    GROUP_ID_ADMIN, GROUP_ID_READ_ONLY, GROUP_ID_USER, GROUP_NAME_ADMIN, GROUP_NAME_READ_ONLY,
    GROUP_NAME_USER, Group, system_group, system_groups,
};
pub use ids::{CredentialId, GroupId, RefreshTokenId, UserId, random_hex_id};
pub use local::is_local_address;
pub use refresh_token::{
    ACCESS_TOKEN_EXPIRATION, REFRESH_TOKEN_EXPIRATION, RefreshToken, TokenType, UnknownTokenType,
};
pub use secret::Secret;
pub use user::User;
pub use username::{
    is_normalized, is_python_whitespace, normalize_username, python_strip,
    username_folds_on_this_thread,
};

pub use permissions::{PermissionKey, Permissions, Policy};
