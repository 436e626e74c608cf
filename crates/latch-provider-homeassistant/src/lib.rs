//! latch-provider-homeassistant: the `homeassistant` auth provider, Home Assistant's
//! username-and-password login, with the same file, the same hashes and the same rules.
//!
//! Its one job is to keep and check password entries: the store's
//! `auth_provider.homeassistant` entries, `{username, password}` where `password` is
//! the standard, padded Base64 of a 60-character `$2b$<cost>$...` bcrypt string, so a
//! Home Assistant directory works unchanged in both directions. It implements
//! [`latch_provider::AuthProvider`]: a login flow with one step `init` (fields
//! `username` and `password`), credentials `{"username": <normalised>}`, and new users
//! named after their username. It must not create users or tokens (the manager does),
//! never logs a password or a hash, and never runs bcrypt on an async worker thread:
//! every hash and check of the provider goes through a bounded [`HashPool`] of blocking
//! slots (the synchronous functions of [`password`] are for such blocking contexts). It
//! assumes it is the only writer of the password entries of its store.
//!
//! # Rules (Home Assistant 2026)
//!
//! - **Usernames** are compared after [`normalize_username`] on both sides: Python's
//!   `strip()` then full Unicode `casefold()` (`ß` → `ss`). A new username must already
//!   be normalised and unique after normalisation.
//! - **Passwords** are compared exactly (case and spaces count). Their UTF-8 bytes are
//!   cut at 72 before hashing and before checking, as Home Assistant does since bcrypt
//!   5: a password that differs from the stored one only after byte 72 logs in.
//! - **Login** uses the last entry whose normalised name matches (Home Assistant scans
//!   them all; latch asks the store's index, so no stored name is folded); an unknown
//!   user gets a dummy bcrypt check so the refusal takes as long as a real one.
//! - **Writes** (`add_auth`, `remove_auth`, `change_password`, `change_username`, and
//!   the removal when credentials go away) are committed to the store and awaited.
//!
//! # Deliberate differences from Home Assistant
//!
//! - **`bcrypt_cost`** is configurable (default 12, Home Assistant's fixed cost), and a
//!   stored hash of a lower cost is upgraded after the next successful login
//!   (best-effort; the login succeeds either way). Home Assistant never rehashes.
//! - Unknown users are checked against a dummy hash of the cost **most stored hashes
//!   have** ([`HomeAssistantProvider::dummy_cost`], followed as hashes change; Home
//!   Assistant's [`DUMMY_HASH`] at 12), not the configured cost: a known user is
//!   checked at their own hash's cost, so a Home Assistant directory (cost 12) served
//!   with `bcrypt_cost = 10` must still check unknown users at 12.
//! - **Limits** (`latch_models::limits`): a new username is at most 255 bytes without
//!   control characters (`username_too_long`, `username_invalid_character`), a new
//!   password at most 1,024 bytes. Stored entries of any length load and log in.
//! - [`HomeAssistantProvider::add_auth_with`] commits a new entry together with the
//!   caller's changes (the user and its credential) in one store batch.
//! - **Empty passwords** are refused when setting a password (Home Assistant accepts
//!   them); an existing entry's empty password still logs in.
//! - `change_username` rewrites the linked credentials in the same store commit as the
//!   rename, so a crash cannot leave them pointing at the old name.
//! - The legacy mode of 2025 (exact comparisons while unnormalised names exist) is gone,
//!   as in Home Assistant 2026.
//!
//! # Example
//!
//! ```
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! use latch_provider::ProviderError;
//! use latch_provider_homeassistant::{HashPool, HomeAssistantConfig, HomeAssistantProvider};
//! use latch_store::{Store, StoreOptions};
//!
//! let home = tempfile::tempdir().unwrap();
//! let store = Store::open(home.path(), StoreOptions::default()).unwrap();
//! let config = HomeAssistantConfig { bcrypt_cost: 4, ..Default::default() };
//! let provider = HomeAssistantProvider::with_pool(config, store, HashPool::new(2)).unwrap();
//!
//! provider.add_auth("paulus", "hunter2").await.unwrap();
//! provider.validate_login(" Paulus ", "hunter2").await.unwrap();
//! assert!(matches!(
//!     provider.validate_login("paulus", "Hunter2").await,
//!     Err(ProviderError::InvalidAuth(_))
//! ));
//! # });
//! ```

mod config;
mod normalize;
pub mod password;
mod pool;
mod provider;

pub use config::{ConfigError, HomeAssistantConfig};
pub use normalize::{is_normalized, is_python_whitespace, normalize_username, python_strip};
pub use password::{DEFAULT_BCRYPT_COST, DUMMY_HASH, HashError, MAX_PASSWORD_BYTES};
pub use pool::{HashPool, PoolError, PoolStats};
pub use provider::{
    DEFAULT_NAME, FIELD_PASSWORD, FIELD_USERNAME, HomeAssistantProvider, INVALID_AUTH_MESSAGE,
    PROVIDER_TYPE, ProviderStats, STEP_INIT,
};
